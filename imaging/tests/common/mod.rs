//! Test data and nibabel, as fetched by scripts/fetch-test-data.sh.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn testdata() -> PathBuf {
    let dir = std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into());
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("colin27_t1.nii.gz").exists(),
        "test data missing in {}: run scripts/fetch-test-data.sh (make test does)",
        dir.display()
    );
    dir
}

/// Runs the nibabel helper; returns its JSON output.
pub fn nibabel(args: &[&Path]) -> serde_json::Value {
    let python = testdata().join("venv/bin/python");
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nibabel_helper.py");
    let out = Command::new(python)
        .arg(helper)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "nibabel helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the helper")
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn affine_of(v: &serde_json::Value) -> gyri_imaging::Affine {
    let mut a = gyri_imaging::Affine::IDENTITY;
    for r in 0..4 {
        for c in 0..4 {
            a.0[r][c] = v[r][c].as_f64().unwrap();
        }
    }
    a
}
