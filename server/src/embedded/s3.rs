//! An S3-compatible endpoint over `<data dir>/objects` (s3s + s3s-fs), on a
//! loopback port, so the embedded edition uses the object store through
//! aws-sdk-s3 exactly as it would use real S3. Credentials are generated per
//! process: only this process knows them.

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;
use tokio::sync::watch;

use gyri_store::objects::ObjectStoreConfig;

pub struct EmbeddedS3 {
    pub config: ObjectStoreConfig,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl EmbeddedS3 {
    pub async fn start(data_dir: &Path) -> anyhow::Result<EmbeddedS3> {
        let root = data_dir.join("objects");
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|e| anyhow::anyhow!("cannot open the object directory: {e:?}"))?;
        let access_key = gyri_store::auth::random_token();
        let secret_key = gyri_store::auth::random_token();
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(
                access_key.clone(),
                secret_key.clone(),
            ));
            b.build()
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (shutdown, mut stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            let graceful = hyper_util::server::graceful::GracefulShutdown::new();
            loop {
                let socket = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(e) => {
                            tracing::warn!(error = %e, "embedded S3: accept failed");
                            continue;
                        }
                    },
                    _ = stop.changed() => break,
                };
                let conn = http.serve_connection(TokioIo::new(socket), service.clone());
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await;
        });
        tracing::info!(%addr, dir = %root.display(), "embedded S3 endpoint started");
        Ok(EmbeddedS3 {
            config: ObjectStoreConfig {
                endpoint: Some(format!("http://{addr}")),
                bucket: "gyri".into(),
                region: "us-east-1".into(),
                credentials: Some((access_key, secret_key)),
            },
            shutdown,
            task,
        })
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}
