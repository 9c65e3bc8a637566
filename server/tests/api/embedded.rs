//! The embedded edition itself: `gyri-server` with no configuration at all
//! in an empty directory starts its own PostgreSQL and S3 endpoint, stops
//! cleanly on SIGTERM, and finds its data again on the next start.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &std::path::Path, port: u16) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gyri-server"));
    for var in [
        "DATABASE_URL",
        "S3_ENDPOINT",
        "S3_BUCKET",
        "GYRI_DATA_DIR",
        "GYRI_LISTEN",
        "GYRI_DEMO",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(dir)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--demo"])
        .env("GYRI_DEMO_PASSWORD", "embedded-password-1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("gyri-server.log")).unwrap())
        .spawn()
        .expect("gyri-server starts")
}

async fn wait_ready(base: &str, child: &mut Child, dir: &std::path::Path) {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            let log = std::fs::read_to_string(dir.join("gyri-server.log")).unwrap_or_default();
            panic!("gyri-server exited early:\n{log}");
        }
        if let Ok(res) = http.get(format!("{base}/readyz")).send().await {
            if res.status() == StatusCode::OK {
                let body: Value = res.json().await.unwrap();
                assert_eq!(body, json!({ "database": "ok", "object_store": "ok" }));
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gyri-server did not become ready");
}

fn stop(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean shutdown: {status}");
}

async fn sign_in(base: &str) -> (String, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/v1/session"))
        .json(&json!({ "email": "admin@gyri.test", "password": "embedded-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = res.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn runs_with_no_configuration_and_keeps_its_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut child = start(dir.path(), port);
    wait_ready(&base, &mut child, dir.path()).await;
    assert!(dir.path().join("data/postgres/cluster/PG_VERSION").exists());
    assert!(dir.path().join("data/objects").is_dir());
    let (cookie, csrf) = sign_in(&base).await;
    let res = http
        .post(format!("{base}/api/v1/practices"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&json!({ "name": "Persistent Clinic" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    stop(child);

    let mut child = start(dir.path(), port);
    wait_ready(&base, &mut child, dir.path()).await;
    let (cookie, _) = sign_in(&base).await;
    let practices: Value = http
        .get(format!("{base}/api/v1/practices"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = practices
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Demo Clinic North",
            "Demo Clinic South",
            "Persistent Clinic"
        ],
        "seeded once, data kept"
    );
    stop(child);
}
