//! Study uploads over tus 1.0: creation, resumable PATCHes streamed to S3
//! as multipart parts, checksums, limits, roles and isolation, completion
//! queuing the ingest job.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{spawn_app, spawn_app_with, Cred, TestApp};

const PART: usize = 8 * 1024 * 1024;

/// Deterministic bytes that do not repeat within a part.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn tus(app: &TestApp, method: reqwest::Method, path: &str, cred: &Cred) -> reqwest::RequestBuilder {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}{}", app.base, path)
    };
    let mut req = app
        .http
        .request(method, url)
        .header("tus-resumable", "1.0.0");
    match cred {
        Cred::None => {}
        Cred::Session { cookie, csrf } => {
            req = req.header("cookie", cookie).header("x-csrf-token", csrf);
        }
        Cred::Key(key) => req = req.bearer_auth(key),
    }
    req
}

async fn study_upload(app: &TestApp, cred: &Cred) -> String {
    let res = app.post("/api/v1/study-uploads", cred, json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// tus creation; returns the response.
async fn create(
    app: &TestApp,
    cred: &Cred,
    study_upload: &str,
    filename: &str,
    length: usize,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut metadata = format!(
        "filename {},study_upload {}",
        b64(filename),
        b64(study_upload)
    );
    for (k, v) in extra {
        metadata.push_str(&format!(",{k} {}", b64(v)));
    }
    tus(app, reqwest::Method::POST, "/api/v1/uploads", cred)
        .header("upload-length", length.to_string())
        .header("upload-metadata", metadata)
        .send()
        .await
        .unwrap()
}

async fn create_ok(
    app: &TestApp,
    cred: &Cred,
    study_upload: &str,
    filename: &str,
    length: usize,
    extra: &[(&str, &str)],
) -> String {
    let res = create(app, cred, study_upload, filename, length, extra).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", res.text().await);
    assert_eq!(res.headers()["tus-resumable"], "1.0.0");
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn patch(
    app: &TestApp,
    cred: &Cred,
    location: &str,
    offset: usize,
    body: impl Into<reqwest::Body>,
    checksum: Option<[u8; 32]>,
) -> reqwest::Response {
    let mut req = tus(app, reqwest::Method::PATCH, location, cred)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string());
    if let Some(digest) = checksum {
        req = req.header(
            "upload-checksum",
            format!(
                "sha256 {}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ),
        );
    }
    req.body(body).send().await.unwrap()
}

async fn offset(app: &TestApp, cred: &Cred, location: &str) -> usize {
    let res = tus(app, reqwest::Method::HEAD, location, cred)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The object recorded for an upload: (key, size, sha256, kind).
async fn object_of(app: &TestApp, location: &str) -> (String, i64, Vec<u8>, String) {
    let id: uuid::Uuid = location.rsplit('/').next().unwrap().parse().unwrap();
    sqlx::query_as("SELECT key, size, sha256, kind FROM objects WHERE upload_id = $1")
        .bind(id)
        .fetch_one(&app.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_nifti_pair_uploads_in_parts_and_completing_queues_one_ingest_job() {
    let app = spawn_app().await;
    let tech = app.login("tech@north.gyri.test").await;
    let options = tus(
        &app,
        reqwest::Method::OPTIONS,
        "/api/v1/uploads",
        &Cred::None,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(options.headers()["tus-version"], "1.0.0");
    assert!(options.headers()["tus-extension"]
        .to_str()
        .unwrap()
        .contains("checksum"));

    let su = study_upload(&app, &tech).await;
    // Two parts and a tail, sent in three requests that do not end on part
    // boundaries; then a small file in one request.
    let t1 = bytes(2 * PART + 123_457, 1);
    let flair = bytes(300_001, 2);
    let t1_sha = hex::encode(Sha256::digest(&t1));
    let loc = create_ok(
        &app,
        &tech,
        &su,
        "t1.nii.gz",
        t1.len(),
        &[("sequence", "t1"), ("sha256", &t1_sha)],
    )
    .await;
    let cuts = [0, 5_000_000, PART + 77, t1.len()];
    for w in cuts.windows(2) {
        assert_eq!(offset(&app, &tech, &loc).await, w[0]);
        let res = patch(&app, &tech, &loc, w[0], t1[w[0]..w[1]].to_vec(), None).await;
        assert_eq!(
            res.status(),
            StatusCode::NO_CONTENT,
            "{:?}",
            res.text().await
        );
        assert_eq!(res.headers()["upload-offset"], w[1].to_string().as_str());
    }
    let loc2 = create_ok(
        &app,
        &tech,
        &su,
        "flair.nii.gz",
        flair.len(),
        &[("sequence", "flair")],
    )
    .await;
    let digest: [u8; 32] = Sha256::digest(&flair).into();
    let res = patch(&app, &tech, &loc2, 0, flair.clone(), Some(digest)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // A complete upload takes no more bytes.
    let res = patch(&app, &tech, &loc2, flair.len(), vec![1u8], None).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);

    for (loc, data) in [(&loc, &t1), (&loc2, &flair)] {
        let (key, size, sha, kind) = object_of(&app, loc).await;
        assert_eq!(size as usize, data.len());
        assert_eq!(sha, Sha256::digest(data).to_vec());
        assert_eq!(kind, "incoming");
        assert!(key.contains("/incoming/"), "{key}");
        assert_eq!(app.s3_object(&key).await, **data, "S3 holds the bytes sent");
    }
    // No staging objects or parts are left.
    let owner = app.owner().await;
    let parts: i64 = sqlx::query_scalar("SELECT count(*) FROM upload_parts")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(parts, 0);
    let (key, ..) = object_of(&app, &loc).await;
    assert_eq!(
        app.s3_keys(&key).await,
        vec![key.clone()],
        "no staging objects left"
    );

    let res = app
        .post(
            &format!("/api/v1/study-uploads/{su}/complete"),
            &tech,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["study_status"], "queued");
    assert_eq!(body["files"].as_array().unwrap().len(), 2);
    let study = body["study_id"].as_str().unwrap().to_owned();
    // Completing again changes nothing.
    let again: Value = app
        .post(
            &format!("/api/v1/study-uploads/{su}/complete"),
            &tech,
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["study_id"], study.as_str());

    let jobs: Vec<(String, Vec<u8>, i32)> =
        sqlx::query_as("SELECT job_type, job, max_attempts FROM apalis.jobs")
            .fetch_all(&owner)
            .await
            .unwrap();
    assert_eq!(jobs.len(), 1, "one ingest job");
    assert_eq!(jobs[0].0, "gyri.ingest");
    let payload: Value = serde_json::from_slice(&jobs[0].1).unwrap();
    assert_eq!(payload["study_id"], study.as_str());
    assert_eq!(jobs[0].2, 4);

    // Row-level security: the study, its upload and objects are visible in
    // North's scope only, not in South's nor the platform's.
    let as_app = app.as_app_role().await;
    let north: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM practices WHERE name = 'Demo Clinic North'")
            .fetch_one(&owner)
            .await
            .unwrap();
    let south: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM practices WHERE name = 'Demo Clinic South'")
            .fetch_one(&owner)
            .await
            .unwrap();
    for (practice, platform, expected) in [
        (north.to_string(), "off", 1i64),
        (south.to_string(), "off", 0),
        (String::new(), "on", 0),
    ] {
        let mut tx = as_app.begin().await.unwrap();
        sqlx::query(
            "SELECT set_config('app.practice_id', $1, true), set_config('app.platform', $2, true)",
        )
        .bind(&practice)
        .bind(platform)
        .execute(&mut *tx)
        .await
        .unwrap();
        for table in ["studies", "study_uploads"] {
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
            assert_eq!(n, expected, "{table} in scope {practice:?}/{platform}");
        }
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM objects")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, expected * 2, "objects in scope {practice:?}/{platform}");
    }

    let listed = app.json("/api/v1/studies", &tech).await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["studies"][0]["status"], "queued");
    let neuro = app.login("neuro@north.gyri.test").await;
    let shown = app.json(&format!("/api/v1/studies/{study}"), &neuro).await;
    assert_eq!(shown["status"], "queued");
    let viewed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'study.view' AND target_id = $1::uuid",
    )
    .bind(&study)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(viewed, 1, "the view is audited");
}

#[tokio::test]
async fn an_upload_cut_off_resumes_from_what_arrived() {
    let app = spawn_app().await;
    let tech = app.login("tech@north.gyri.test").await;
    let su = study_upload(&app, &tech).await;
    let data = bytes(PART + 2_000_000, 3);
    let loc = create_ok(&app, &tech, &su, "t1.nii", data.len(), &[]).await;

    // A body that fails after 6 MB, as a dropped connection does.
    let sent = 6 * 1024 * 1024;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = data[..sent]
        .chunks(256 * 1024)
        .map(|c| Ok(c.to_vec()))
        .chain([Err(std::io::Error::other("network down"))])
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let _ = tus(&app, reqwest::Method::PATCH, &loc, &tech)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .header("content-length", data.len().to_string())
        .body(body)
        .send()
        .await;

    // The server keeps what arrived; the client resumes from there.
    let mut at = 0;
    for _ in 0..50 {
        let res = tus(&app, reqwest::Method::HEAD, &loc, &tech)
            .send()
            .await
            .unwrap();
        at = res.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let res = patch(&app, &tech, &loc, at, data[at..].to_vec(), None).await;
        if res.status() == StatusCode::NO_CONTENT {
            break;
        }
        // The cut request may still hold the upload for a moment.
        assert_eq!(res.status(), StatusCode::CONFLICT, "{:?}", res.text().await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(at > 0 && at <= sent, "resumed at {at} of {sent} sent");
    let (key, size, sha, _) = object_of(&app, &loc).await;
    assert_eq!(size as usize, data.len());
    assert_eq!(sha, Sha256::digest(&data).to_vec());
    assert_eq!(app.s3_object(&key).await, data);
}

#[tokio::test]
async fn checksums_that_do_not_match_write_nothing() {
    let app = spawn_app().await;
    let tech = app.login("tech@north.gyri.test").await;
    let su = study_upload(&app, &tech).await;
    let data = bytes(PART + 10_000, 4);

    // Per request: 460, and the offset stays.
    let loc = create_ok(&app, &tech, &su, "a.nii", data.len(), &[]).await;
    let wrong: [u8; 32] = Sha256::digest(b"something else").into();
    let res = patch(&app, &tech, &loc, 0, data[..PART + 5].to_vec(), Some(wrong)).await;
    assert_eq!(res.status().as_u16(), 460);
    assert_eq!(offset(&app, &tech, &loc).await, 0);
    let right: [u8; 32] = Sha256::digest(&data[..PART + 5]).into();
    let res = patch(&app, &tech, &loc, 0, data[..PART + 5].to_vec(), Some(right)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset(&app, &tech, &loc).await, PART + 5);
    let res = patch(&app, &tech, &loc, PART + 5, data[PART + 5..].to_vec(), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        object_of(&app, &loc).await.2,
        Sha256::digest(&data).to_vec()
    );

    // Whole file: the upload fails and nothing is kept.
    let other = hex::encode(Sha256::digest(b"not this file"));
    let loc = create_ok(&app, &tech, &su, "b.nii", 1000, &[("sha256", &other)]).await;
    let res = patch(&app, &tech, &loc, 0, data[..1000].to_vec(), None).await;
    assert_eq!(res.status().as_u16(), 460);
    let msg: Value = res.json().await.unwrap();
    assert!(msg["error"].as_str().unwrap().contains("SHA-256"), "{msg}");
    let id = loc.rsplit('/').next().unwrap();
    assert_eq!(
        app.s3_keys("practices/")
            .await
            .iter()
            .filter(|k| k.contains(id))
            .count(),
        0
    );
    let status: String = sqlx::query_scalar("SELECT status::text FROM uploads WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.owner().await)
        .await
        .unwrap();
    assert_eq!(status, "failed");

    // A study upload with a failed file cannot complete.
    let res = app
        .post(
            &format!("/api/v1/study-uploads/{su}/complete"),
            &tech,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let msg: Value = res.json().await.unwrap();
    assert!(msg["error"].as_str().unwrap().contains("b.nii"), "{msg}");
}

#[tokio::test]
async fn limits_and_offsets_are_enforced_with_clear_messages() {
    let app = spawn_app_with(|s| {
        s.upload_limits.max_file_bytes = 50_000;
        s.upload_limits.max_study_bytes = 80_000;
    })
    .await;
    let tech = app.login("tech@north.gyri.test").await;
    let su = study_upload(&app, &tech).await;

    let res = create(&app, &tech, &su, "big.nii", 50_001, &[]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let msg: Value = res.json().await.unwrap();
    assert!(
        msg["error"]
            .as_str()
            .unwrap()
            .contains("at most 50000 bytes"),
        "{msg}"
    );

    let loc = create_ok(&app, &tech, &su, "a.nii", 50_000, &[]).await;
    let res = create(&app, &tech, &su, "b.nii", 40_000, &[]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let msg: Value = res.json().await.unwrap();
    assert!(
        msg["error"]
            .as_str()
            .unwrap()
            .contains("a study may have at most"),
        "{msg}"
    );

    // The practice quota counts uploads in progress.
    let owner = app.owner().await;
    sqlx::query(
        "UPDATE practices SET storage_quota_bytes = 60000 WHERE name = 'Demo Clinic North'",
    )
    .execute(&owner)
    .await
    .unwrap();
    let su2 = study_upload(&app, &tech).await;
    let res = create(&app, &tech, &su2, "c.nii", 20_000, &[]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let msg: Value = res.json().await.unwrap();
    assert!(msg["error"].as_str().unwrap().contains("quota"), "{msg}");

    // Wrong offsets, bodies past the length, missing headers.
    let data = bytes(50_000, 5);
    let res = patch(&app, &tech, &loc, 10, data[..10].to_vec(), None).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let res = patch(&app, &tech, &loc, 0, bytes(50_001, 5), None).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(offset(&app, &tech, &loc).await, 0);
    let res = tus(&app, reqwest::Method::POST, "/api/v1/uploads", &tech)
        .header("upload-metadata", format!("filename {}", b64("x")))
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "no study_upload");
    let res = app
        .http
        .post(format!("{}/api/v1/uploads", app.base))
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["tus-resumable"], "1.0.0");

    // Termination frees the quota.
    let res = tus(&app, reqwest::Method::DELETE, &loc, &tech)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = tus(&app, reqwest::Method::HEAD, &loc, &tech)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = create(&app, &tech, &su2, "c.nii", 20_000, &[]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn only_uploaders_of_the_practice_reach_an_upload() {
    let app = spawn_app().await;
    let tech = app.login("tech@north.gyri.test").await;
    let su = study_upload(&app, &tech).await;
    let loc = create_ok(&app, &tech, &su, "a.nii", 100, &[]).await;

    let neuro = app.login("neuro@north.gyri.test").await;
    let res = app.post("/api/v1/study-uploads", &neuro, json!({})).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "neurologists do not upload"
    );
    let platform = app.login("admin@gyri.test").await;
    let res = app
        .post("/api/v1/study-uploads", &platform, json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app.get("/api/v1/studies", &platform).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "platform admins see no patients"
    );

    let south = app.login("tech@south.gyri.test").await;
    let res = tus(&app, reqwest::Method::HEAD, &loc, &south)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = patch(&app, &south, &loc, 0, bytes(100, 6), None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = create(&app, &south, &su, "b.nii", 100, &[]).await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "another practice's study upload"
    );
    let res = app
        .get(&format!("/api/v1/study-uploads/{su}"), &south)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // A cookie-authenticated PATCH without the CSRF token is refused.
    let Cred::Session { cookie, .. } = &tech else {
        unreachable!()
    };
    let res = app
        .http
        .patch(format!("{}{loc}", app.base))
        .header("cookie", cookie)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(bytes(100, 6))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(offset(&app, &tech, &loc).await, 0);
}

/// Sends one whole file of a study upload (tus creation, then PATCHes of at
/// most 16 MB); returns its location.
pub async fn upload_file(
    app: &TestApp,
    cred: &Cred,
    study_upload: &str,
    name: &str,
    data: &[u8],
    sequence: Option<&str>,
) -> String {
    let extra: Vec<(&str, &str)> = sequence.map(|s| ("sequence", s)).into_iter().collect();
    let loc = create_ok(app, cred, study_upload, name, data.len(), &extra).await;
    let mut at = 0;
    while at < data.len() {
        let end = (at + 16 * 1024 * 1024).min(data.len());
        let res = patch(app, cred, &loc, at, data[at..end].to_vec(), None).await;
        assert_eq!(
            res.status(),
            StatusCode::NO_CONTENT,
            "{:?}",
            res.text().await
        );
        at = end;
    }
    loc
}

/// A research script's upload: PyPI's tuspy client (its own creation,
/// 5 MB PATCHes and offsets) with an API key.
#[tokio::test]
async fn a_research_script_uploads_with_tuspy() {
    let python = std::env::var("GYRI_TEST_PYTHON").expect(
        "GYRI_TEST_PYTHON: a Python with tuspy (make test sets it: scripts/test-python.sh)",
    );
    let app = spawn_app().await;
    let tech = app.login("tech@north.gyri.test").await;
    let key = app.api_key(&tech).await;
    let su = study_upload(&app, &Cred::Key(key.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(PART + 3_000_000, 7);
    let file = dir.path().join("T1.nii.gz");
    std::fs::write(&file, &data).unwrap();
    let script = r#"
import sys
from tusclient import client
url, key, path, su = sys.argv[1:]
c = client.TusClient(url, headers={"Authorization": "Bearer " + key})
u = c.uploader(path, chunk_size=5 * 1024 * 1024,
               metadata={"filename": "T1.nii.gz", "study_upload": su, "sequence": "t1"})
u.upload()
print(u.url)
"#;
    let out = tokio::process::Command::new(python)
        .args(["-c", script])
        .arg(format!("{}/api/v1/uploads", app.base))
        .arg(&key)
        .arg(&file)
        .arg(&su)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    let (key_s3, size, sha, _) = object_of(&app, url.trim()).await;
    assert_eq!(size as usize, data.len());
    assert_eq!(sha, Sha256::digest(&data).to_vec());
    assert_eq!(app.s3_object(&key_s3).await, data);
    let res = app
        .post(
            &format!("/api/v1/study-uploads/{su}/complete"),
            &Cred::Key(key),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn abandoned_uploads_expire_and_free_their_quota() {
    let app = spawn_app().await;
    let tech = app.login("tech@north.gyri.test").await;
    let su = study_upload(&app, &tech).await;
    let data = bytes(PART + 1000, 8);
    let loc = create_ok(&app, &tech, &su, "a.nii", 3 * PART, &[]).await;
    let res = patch(&app, &tech, &loc, 0, data, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let id = loc.rsplit('/').next().unwrap();
    let owner = app.owner().await;
    let (key, tail): (String, Option<String>) =
        sqlx::query_as("SELECT object_key, tail_key FROM uploads WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&owner)
            .await
            .unwrap();
    let tail = tail.expect("the bytes short of a part wait in a staging object");
    assert_eq!(app.s3_keys(&key).await, vec![tail.clone()]);
    sqlx::query("UPDATE practices SET storage_quota_bytes = $1 WHERE name = 'Demo Clinic North'")
        .bind((4 * PART) as i64)
        .execute(&owner)
        .await
        .unwrap();
    let res = create(&app, &tech, &su, "b.nii", 2 * PART, &[]).await;
    assert_eq!(
        res.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "the unfinished upload holds its share"
    );

    let db = gyri_store::Db::migrate_and_connect(&app.owner_url, None, 2)
        .await
        .unwrap();
    assert!(
        gyri_store::uploads::expire_abandoned(&db)
            .await
            .unwrap()
            .is_empty(),
        "not expired yet"
    );
    sqlx::query("UPDATE uploads SET expires_at = now() - interval '1 minute' WHERE id = $1::uuid")
        .bind(id)
        .execute(&owner)
        .await
        .unwrap();
    let abandoned = gyri_store::uploads::expire_abandoned(&db).await.unwrap();
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].tail_key.as_deref(), Some(tail.as_str()));
    assert!(abandoned[0].multipart_id.is_some());
    let res = tus(&app, reqwest::Method::HEAD, &loc, &tech)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = create(&app, &tech, &su, "b.nii", 2 * PART, &[]).await;
    assert_eq!(res.status(), StatusCode::CREATED, "the quota is free again");
}
