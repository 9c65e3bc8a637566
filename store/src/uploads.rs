//! Resumable uploads (the rows behind the tus endpoints): a study upload
//! groups the files of one study; each file is an [`Upload`] whose bytes go
//! to S3 as multipart parts. Completing a study upload creates the study and
//! queues its ingest in the same transaction.
//!
//! Writing to an upload takes its lease ([`lease`]): one request at a time,
//! at the offset the row says. Progress ([`Progress`]) is committed only
//! under the lease, so a request that dies leaves the last committed state,
//! from which the client resumes.

use serde::{Deserialize, Serialize};
use sha256_resumable::digest::common::hazmat::SerializableState;
use sha256_resumable::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::actor::Actor;
use crate::audit::{self, AuditEntry};
use crate::db::{Db, Scope};
use crate::error::{StoreError, StoreResult};
use crate::ids::PracticeId;
use crate::jobs;
use crate::model::{Role, SequenceClass, StudyStatus};

/// S3 multipart part size: every part but the last has exactly this size
/// (S3 asks for at least 5 MiB). A request holds at most one part in memory.
pub const PART_SIZE: i32 = 8 * 1024 * 1024;

/// How long an unfinished upload is kept.
pub const UPLOAD_TTL_HOURS: i64 = 24 * 7;

/// How long a request's lease lasts without being renewed (each part renews
/// it); a crashed server's lease expires after this.
pub const LEASE_SECONDS: i64 = 60;

/// Size limits, documented in the README. The practice's quota is a column
/// of `practices`.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    pub max_file_bytes: i64,
    pub max_study_bytes: i64,
    pub max_study_files: i64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_file_bytes: 4 * 1024 * 1024 * 1024,
            max_study_bytes: 8 * 1024 * 1024 * 1024,
            max_study_files: 5000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "upload_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    Receiving,
    Complete,
    Failed,
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "study_upload_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StudyUploadStatus {
    Open,
    Completed,
    Cancelled,
}

/// A study upload and its files, as the client sees it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StudyUpload {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub status: StudyUploadStatus,
    /// The study made of it, once completed.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub study_id: Option<Uuid>,
    /// Set when the files turned out to be a study uploaded before: the
    /// study they belong to.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub duplicate_of: Option<Uuid>,
    /// The status of `study_id` (so a client can wait for ingest, which may
    /// merge the study into an earlier one, without reading the study).
    pub study_status: Option<crate::model::StudyStatus>,
    pub files: Vec<UploadSummary>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadSummary {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub filename: String,
    pub sequence: Option<SequenceClass>,
    pub length: i64,
    pub received: i64,
    pub status: UploadStatus,
    pub error: Option<String>,
}

/// One file being uploaded: everything a request needs to continue it.
#[derive(Clone, Debug)]
pub struct Upload {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub study_upload_id: Uuid,
    pub filename: String,
    pub sequence: Option<SequenceClass>,
    pub length: i64,
    pub received: i64,
    pub part_size: i32,
    pub object_key: String,
    pub multipart_id: Option<String>,
    pub parts_done: i32,
    pub tail_key: Option<String>,
    pub tail_size: i32,
    pub sha256_state: Vec<u8>,
    pub sha256_expected: Option<Vec<u8>>,
    pub status: UploadStatus,
    pub error: Option<String>,
    pub expires_at: OffsetDateTime,
}

/// A new file of a study upload (tus creation).
#[derive(Clone, Debug)]
pub struct NewUpload {
    pub study_upload_id: Uuid,
    pub filename: String,
    pub sequence: Option<SequenceClass>,
    pub length: i64,
    pub sha256_expected: Option<[u8; 32]>,
}

/// What a request has durably written, committed under its lease.
#[derive(Clone, Debug)]
pub struct Progress {
    pub received: i64,
    pub parts_done: i32,
    pub tail_key: Option<String>,
    pub tail_size: i32,
    pub sha256_state: Vec<u8>,
}

/// The running SHA-256 of an upload, resumable from its stored state.
pub struct RunningHash(Sha256);

