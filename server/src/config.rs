//! `gyri-server`'s settings, from flags and environment variables. Every
//! setting has a working default: with none at all, Gyri runs embedded.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::PathBuf;
use time::Duration;

/// All settings of the server binary.
#[derive(Clone)]
pub struct Settings {
    /// `--listen` / `GYRI_LISTEN`: the HTTP address (default 127.0.0.1:3000).
    pub listen: SocketAddr,
    /// `--data-dir` / `GYRI_DATA_DIR`: the embedded edition's data (default ./data).
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: a PostgreSQL URL for the owner of Gyri's database
    /// (migrations run as it). Unset: an embedded cluster under the data dir.
    pub database_url: Option<String>,
    /// `GYRI_APP_DB_PASSWORD`: password of the `gyri_app` role, set by the
    /// server at start-up; unset where the server trusts local connections.
    pub app_db_password: Option<String>,
    /// `S3_ENDPOINT`, `S3_BUCKET`, `S3_REGION` (+ `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`): an external object store. Unset: an
    /// embedded S3 endpoint over `<data dir>/objects`.
    pub s3: Option<ExternalS3>,
    /// `--demo` / `GYRI_DEMO=1`: seed the demo practices once and print the
    /// sign-ins. `GYRI_DEMO_PASSWORD` sets their password.
    pub demo: bool,
    pub demo_password: Option<String>,
    /// `GYRI_BOOTSTRAP_ADMIN_EMAIL` / `GYRI_BOOTSTRAP_ADMIN_PASSWORD`: create
    /// the first platform admin on a database that has none.
    pub bootstrap_admin: Option<(String, String)>,
    /// `GYRI_SESSION_HOURS`: how long a session lasts (default 12).
    pub session_ttl: Duration,
    /// `GYRI_COOKIE_SECURE`: mark the session cookie Secure (default true;
    /// browsers accept Secure cookies from http://localhost and 127.0.0.1).
    pub cookie_secure: bool,
    /// `GYRI_SITE_ROOT`: where the compiled browser bundle (`pkg/`) and the
    /// CSS are (default: `site` next to the binary's workspace, see Makefile).
    pub site_root: PathBuf,
    /// `GYRI_EMBEDDED_WORKER`: run the job worker in this process (default
    /// true; false when workers are a separate deployment).
    pub embedded_worker: bool,
    /// Upload size limits (the practice quota is per practice, in the
    /// database).
    pub upload_limits: gyri_store::uploads::UploadLimits,
}

