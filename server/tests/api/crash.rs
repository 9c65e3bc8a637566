//! Worker processes sharing the queue: one is SIGKILLed in the middle of an
//! analysis, another stops on SIGTERM in the middle of one; every study
//! still completes, with exactly one result set.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::helpers::{s3_endpoint, spawn_app, TestApp};
use crate::pipeline::{testdata, upload_study};

fn worker_bin() -> String {
    std::env::var("GYRI_WORKER_BIN").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_owned());
        format!("{target}/debug/gyri-worker")
    })
}

fn start_worker(app: &TestApp, endpoint: &str) -> Child {
    Command::new(worker_bin())
        .arg("work")
        .env("DATABASE_URL", &app.owner_url)
        .env("S3_ENDPOINT", endpoint)
        .env("S3_BUCKET", app.objects.bucket())
        .env("GYRI_WORKER_CONCURRENCY", "1")
        .env("RUST_LOG", "info,sqlx=warn,aws=warn,apalis=warn")
        .spawn()
        .expect("gyri-worker runs (make test builds it; GYRI_WORKER_BIN)")
}

/// The pid of the worker process running an analysis, if any (worker
/// names are `gyri-analyse-{pid}-{random}`).
async fn analysing_pid(app: &TestApp) -> Option<u32> {
    let lock: Option<String> = sqlx::query_scalar(
        "SELECT lock_by FROM apalis.jobs WHERE job_type = 'gyri.analyse' AND status = 'Running'
         ORDER BY lock_at LIMIT 1",
    )
    .fetch_optional(&app.owner().await)
    .await
    .unwrap()
    .flatten();
    lock.and_then(|l| {
        l.strip_prefix("gyri-analyse-")?
            .split('-')
            .next()?
            .parse()
            .ok()
    })
}

async fn wait_for<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[tokio::test]
async fn killed_and_stopped_workers_lose_no_study_and_write_each_result_once() {
    let endpoint = s3_endpoint().expect(
        "GYRI_TEST_S3_ENDPOINT: worker processes need an S3 server (make test starts moto)",
    );
    let app = spawn_app().await;
    let tech = app.login("tech@north.gyri.test").await;
    let t1 = std::fs::read(testdata().join("colin27_t1.nii.gz")).unwrap();
    let flair = std::fs::read(testdata().join("colin27_brain.nii.gz")).unwrap();
    let a = upload_study(
        &app,
        &tech,
        Some("P-1"),
        &[("t1.nii.gz", t1.clone(), Some("t1"))],
    )
    .await;
    let b = upload_study(
        &app,
        &tech,
        Some("P-2"),
        &[
            ("t1.nii.gz", t1, Some("t1")),
            ("flair.nii.gz", flair, Some("flair")),
        ],
    )
    .await;
    let studies = [
        a["study_id"].as_str().unwrap().to_owned(),
        b["study_id"].as_str().unwrap().to_owned(),
    ];

    let mut workers = vec![start_worker(&app, &endpoint), start_worker(&app, &endpoint)];

    // SIGKILL the first worker seen analysing, a moment into its analysis.
    let pid = wait_for("an analysis starts", Duration::from_secs(300), async || {
        for w in workers.iter_mut() {
            if let Some(status) = w.try_wait().unwrap() {
                panic!("a worker process exited at start: {status:?}");
            }
        }
        analysing_pid(&app).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = workers
        .iter()
        .position(|w| w.id() == pid)
        .expect("one of ours");
    let mut dead = workers.remove(killed);
    signal(&dead, nix::sys::signal::Signal::SIGKILL);
    dead.wait().unwrap();
    let mut survivor = workers.remove(0);

    // SIGTERM the other one while it analyses: it finishes, then exits 0.
    let survivor_pid = survivor.id();
    wait_for(
        "the other worker analyses",
        Duration::from_secs(300),
        async || (analysing_pid(&app).await == Some(survivor_pid)).then_some(()),
    )
    .await;
    let running: String = sqlx::query_scalar(
        "SELECT convert_from(job, 'UTF8')::jsonb ->> 'study_id' FROM apalis.jobs
         WHERE job_type = 'gyri.analyse' AND status = 'Running' AND lock_by LIKE $1",
    )
    .bind(format!("gyri-analyse-{survivor_pid}-%"))
    .fetch_one(&app.owner().await)
    .await
    .unwrap();
    signal(&survivor, nix::sys::signal::Signal::SIGTERM);
    let exited = wait_for(
        "the stopped worker exits",
        Duration::from_secs(300),
        async || survivor.try_wait().unwrap(),
    )
    .await;
    assert!(
        exited.success(),
        "SIGTERM ends the worker cleanly: {exited:?}"
    );
    let status: String = sqlx::query_scalar("SELECT status::text FROM studies WHERE id = $1::uuid")
        .bind(&running)
        .fetch_one(&app.owner().await)
        .await
        .unwrap();
    assert_eq!(
        status, "done",
        "the stopping worker finished its analysis first"
    );

    // A fresh worker takes over the killed one's job.
    let mut fresh = start_worker(&app, &endpoint);
    let owner = app.owner().await;
    wait_for(
        "every study is done",
        Duration::from_secs(600),
        async || {
            let done: i64 =
                sqlx::query_scalar("SELECT count(*) FROM studies WHERE status = 'done'")
                    .fetch_one(&owner)
                    .await
                    .unwrap();
            (done == 2).then_some(())
        },
    )
    .await;
    signal(&fresh, nix::sys::signal::Signal::SIGTERM);
    assert!(fresh.wait().unwrap().success());

    for study in &studies {
        let (runs, lesions_ok): (i32, bool) = sqlx::query_as(
            "SELECT a.runs, coalesce(a.lesion_count, 0) =
                    (SELECT count(*) FROM lesions l WHERE l.study_id = a.study_id)
             FROM analyses a WHERE a.study_id = $1::uuid",
        )
        .bind(study)
        .fetch_one(&owner)
        .await
        .unwrap();
        assert_eq!(runs, 1, "study {study}: one result set, written once");
        assert!(lesions_ok);
        let masks: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM objects WHERE study_id = $1::uuid AND kind = 'masks'",
        )
        .bind(study)
        .fetch_one(&owner)
        .await
        .unwrap();
        assert_eq!(masks, 2);
    }
    let analyses: i64 = sqlx::query_scalar("SELECT count(*) FROM analyses")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(analyses, 2);
    let jobs: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT job_type, status, attempts FROM apalis.jobs ORDER BY job_type")
            .fetch_all(&owner)
            .await
            .unwrap();
    assert!(jobs.iter().all(|(_, s, _)| s == "Done"), "{jobs:?}");
    assert!(
        jobs.iter()
            .any(|(t, _, attempts)| t == "gyri.analyse" && *attempts >= 2),
        "the killed worker's analysis ran again: {jobs:?}"
    );
}