impl RunningHash {
    pub fn new() -> Self {
        RunningHash(Sha256::new())
    }

    pub fn resume(state: &[u8]) -> StoreResult<Self> {
        let state = state
            .try_into()
            .map_err(|_| StoreError::Internal(anyhow::anyhow!("bad stored SHA-256 state")))?;
        Sha256::deserialize(state)
            .map(RunningHash)
            .map_err(|_| StoreError::Internal(anyhow::anyhow!("bad stored SHA-256 state")))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn state(&self) -> Vec<u8> {
        self.0.serialize().to_vec()
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

impl Default for RunningHash {
    fn default() -> Self {
        Self::new()
    }
}

/// Who may upload studies.
fn require_uploader(actor: &Actor) -> StoreResult<PracticeId> {
    match (actor.role, actor.practice_id) {
        (Role::Technician | Role::PracticeAdmin, Some(p)) => Ok(p),
        _ => Err(StoreError::Forbidden),
    }
}

/// `practices/{p}/incoming/{study upload}/{upload}`: raw bytes as sent,
/// deleted after ingest.
pub fn incoming_key(practice: PracticeId, study_upload: Uuid, upload: Uuid) -> String {
    format!("practices/{practice}/incoming/{study_upload}/{upload}")
}

/// What a client says when it starts a study upload.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct NewStudyUpload {
    /// The practice's patient ID, for NIfTI files (DICOM files name their
    /// patient themselves). Without one, a NIfTI study gets an ID made from
    /// the study's.
    #[serde(default)]
    pub patient_ref: Option<String>,
}

pub async fn create_study_upload(
    db: &Db,
    actor: &Actor,
    new: NewStudyUpload,
    ip: Option<String>,
) -> StoreResult<StudyUpload> {
    let practice = require_uploader(actor)?;
    let patient_ref = new
        .patient_ref
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    let id = Uuid::new_v4();
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    sqlx::query!(
        "INSERT INTO study_uploads (id, practice_id, created_by, patient_ref) VALUES ($1, $2, $3, $4)",
        id,
        practice as PracticeId,
        actor.user_id as crate::UserId,
        patient_ref
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "study_upload.create", ip).target("study_upload", id),
    )
    .await?;
    tx.commit().await?;
    Ok(StudyUpload {
        id,
        status: StudyUploadStatus::Open,
        study_id: None,
        duplicate_of: None,
        study_status: None,
        files: Vec::new(),
    })
}

pub async fn get_study_upload(db: &Db, actor: &Actor, id: Uuid) -> StoreResult<StudyUpload> {
    let practice = actor.practice_id.ok_or(StoreError::Forbidden)?;
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let row = sqlx::query!(
        r#"SELECT u.status AS "status: StudyUploadStatus", u.study_id, u.duplicate_of,
                  s.status AS "study_status?: StudyStatus"
           FROM study_uploads u LEFT JOIN studies s ON s.id = u.study_id
           WHERE u.id = $1 AND u.practice_id = $2"#,
        id,
        practice as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("study upload"))?;
    let files = sqlx::query_as!(
        UploadSummary,
        r#"SELECT id, filename, sequence AS "sequence: SequenceClass", length, received,
                  status AS "status: UploadStatus", error
           FROM uploads WHERE study_upload_id = $1 AND practice_id = $2
           ORDER BY created_at, id"#,
        id,
        practice as PracticeId
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StudyUpload {
        id,
        status: row.status,
        study_id: row.study_id,
        duplicate_of: row.duplicate_of,
        study_status: row.study_status,
        files,
    })
}

/// tus creation: checks the limits (file, study, practice quota) under a
/// lock of the study upload and the practice, then records the file.
pub async fn create_upload(
    db: &Db,
    actor: &Actor,
    new: NewUpload,
    limits: UploadLimits,
) -> StoreResult<Upload> {
    let practice = require_uploader(actor)?;
    let filename = new.filename.trim();
    if filename.is_empty() || filename.chars().count() > 255 {
        return Err(StoreError::Invalid(
            "the file name (tus metadata `filename`) must have 1 to 255 characters".into(),
        ));
    }
    if new.length > limits.max_file_bytes {
        return Err(StoreError::Limit(format!(
            "{filename} has {} bytes; a file may have at most {} bytes ({})",
            new.length,
            limits.max_file_bytes,
            human_bytes(limits.max_file_bytes)
        )));
    }
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    // The practice row serialises quota checks of concurrent creations.
    let quota = sqlx::query_scalar!(
        "SELECT storage_quota_bytes FROM practices WHERE id = $1 FOR UPDATE",
        practice as PracticeId
    )
    .fetch_one(&mut *tx)
    .await?;
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: StudyUploadStatus" FROM study_uploads
           WHERE id = $1 AND practice_id = $2 FOR UPDATE"#,
        new.study_upload_id,
        practice as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("study upload"))?;
    if status != StudyUploadStatus::Open {
        return Err(StoreError::Conflict(
            "this study upload is completed or cancelled; start a new one".into(),
        ));
    }
    let study = sqlx::query!(
        r#"SELECT count(*) AS "files!", coalesce(sum(length), 0)::bigint AS "bytes!"
           FROM uploads WHERE study_upload_id = $1 AND status IN ('receiving', 'complete')"#,
        new.study_upload_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if study.files + 1 > limits.max_study_files {
        return Err(StoreError::Limit(format!(
            "a study may have at most {} files",
            limits.max_study_files
        )));
    }
    if study.bytes + new.length > limits.max_study_bytes {
        return Err(StoreError::Limit(format!(
            "this study would have {} bytes with {filename}; a study may have at most {} bytes ({})",
            study.bytes + new.length,
            limits.max_study_bytes,
            human_bytes(limits.max_study_bytes)
        )));
    }
    let used = sqlx::query_scalar!(
        r#"SELECT (coalesce((SELECT sum(size) FROM objects WHERE practice_id = $1), 0)
                 + coalesce((SELECT sum(length) FROM uploads
                             WHERE practice_id = $1 AND status = 'receiving'), 0))::bigint AS "used!""#,
        practice as PracticeId
    )
    .fetch_one(&mut *tx)
    .await?;
    if used + new.length > quota {
        return Err(StoreError::Limit(format!(
            "your practice's storage quota of {} bytes ({}) is used up: {} bytes are stored or \
             being uploaded, {filename} has {}; ask your practice admin or Gyri's support",
            quota,
            human_bytes(quota),
            used,
            new.length
        )));
    }
    let id = Uuid::new_v4();
    let key = incoming_key(practice, new.study_upload_id, id);
    let state = RunningHash::new().state();
    let expected = new.sha256_expected.map(|d| d.to_vec());
    sqlx::query!(
        r#"INSERT INTO uploads (id, practice_id, study_upload_id, filename, sequence, length,
                                part_size, object_key, sha256_state, sha256_expected, created_by,
                                expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                   now() + make_interval(hours => $12))"#,
        id,
        practice as PracticeId,
        new.study_upload_id,
        filename,
        new.sequence as Option<SequenceClass>,
        new.length,
        PART_SIZE,
        key,
        state,
        expected,
        actor.user_id as crate::UserId,
        UPLOAD_TTL_HOURS as i32
    )
    .execute(&mut *tx)
    .await?;
    let upload = fetch(&mut tx, practice, id).await?;
    tx.commit().await?;
    Ok(upload)
}

