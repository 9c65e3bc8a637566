//! Gyri's background work, run in-process by the embedded edition or as its
//! own deployment.
//!
//! The jobs (ingest, analysis) run on apalis with PostgreSQL (`jobs`); one
//! periodic task deletes expired sessions and old sign-in attempts and
//! cancels abandoned uploads (`housekeeping`).

pub mod analyze;
pub mod anatomy;
pub mod brain;
pub mod evaluate;
pub mod ingest;
pub mod jobs;
pub mod synth;

use gyri_store::objects::ObjectStore;
use gyri_store::Db;
use std::time::Duration;

/// Process settings for running the networks fast (see
/// `gyri_analysis::alloc`): call first in `main` of any binary that runs
/// the job worker.
pub fn prepare_compute() {
    gyri_analysis::alloc::keep_freed_activations();
    gyri_analysis::alloc::flush_denormals();
}

/// Logs to stderr: `RUST_LOG` (else `default_filter`), JSON when
/// `GYRI_LOG_FORMAT=json`. For `gyri-server` and `gyri-worker work`.
pub fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    if std::env::var("GYRI_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

/// Runs housekeeping every ten minutes, forever: expired sessions and
/// sign-in attempts, and uploads abandoned past their expiry (cancelled,
/// their parts and staging objects removed from S3).
pub async fn housekeeping(db: Db, objects: ObjectStore) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match gyri_store::uploads::expire_abandoned(&db).await {
            Ok(abandoned) => {
                for a in &abandoned {
                    if let Some(m) = &a.multipart_id {
                        let _ = objects.abort_multipart(&a.object_key, m).await;
                    }
                    for key in a.tail_key.iter().chain([&a.object_key]) {
                        let _ = objects.delete(key).await;
                    }
                }
                if !abandoned.is_empty() {
                    tracing::info!(
                        uploads = abandoned.len(),
                        "housekeeping: cancelled abandoned uploads"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "housekeeping (uploads) failed"),
        }
        match gyri_store::auth::purge_expired(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "housekeeping: purged expired sessions and attempts"
            ),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
    }
}
