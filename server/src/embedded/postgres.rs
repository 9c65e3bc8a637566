//! A private PostgreSQL cluster under `<data dir>/postgres`, run from the
//! installed PostgreSQL binaries as a child process, reachable only through a
//! Unix socket in a directory only its owner can enter.
//!
//! PostgreSQL refuses to run as root: when Gyri runs as root, the cluster's
//! directory is handed to the `postgres` user and the binaries run with its
//! uid and gid.

use anyhow::{bail, Context};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running embedded cluster. Call [`EmbeddedPostgres::stop`] to shut it down.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    child: Child,
    socket_dir: PathBuf,
}

/// The uid/gid the binaries run as (None: as ourselves).
fn run_as() -> anyhow::Result<Option<(u32, u32)>> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")
        .context("cannot look up the postgres user")?
        .context("running as root needs a `postgres` user to run PostgreSQL as (apt-get install postgresql)")?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

/// The directory holding `initdb` and `postgres`: `GYRI_PG_BIN`, else the
/// newest /usr/lib/postgresql/<version>/bin, else whatever is on PATH.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("GYRI_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn command(bin: &Option<PathBuf>, name: &str, owner: Option<(u32, u32)>) -> Command {
    let program = match bin {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    };
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_remove("PGDATA").stdin(Stdio::null());
    cmd
}

fn chown_tree(path: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    let uid = nix::unistd::Uid::from_raw(uid);
    let gid = nix::unistd::Gid::from_raw(gid);
    nix::unistd::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {}", path.display()))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), Some((uid.as_raw(), gid.as_raw())))?;
        }
    }
    Ok(())
}

impl EmbeddedPostgres {
    /// Initialises the cluster on first use and starts it.
    pub async fn start(data_dir: &Path) -> anyhow::Result<EmbeddedPostgres> {
        let data_dir = &std::path::absolute(data_dir)?;
        let owner = run_as()?;
        let bin = bin_dir();
        let root = data_dir.join("postgres");
        let pgdata = root.join("cluster");
        let socket_dir = root.join("socket");
        std::fs::create_dir_all(&socket_dir)
            .with_context(|| format!("cannot create {}", socket_dir.display()))?;
        std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o700))?;
        if owner.is_some() {
            // The postgres user must be able to reach its directory.
            grant_traverse(data_dir)?;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
            nix::unistd::chown(
                &root,
                owner.map(|o| nix::unistd::Uid::from_raw(o.0)),
                owner.map(|o| nix::unistd::Gid::from_raw(o.1)),
            )?;
            chown_tree(&socket_dir, owner)?;
        }

        if !pgdata.join("PG_VERSION").exists() {
            tracing::info!(dir = %pgdata.display(), "initialising the embedded PostgreSQL cluster");
            if pgdata.exists() {
                // A half-made cluster from an interrupted first start.
                std::fs::remove_dir_all(&pgdata)?;
            }
            let out = command(&bin, "initdb", owner)
                .arg("-D")
                .arg(&pgdata)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ])
                .output()
                .await
                .context(
                    "cannot run initdb: is PostgreSQL installed (apt-get install postgresql)?",
                )?;
            if !out.status.success() {
                bail!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        stop_stale_postmaster(&pgdata).await;

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("postgres.log"))?;
        chown_tree(&root.join("postgres.log"), owner)?;
        let child = command(&bin, "postgres", owner)
            .arg("-D")
            .arg(&pgdata)
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", socket_dir.display()))
            .args(["-c", "max_connections=50"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(false)
            .spawn()
            .context("cannot start postgres")?;
        let mut pg = EmbeddedPostgres { child, socket_dir };
        pg.wait_ready().await?;
        pg.ensure_database("gyri").await?;
        Ok(pg)
    }

    /// The owner's URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres:///{name}?host={}&user=postgres",
            self.socket_dir.display()
        )
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = self.url("postgres");
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                bail!("the embedded PostgreSQL exited at start ({status}); see postgres/postgres.log in the data directory");
            }
            if sqlx::PgPool::connect(&url).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the embedded PostgreSQL did not become ready in 30 s")
    }

    async fn ensure_database(&self, name: &str) -> anyhow::Result<()> {
        let pool = sqlx::PgPool::connect(&self.url("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&pool)
                .await?;
        if !exists {
            // (a name of our own, not input: "gyri")
            let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await?;
        }
        pool.close().await;
        Ok(())
    }

    /// Fast shutdown: ends sessions, checkpoints, exits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                tracing::info!(status = %status?, "embedded PostgreSQL stopped");
            }
            Err(_) => {
                tracing::warn!("embedded PostgreSQL did not stop in 30 s; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// Lets other users (postgres) pass through `dir` and its ancestors: adds
/// the execute bit for others where it is missing (no read: they cannot list).
fn grant_traverse(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::path::absolute(dir)?;
    for ancestor in dir.ancestors() {
        let meta = std::fs::metadata(ancestor)?;
        if meta.mode() & 0o001 == 0 {
            let mode = (meta.mode() & 0o7777) | 0o001;
            std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode))
                .with_context(|| {
                    format!("cannot let postgres pass through {}", ancestor.display())
                })?;
            tracing::info!(dir = %ancestor.display(), "let other users pass through (o+x) so that postgres reaches its cluster");
        }
    }
    Ok(())
}

/// A previous Gyri that was killed leaves its postgres running; stop it so
/// that ours can start on the same cluster.
async fn stop_stale_postmaster(pgdata: &Path) {
    let Ok(pidfile) = std::fs::read_to_string(pgdata.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = pidfile
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    if !exe.to_string_lossy().contains("postgres") {
        return; // stale file; postgres itself handles it
    }
    tracing::warn!(%pid, "stopping a postgres left running by an earlier Gyri");
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    for _ in 0..300 {
        if nix::sys::signal::kill(pid, None).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