async fn fetch(
    conn: &mut sqlx::PgConnection,
    practice: PracticeId,
    id: Uuid,
) -> StoreResult<Upload> {
    sqlx::query_as!(
        Upload,
        r#"SELECT id, practice_id AS "practice_id: PracticeId", study_upload_id, filename,
                  sequence AS "sequence: SequenceClass", length, received, part_size, object_key,
                  multipart_id, parts_done, tail_key, tail_size, sha256_state, sha256_expected,
                  status AS "status: UploadStatus", error, expires_at
           FROM uploads WHERE id = $1 AND practice_id = $2"#,
        id,
        practice as PracticeId
    )
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound("upload"))
}

/// tus HEAD: the upload as committed.
pub async fn get_upload(db: &Db, actor: &Actor, id: Uuid) -> StoreResult<Upload> {
    let practice = require_uploader(actor)?;
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let upload = fetch(&mut tx, practice, id).await?;
    tx.commit().await?;
    Ok(upload)
}

/// Takes the write lease of an upload that is receiving and stands at
/// `offset` (tus: the request's `Upload-Offset`). Returns the upload and
/// the lease token every later call must show.
pub async fn lease(db: &Db, actor: &Actor, id: Uuid, offset: i64) -> StoreResult<(Upload, Uuid)> {
    let practice = require_uploader(actor)?;
    let token = Uuid::new_v4();
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let taken = sqlx::query_scalar!(
        "UPDATE uploads SET lease_token = $3, lease_until = now() + make_interval(secs => $4)
         WHERE id = $1 AND practice_id = $2 AND status = 'receiving' AND received = $5
           AND (lease_until IS NULL OR lease_until < now())
         RETURNING id",
        id,
        practice as PracticeId,
        token,
        LEASE_SECONDS as f64,
        offset
    )
    .fetch_optional(&mut *tx)
    .await?;
    let upload = fetch(&mut tx, practice, id).await?;
    tx.commit().await?;
    if taken.is_some() {
        return Ok((upload, token));
    }
    Err(match upload.status {
        UploadStatus::Receiving if upload.received != offset => StoreError::OffsetMismatch {
            expected: upload.received,
        },
        UploadStatus::Receiving => StoreError::Conflict(
            "another request is writing to this upload; try again in a moment".into(),
        ),
        UploadStatus::Complete => StoreError::Conflict("this upload is already complete".into()),
        UploadStatus::Cancelled => StoreError::NotFound("upload"),
        UploadStatus::Failed => StoreError::Conflict(format!(
            "this upload failed: {}",
            upload.error.as_deref().unwrap_or("unknown error")
        )),
    })
}