#[derive(Clone)]
pub struct ExternalS3 {
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database",
                &self.database_url.as_ref().map(|_| "<external>"),
            )
            .field("s3_bucket", &self.s3.as_ref().map(|s| &s.bucket))
            .field("demo", &self.demo)
            .field("session_ttl", &self.session_ttl)
            .field("cookie_secure", &self.cookie_secure)
            .field("site_root", &self.site_root)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Defaults for a process with no configuration at all.
    pub fn embedded(data_dir: PathBuf) -> Settings {
        Settings {
            listen: "127.0.0.1:3000".parse().expect("valid address"),
            data_dir,
            database_url: None,
            app_db_password: None,
            s3: None,
            demo: false,
            demo_password: None,
            bootstrap_admin: None,
            session_ttl: Duration::hours(12),
            cookie_secure: true,
            site_root: default_site_root(),
            embedded_worker: true,
            upload_limits: Default::default(),
        }
    }

    /// Reads the command line (without the program name) and the environment.
    pub fn from_args_and_env(args: impl IntoIterator<Item = String>) -> anyhow::Result<Settings> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut s = Settings::embedded(PathBuf::from(
            env("GYRI_DATA_DIR").unwrap_or_else(|| "data".into()),
        ));
        if let Some(listen) = env("GYRI_LISTEN") {
            s.listen = parse_listen(&listen)?;
        }
        s.database_url = env("DATABASE_URL");
        s.app_db_password = env("GYRI_APP_DB_PASSWORD");
        if let Some(bucket) = env("S3_BUCKET") {
            s.s3 = Some(ExternalS3 {
                endpoint: env("S3_ENDPOINT"),
                bucket,
                region: env("S3_REGION")
                    .or_else(|| env("AWS_REGION"))
                    .unwrap_or_else(|| "us-east-1".into()),
            });
        } else if env("S3_ENDPOINT").is_some() {
            bail!("S3_ENDPOINT is set but S3_BUCKET is not");
        }
        s.demo = env("GYRI_DEMO").is_some_and(|v| v == "1" || v == "true");
        s.demo_password = env("GYRI_DEMO_PASSWORD");
        s.bootstrap_admin = match (
            env("GYRI_BOOTSTRAP_ADMIN_EMAIL"),
            env("GYRI_BOOTSTRAP_ADMIN_PASSWORD"),
        ) {
            (Some(e), Some(p)) => Some((e, p)),
            (None, None) => None,
            _ => bail!("set both GYRI_BOOTSTRAP_ADMIN_EMAIL and GYRI_BOOTSTRAP_ADMIN_PASSWORD"),
        };
        if let Some(hours) = env("GYRI_SESSION_HOURS") {
            let hours: i64 = hours
                .parse()
                .context("GYRI_SESSION_HOURS must be a whole number")?;
            s.session_ttl = Duration::hours(hours.clamp(1, 24 * 30));
        }
        if let Some(v) = env("GYRI_COOKIE_SECURE") {
            s.cookie_secure = !(v == "0" || v == "false");
        }
        if let Some(v) = env("GYRI_SITE_ROOT") {
            s.site_root = PathBuf::from(v);
        }
        for (name, limit) in [
            ("GYRI_MAX_FILE_BYTES", &mut s.upload_limits.max_file_bytes),
            ("GYRI_MAX_STUDY_BYTES", &mut s.upload_limits.max_study_bytes),
            ("GYRI_MAX_STUDY_FILES", &mut s.upload_limits.max_study_files),
        ] {
            if let Some(v) = env(name) {
                *limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{name} must be a positive whole number"))?;
            }
        }
        if let Some(v) = env("GYRI_EMBEDDED_WORKER") {
            s.embedded_worker = !(v == "0" || v == "false");
        }

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .with_context(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--listen" => s.listen = parse_listen(&value("--listen")?)?,
                "--data-dir" => s.data_dir = PathBuf::from(value("--data-dir")?),
                "--demo" => s.demo = true,
                "-h" | "--help" => {
                    println!("{}", HELP);
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n\n{HELP}"),
            }
        }
        Ok(s)
    }
}

fn parse_listen(v: &str) -> anyhow::Result<SocketAddr> {
    v.parse()
        .with_context(|| format!("{v:?} is not an address like 127.0.0.1:3000"))
}

/// The browser bundle built by `make`: `<workspace>/target/site` at build
/// time, unless GYRI_SITE_ROOT says otherwise.
fn default_site_root() -> PathBuf {
    option_env!("GYRI_BUILD_SITE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site")))
}

pub const HELP: &str = "gyri-server: the Gyri web portal

USAGE: gyri-server [--listen ADDR] [--data-dir DIR] [--demo]

With no configuration, Gyri runs embedded: a private PostgreSQL cluster and an
S3-compatible endpoint under the data directory, and the job worker in-process.

  --listen ADDR     address to serve on (GYRI_LISTEN, default 127.0.0.1:3000)
  --data-dir DIR    embedded data directory (GYRI_DATA_DIR, default ./data)
  --demo            seed the demo practices once and print their sign-ins (GYRI_DEMO=1)

Environment: DATABASE_URL, GYRI_APP_DB_PASSWORD, S3_ENDPOINT, S3_BUCKET, S3_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, GYRI_DEMO_PASSWORD,
GYRI_BOOTSTRAP_ADMIN_EMAIL, GYRI_BOOTSTRAP_ADMIN_PASSWORD, GYRI_SESSION_HOURS,
GYRI_COOKIE_SECURE, GYRI_SITE_ROOT, GYRI_EMBEDDED_WORKER, GYRI_MAX_FILE_BYTES,
GYRI_MAX_STUDY_BYTES, GYRI_MAX_STUDY_FILES, RUST_LOG.";
