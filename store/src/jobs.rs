//! Job payloads and their queues (apalis-postgres, schema `apalis`).
//!
//! Payloads are IDs only. A job is pushed inside the transaction that makes
//! its work exist (the study row), so there is never a study without its job
//! or a job without its study.

use apalis_core::task::builder::TaskBuilder;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::ids::PracticeId;

/// The queue ingest jobs wait in.
pub const INGEST_QUEUE: &str = "gyri.ingest";
/// The queue analysis jobs wait in.
pub const ANALYSE_QUEUE: &str = "gyri.analyse";

/// How many times a job runs at most, counting runs ended by a dead worker
/// (apalis counts those as attempts too). Transient failures are retried
/// with backoff inside a run first (see the worker).
pub const MAX_ATTEMPTS: usize = 4;

/// A job about one study of one practice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyJob {
    pub practice_id: PracticeId,
    pub study_id: Uuid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Unpack, convert, de-identify, store volumes, match the patient.
    Ingest(StudyJob),
    /// Brain extraction, U-Net, measurements.
    Analyse(StudyJob),
}

impl Job {
    pub fn queue(&self) -> &'static str {
        match self {
            Job::Ingest(_) => INGEST_QUEUE,
            Job::Analyse(_) => ANALYSE_QUEUE,
        }
    }

    fn payload(&self) -> &StudyJob {
        match self {
            Job::Ingest(p) | Job::Analyse(p) => p,
        }
    }
}

/// Queues a job inside the caller's transaction.
pub async fn push(conn: &mut PgConnection, job: Job) -> StoreResult<()> {
    let bytes = serde_json::to_vec(job.payload())
        .map_err(|e| StoreError::Internal(anyhow::Error::new(e)))?;
    let task = TaskBuilder::new(bytes).max_attempts(MAX_ATTEMPTS).build();
    apalis_postgres::queries::push_tasks(conn, job.queue(), vec![task])
        .await
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("cannot queue the job: {e}")))
}
