//! Gyri's background work, run in-process by the embedded edition or as its
//! own deployment.
//!
//! Today there is one periodic task: deleting expired sessions and old
//! sign-in attempts. The analysis jobs (apalis, PostgreSQL-backed) arrive
//! with the imaging pipeline.

pub mod analyze;
pub mod anatomy;
pub mod brain;
pub mod evaluate;
pub mod ingest;
pub mod jobs;
pub mod synth;

use gyri_store::Db;
use std::time::Duration;

/// Runs housekeeping every ten minutes, forever.
pub async fn housekeeping(db: Db) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
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