/// A transaction in which the lease is still ours (renewed by it).
async fn under_lease(
    db: &Db,
    upload: &Upload,
    token: Uuid,
) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = db.begin(Scope::Practice(upload.practice_id)).await?;
    let ours = sqlx::query_scalar!(
        "UPDATE uploads SET lease_until = now() + make_interval(secs => $3), updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'receiving' RETURNING id",
        upload.id,
        token,
        LEASE_SECONDS as f64
    )
    .fetch_optional(&mut *tx)
    .await?;
    if ours.is_none() {
        return Err(StoreError::Conflict(
            "this request lost its hold on the upload (it took too long); resume the upload".into(),
        ));
    }
    Ok(tx)
}

/// Records the S3 multipart upload started for this file.
pub async fn set_multipart(
    db: &Db,
    upload: &Upload,
    token: Uuid,
    multipart_id: &str,
) -> StoreResult<()> {
    let mut tx = under_lease(db, upload, token).await?;
    sqlx::query!(
        "UPDATE uploads SET multipart_id = $2 WHERE id = $1",
        upload.id,
        multipart_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records a part stored in S3 (the part may be stored again by a resumed
/// request: the row is replaced).
pub async fn record_part(
    db: &Db,
    upload: &Upload,
    token: Uuid,
    part_number: i32,
    etag: &str,
    size: i64,
) -> StoreResult<()> {
    let mut tx = under_lease(db, upload, token).await?;
    sqlx::query!(
        "INSERT INTO upload_parts (upload_id, part_number, practice_id, etag, size)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (upload_id, part_number) DO UPDATE SET etag = $4, size = $5",
        upload.id,
        part_number,
        upload.practice_id as PracticeId,
        etag,
        size
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Commits what a request has durably written. Returns the staging object
/// the commit replaced (for the caller to delete).
pub async fn commit(
    db: &Db,
    upload: &Upload,
    token: Uuid,
    p: &Progress,
) -> StoreResult<Option<String>> {
    let mut tx = under_lease(db, upload, token).await?;
    let old_tail = sqlx::query_scalar!("SELECT tail_key FROM uploads WHERE id = $1", upload.id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query!(
        "UPDATE uploads SET received = $2, parts_done = $3, tail_key = $4, tail_size = $5,
                            sha256_state = $6
         WHERE id = $1",
        upload.id,
        p.received,
        p.parts_done,
        p.tail_key,
        p.tail_size,
        p.sha256_state
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(old_tail.filter(|old| Some(old) != p.tail_key.as_ref()))
}

/// The parts of an upload, in order, for completing it in S3.
pub async fn parts(db: &Db, upload: &Upload) -> StoreResult<Vec<(i32, String)>> {
    let mut tx = db.begin(Scope::Practice(upload.practice_id)).await?;
    let parts = sqlx::query!(
        "SELECT part_number, etag FROM upload_parts WHERE upload_id = $1 ORDER BY part_number",
        upload.id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(parts.into_iter().map(|p| (p.part_number, p.etag)).collect())
}

/// The last byte arrived and the object is complete in S3: the upload is
/// complete and its object recorded.
pub async fn finish(db: &Db, upload: &Upload, token: Uuid, sha256: [u8; 32]) -> StoreResult<()> {
    let mut tx = under_lease(db, upload, token).await?;
    sqlx::query!(
        "UPDATE uploads SET status = 'complete', received = length, sha256 = $2, tail_key = NULL,
                            tail_size = 0, lease_token = NULL, lease_until = NULL
         WHERE id = $1",
        upload.id,
        &sha256[..]
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO objects (id, practice_id, key, kind, upload_id, size, sha256)
         VALUES ($1, $2, $3, 'incoming', $4, $5, $6)",
        Uuid::new_v4(),
        upload.practice_id as PracticeId,
        upload.object_key,
        upload.id,
        upload.length,
        &sha256[..]
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM upload_parts WHERE upload_id = $1", upload.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The upload cannot go on (its whole-file checksum did not match, say).
pub async fn fail(db: &Db, upload: &Upload, message: &str) -> StoreResult<()> {
    let mut tx = db.begin(Scope::Practice(upload.practice_id)).await?;
    sqlx::query!(
        "UPDATE uploads SET status = 'failed', error = $2, lease_token = NULL, lease_until = NULL,
                            updated_at = now()
         WHERE id = $1 AND status = 'receiving'",
        upload.id,
        message
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Gives the lease back (the request ended).
pub async fn release(db: &Db, upload: &Upload, token: Uuid) -> StoreResult<()> {
    let mut tx = db.begin(Scope::Practice(upload.practice_id)).await?;
    sqlx::query!(
        "UPDATE uploads SET lease_token = NULL, lease_until = NULL
         WHERE id = $1 AND lease_token = $2",
        upload.id,
        token
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// tus termination: the file is dropped from its study upload. Returns the
/// row as it was, for the caller to remove what is in S3.
pub async fn cancel(db: &Db, actor: &Actor, id: Uuid) -> StoreResult<Upload> {
    let practice = require_uploader(actor)?;
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let upload = fetch(&mut tx, practice, id).await?;
    let open = sqlx::query_scalar!(
        r#"SELECT status AS "status: StudyUploadStatus" FROM study_uploads WHERE id = $1"#,
        upload.study_upload_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if open != StudyUploadStatus::Open {
        return Err(StoreError::Conflict(
            "the study upload is completed; its files can no longer be removed".into(),
        ));
    }
    sqlx::query!(
        "UPDATE uploads SET status = 'cancelled', lease_token = NULL, lease_until = NULL,
                            updated_at = now()
         WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM objects WHERE upload_id = $1", id)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("DELETE FROM upload_parts WHERE upload_id = $1", id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(upload)
}

/// Completes a study upload: every file must be complete. Creates the study
/// (status queued) and queues its ingest in the same transaction.
pub async fn complete_study_upload(
    db: &Db,
    actor: &Actor,
    id: Uuid,
    ip: Option<String>,
) -> StoreResult<StudyUpload> {
    let practice = require_uploader(actor)?;
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let row = sqlx::query!(
        r#"SELECT status AS "status: StudyUploadStatus", study_id FROM study_uploads
           WHERE id = $1 AND practice_id = $2 FOR UPDATE"#,
        id,
        practice as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("study upload"))?;
    match row.status {
        // Completing twice is harmless (a client retrying after a lost reply).
        StudyUploadStatus::Completed => {
            tx.commit().await?;
            return get_study_upload(db, actor, id).await;
        }
        StudyUploadStatus::Cancelled => {
            return Err(StoreError::Conflict(
                "this study upload was cancelled".into(),
            ))
        }
        StudyUploadStatus::Open => {}
    }
    let files = sqlx::query!(
        r#"SELECT filename, status AS "status: UploadStatus" FROM uploads
           WHERE study_upload_id = $1 AND status <> 'cancelled' ORDER BY created_at"#,
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    if files.is_empty() {
        return Err(StoreError::Invalid(
            "this study upload has no files; upload the study's files first".into(),
        ));
    }
    let unfinished: Vec<&str> = files
        .iter()
        .filter(|f| f.status != UploadStatus::Complete)
        .map(|f| f.filename.as_str())
        .collect();
    if !unfinished.is_empty() {
        return Err(StoreError::Conflict(format!(
            "{} of {} files are not completely uploaded ({}); finish or remove them first",
            unfinished.len(),
            files.len(),
            unfinished
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let study = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO studies (id, practice_id, status, created_by) VALUES ($1, $2, $3, $4)",
        study,
        practice as PracticeId,
        StudyStatus::Queued as StudyStatus,
        actor.user_id as crate::UserId
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE study_uploads SET status = 'completed', study_id = $2, completed_at = now()
         WHERE id = $1",
        id,
        study
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE objects SET study_id = $2 WHERE upload_id IN
           (SELECT id FROM uploads WHERE study_upload_id = $1)",
        id,
        study
    )
    .execute(&mut *tx)
    .await?;
    jobs::push(
        &mut tx,
        jobs::Job::Ingest(jobs::StudyJob {
            practice_id: practice,
            study_id: study,
        }),
    )
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "study_upload.complete", ip)
            .target("study", study)
            .details(serde_json::json!({ "study_upload": id, "files": files.len() })),
    )
    .await?;
    tx.commit().await?;
    get_study_upload(db, actor, id).await
}

/// `1.5 GiB`, for messages.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_hash_resumes_from_its_state() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = RunningHash::new();
        h.update(&data[..70_001]);
        let state = h.state();
        let mut resumed = RunningHash::resume(&state).unwrap();
        resumed.update(&data[70_001..]);
        let whole: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(resumed.finish(), whole);
        assert!(RunningHash::resume(&state[1..]).is_err());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(8 * 1024 * 1024 * 1024), "8.0 GiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}

/// What an abandoned upload left in S3.
#[derive(Clone, Debug)]
pub struct Abandoned {
    pub object_key: String,
    pub multipart_id: Option<String>,
    pub tail_key: Option<String>,
}

/// Housekeeping: uploads still receiving after their `expires_at` (and not
/// being written) are cancelled, which frees their share of the quota.
/// Returns what they left in S3, for the caller to remove.
pub async fn expire_abandoned(db: &Db) -> StoreResult<Vec<Abandoned>> {
    let mut tx = db.begin(Scope::Platform).await?;
    let practices = sqlx::query_scalar!(r#"SELECT id AS "id: PracticeId" FROM practices"#)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut out = Vec::new();
    for practice in practices {
        let mut tx = db.begin(Scope::Practice(practice)).await?;
        let rows = sqlx::query_as!(
            Abandoned,
            "UPDATE uploads SET status = 'cancelled', error = 'abandoned: not finished in time',
                                updated_at = now()
             WHERE practice_id = $1 AND status = 'receiving' AND expires_at < now()
               AND (lease_until IS NULL OR lease_until < now())
             RETURNING object_key, multipart_id, tail_key",
            practice as PracticeId
        )
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM upload_parts p USING uploads u
             WHERE p.upload_id = u.id AND u.practice_id = $1 AND u.status = 'cancelled'",
            practice as PracticeId
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        out.extend(rows);
    }
    Ok(out)
}
