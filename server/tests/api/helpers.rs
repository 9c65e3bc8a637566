//! `spawn_app()`: a fresh database, the real router on a free port, and a
//! small HTTP client that carries a session cookie or an API key.

use gyri_server::{Application, Settings};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub const PASSWORD: &str = "demo-password-123";

/// The server under test. Dropping it shuts the server down.
pub struct TestApp {
    pub base: String,
    /// The owner's URL of this test's database.
    pub owner_url: String,
    pub http: reqwest::Client,
    pub objects: gyri_store::objects::ObjectStore,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Cred {
    None,
    Session { cookie: String, csrf: String },
    Key(String),
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The test S3 server (`GYRI_TEST_S3_ENDPOINT`), if any.
pub fn s3_endpoint() -> Option<String> {
    std::env::var("GYRI_TEST_S3_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
}

pub fn admin_url() -> String {
    std::env::var("GYRI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Starts Gyri with the demo practices on a database of its own.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let admin = admin_url();
    let name = format!("gyri_test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("the test PostgreSQL is reachable (GYRI_TEST_DATABASE_URL)");
    // (a UUID's digits)
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create the test database");
    pool.close().await;
    let owner_url = with_database(&admin, &name);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::embedded(dir.path().to_path_buf());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database_url = Some(owner_url.clone());
    settings.demo = true;
    settings.demo_password = Some(PASSWORD.into());
    settings.embedded_worker = false;
    // A real S3-protocol server in a separate process (moto, started by the
    // test command), a bucket per test; else the embedded endpoint.
    if let Some(endpoint) = s3_endpoint() {
        let bucket = format!("gyri-test-{}", uuid::Uuid::new_v4().simple());
        let store =
            gyri_store::objects::ObjectStore::connect(&gyri_store::objects::ObjectStoreConfig {
                endpoint: Some(endpoint.clone()),
                bucket: bucket.clone(),
                region: "us-east-1".into(),
                credentials: None,
            })
            .await
            .unwrap();
        store
            .ensure_bucket()
            .await
            .expect("the test S3 server creates a bucket");
        settings.s3 = Some(gyri_server::ExternalS3 {
            endpoint: Some(endpoint),
            bucket,
            region: "us-east-1".into(),
        });
    }
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("the app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let objects = app.objects().clone();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        owner_url,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        objects,
        _dir: dir,
        shutdown: Some(tx),
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        cred: &Cred,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        match cred {
            Cred::None => {}
            Cred::Session { cookie, csrf } => {
                req = req.header("cookie", cookie).header("x-csrf-token", csrf);
            }
            Cred::Key(key) => req = req.bearer_auth(key),
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("the request reaches the server")
    }

    pub async fn get(&self, path: &str, cred: &Cred) -> reqwest::Response {
        self.request(Method::GET, path, cred, None).await
    }

    pub async fn post(&self, path: &str, cred: &Cred, body: Value) -> reqwest::Response {
        self.request(Method::POST, path, cred, Some(body)).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/v1/session",
            &Cred::None,
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Signs in (demo password) and returns the session credentials.
    pub async fn login(&self, email: &str) -> Cred {
        self.login_with(email, PASSWORD).await
    }

    pub async fn login_with(&self, email: &str, password: &str) -> Cred {
        let res = self.sign_in(email, password).await;
        assert_eq!(res.status(), StatusCode::OK, "sign-in of {email}");
        let cookie = res
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: Value = res.json().await.unwrap();
        Cred::Session {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an API key for the signed-in user.
    pub async fn api_key(&self, cred: &Cred) -> String {
        let res = self
            .post("/api/v1/api-keys", cred, json!({ "name": "tests" }))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    pub async fn json(&self, path: &str, cred: &Cred) -> Value {
        let res = self.get(path, cred).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.json().await.unwrap()
    }

    /// The id of a practice by name (as the platform admin sees it).
    pub async fn practice_id(&self, platform: &Cred, name: &str) -> String {
        let list = self.json("/api/v1/practices", platform).await;
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("practice {name}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An object's bytes, straight from the object store.
    pub async fn s3_object(&self, key: &str) -> Vec<u8> {
        self.objects.get(key).await.expect("the object exists")
    }

    /// The keys in the object store under `prefix`.
    pub async fn s3_keys(&self, prefix: &str) -> Vec<String> {
        self.objects
            .list(prefix)
            .await
            .expect("the object store lists")
    }

    /// A connection as the database owner, to arrange or inspect state.
    pub async fn owner(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.owner_url).await.unwrap()
    }

    /// A connection as the application role, which row-level security binds.
    pub async fn as_app_role(&self) -> sqlx::PgPool {
        use sqlx::postgres::PgConnectOptions;
        use std::str::FromStr;
        let options = PgConnectOptions::from_str(&self.owner_url)
            .unwrap()
            .username("gyri_app");
        sqlx::PgPool::connect_with(options).await.unwrap()
    }

    /// Invites through `path` (as `cred`) and accepts; returns the new
    /// user's session.
    pub async fn invite_and_accept(&self, cred: &Cred, path: &str, body: Value) -> Cred {
        let res = self.post(path, cred, body.clone()).await;
        assert_eq!(res.status(), StatusCode::OK, "invite via {path}");
        let issued: Value = res.json().await.unwrap();
        let token = issued["token"].as_str().unwrap();
        let res = self
            .post(
                &format!("/api/v1/invitations/{token}/accept"),
                &Cred::None,
                json!({ "password": "a-new-password-42" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        self.login_with(body["email"].as_str().unwrap(), "a-new-password-42")
            .await
    }
}
