//! `gyri-worker synth-sample` on a small label map written here.

use std::process::Command;

use gyri_imaging::nifti::{read_path, write_path, ReadOptions};
use gyri_imaging::{Affine, Volume, VoxelData};

#[test]
fn a_label_map_becomes_a_t1_a_flair_and_labels_and_other_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dims = [24, 26, 28];
    let mut labels = vec![0u8; dims.iter().product()];
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let d = [i, j, k]
                    .iter()
                    .zip(&dims)
                    .map(|(&x, &n)| x.min(n - 1 - x))
                    .min()
                    .unwrap();
                labels[i + dims[0] * (j + dims[1] * k)] = match d {
                    0 => 0,
                    1 => 5,
                    2..=3 => 1,
                    4..=6 => 2,
                    _ => 3,
                };
            }
        }
    }
    let anatomy = dir.path().join("anatomy.nii.gz");
    write_path(
        &Volume::new(dims, Affine::scaling([1.0; 3]), VoxelData::U8(labels)).unwrap(),
        &anatomy,
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gyri-worker"))
            .arg("synth-sample")
            .args(args)
            .output()
            .unwrap()
    };
    let out = dir.path().join("s");
    let r = run(&[
        "--anatomy",
        anatomy.to_str().unwrap(),
        "--seed",
        "4",
        "--patch",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for name in ["t1.nii.gz", "flair.nii.gz", "labels.nii.gz"] {
        let v = read_path(&out.join(name), ReadOptions::default()).unwrap();
        assert_eq!(v.dims, [16, 16, 16], "{name}");
    }
    let l = read_path(&out.join("labels.nii.gz"), ReadOptions::default()).unwrap();
    assert!(
        (0..l.voxel_count()).all(|i| l.data.get_f32(i) <= 4.0),
        "head tissue is merged into background"
    );

    let t1 = std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into())
        + "/colin27_t1.nii.gz";
    let r = run(&["--anatomy", &t1, "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("labels above 5"),
        "{err}"
    );
}
