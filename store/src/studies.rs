//! Studies: what the practice's users list and open, and what the ingest and
//! analysis jobs write. Users' reads take an [`Actor`]; the jobs act for a
//! [`StudyJob`], always inside its practice's scope.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::actor::Actor;
use crate::audit::{self, AuditEntry};
use crate::db::{Db, Scope};
use crate::error::{StoreError, StoreResult};
use crate::ids::PracticeId;
use crate::jobs::{self, Job, StudyJob};
use crate::model::{Role, SequenceClass, StudyStatus};

/// Who may see a practice's studies: its own members, never platform admins.
fn require_reader(actor: &Actor) -> StoreResult<PracticeId> {
    match (actor.role, actor.practice_id) {
        (Role::Technician | Role::PracticeAdmin | Role::Neurologist, Some(p)) => Ok(p),
        _ => Err(StoreError::Forbidden),
    }
}

/// A study in the practice's list.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StudySummary {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub status: StudyStatus,
    /// The practice's patient ID; null until ingest has read the files.
    pub patient_ref: Option<String>,
    pub patient_name: Option<String>,
    #[schema(value_type = Option<String>, format = Date)]
    pub study_date: Option<Date>,
    pub description: Option<String>,
    /// The sequence classes found (t1, flair, other).
    pub sequences: Vec<SequenceClass>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// Which studies to list.
#[derive(Clone, Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
pub struct StudyFilter {
    /// Only studies in this status.
    pub status: Option<StudyStatus>,
    /// Part of the patient ID or name.
    pub patient: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Studies to skip.
    pub offset: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StudyPage {
    pub studies: Vec<StudySummary>,
    /// How many studies match the filter in all.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

pub async fn list(db: &Db, actor: &Actor, filter: &StudyFilter) -> StoreResult<StudyPage> {
    let practice = require_reader(actor)?;
    let limit = filter.limit.unwrap_or(50).clamp(1, 200);
    let offset = filter.offset.unwrap_or(0).max(0);
    let pattern = filter
        .patient
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            format!(
                "%{}%",
                p.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM studies s LEFT JOIN patients p ON p.id = s.patient_id
           WHERE s.practice_id = $1 AND ($2::study_status IS NULL OR s.status = $2)
             AND ($3::text IS NULL OR p.patient_ref ILIKE $3 OR p.name ILIKE $3)"#,
        practice as PracticeId,
        filter.status as Option<StudyStatus>,
        pattern
    )
    .fetch_one(&mut *tx)
    .await?;
    let studies = sqlx::query_as!(
        StudySummary,
        r#"SELECT s.id, s.status AS "status: StudyStatus", p.patient_ref AS "patient_ref?",
                  p.name AS "patient_name?", s.study_date, s.description,
                  coalesce((SELECT array_agg(DISTINCT x.class ORDER BY x.class) FROM series x
                            WHERE x.study_id = s.id AND x.used_as IS NOT NULL), '{}')
                      AS "sequences!: Vec<SequenceClass>",
                  s.error, s.created_at, s.updated_at
           FROM studies s LEFT JOIN patients p ON p.id = s.patient_id
           WHERE s.practice_id = $1 AND ($2::study_status IS NULL OR s.status = $2)
             AND ($3::text IS NULL OR p.patient_ref ILIKE $3 OR p.name ILIKE $3)
           ORDER BY s.created_at DESC, s.id
           LIMIT $4 OFFSET $5"#,
        practice as PracticeId,
        filter.status as Option<StudyStatus>,
        pattern,
        limit,
        offset
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StudyPage {
        studies,
        total,
        limit,
        offset,
    })
}

/// A series found in a study.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SeriesInfo {
    pub number: i32,
    pub description: String,
    pub class: SequenceClass,
    /// Chosen as the analysis's T1 or FLAIR.
    pub used_as: Option<SequenceClass>,
    pub files: i32,
    pub dims: Vec<i32>,
    pub voxel_mm: Vec<f32>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LesionInfo {
    pub number: i32,
    pub volume_ml: f64,
    pub voxels: i32,
    pub centroid_mm: Vec<f64>,
}

/// The measured result of a study.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AnalysisInfo {
    pub model_version: String,
    pub icv_ml: f64,
    pub brain_ml: f64,
    pub gm_ml: f64,
    pub wm_ml: f64,
    pub csf_ml: f64,
    /// Null when the study had no FLAIR (lesions are not measured).
    pub lesion_count: Option<i32>,
    pub lesion_ml: Option<f64>,
    pub warnings: Vec<String>,
    /// Seconds per stage.
    #[schema(value_type = Object)]
    pub timings: serde_json::Value,
    /// The whole `metrics.json` (schema `gyri.metrics/1`).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    pub lesions: Vec<LesionInfo>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StudyDetail {
    #[serde(flatten)]
    pub summary: StudySummary,
    pub series: Vec<SeriesInfo>,
    pub analysis: Option<AnalysisInfo>,
}

/// One study with its series and analysis. Every view is audited.
pub async fn get(db: &Db, actor: &Actor, id: Uuid, ip: Option<String>) -> StoreResult<StudyDetail> {
    let practice = require_reader(actor)?;
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let summary = sqlx::query_as!(
        StudySummary,
        r#"SELECT s.id, s.status AS "status: StudyStatus", p.patient_ref AS "patient_ref?",
                  p.name AS "patient_name?", s.study_date, s.description,
                  coalesce((SELECT array_agg(DISTINCT x.class ORDER BY x.class) FROM series x
                            WHERE x.study_id = s.id AND x.used_as IS NOT NULL), '{}')
                      AS "sequences!: Vec<SequenceClass>",
                  s.error, s.created_at, s.updated_at
           FROM studies s LEFT JOIN patients p ON p.id = s.patient_id
           WHERE s.id = $1 AND s.practice_id = $2"#,
        id,
        practice as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("study"))?;
    let series = sqlx::query_as!(
        SeriesInfo,
        r#"SELECT number, description, class AS "class: SequenceClass",
                  used_as AS "used_as: SequenceClass", files, dims, voxel_mm, note
           FROM series WHERE study_id = $1 ORDER BY number"#,
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    let analysis = sqlx::query!(
        r#"SELECT model_version, icv_ml, brain_ml, gm_ml, wm_ml, csf_ml, lesion_count, lesion_ml,
                  warnings, timings, metrics, updated_at
           FROM analyses WHERE study_id = $1"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let analysis = match analysis {
        None => None,
        Some(a) => {
            let lesions = sqlx::query_as!(
                LesionInfo,
                "SELECT number, volume_ml, voxels, centroid_mm FROM lesions
                 WHERE study_id = $1 ORDER BY number",
                id
            )
            .fetch_all(&mut *tx)
            .await?;
            Some(AnalysisInfo {
                model_version: a.model_version,
                icv_ml: a.icv_ml,
                brain_ml: a.brain_ml,
                gm_ml: a.gm_ml,
                wm_ml: a.wm_ml,
                csf_ml: a.csf_ml,
                lesion_count: a.lesion_count,
                lesion_ml: a.lesion_ml,
                warnings: a.warnings,
                timings: a.timings,
                metrics: a.metrics,
                lesions,
                updated_at: a.updated_at,
            })
        }
    };
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "study.view", ip).target("study", id),
    )
    .await?;
    tx.commit().await?;
    Ok(StudyDetail {
        summary,
        series,
        analysis,
    })
}

/// A study's status, for polling pages (not audited: it shows nothing of
/// the patient).
pub async fn status_for(db: &Db, actor: &Actor, id: Uuid) -> StoreResult<StudyStatus> {
    let practice = require_reader(actor)?;
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: StudyStatus" FROM studies WHERE id = $1 AND practice_id = $2"#,
        id,
        practice as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("study"))?;
    tx.commit().await?;
    Ok(status)
}

// ---- what the jobs do -------------------------------------------------

/// A file of the study as uploaded.
#[derive(Clone, Debug)]
pub struct IncomingFile {
    pub filename: String,
    pub sequence: Option<SequenceClass>,
    pub object_key: String,
    pub size: i64,
    pub sha256: Vec<u8>,
}

/// The study's status, for a job deciding whether there is work left.
pub async fn status(db: &Db, job: &StudyJob) -> StoreResult<Option<StudyStatus>> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: StudyStatus" FROM studies WHERE id = $1 AND practice_id = $2"#,
        job.study_id,
        job.practice_id as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(status)
}

/// Moves the study to `status` with `error` (a message for the user, for
/// `failed` and `needs_attention`; None clears it).
pub async fn set_status(
    db: &Db,
    job: &StudyJob,
    status: StudyStatus,
    error: Option<&str>,
) -> StoreResult<()> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    sqlx::query!(
        "UPDATE studies SET status = $3, error = $4, updated_at = now()
         WHERE id = $1 AND practice_id = $2",
        job.study_id,
        job.practice_id as PracticeId,
        status as StudyStatus,
        error
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The uploaded files of a study, still in `incoming`.
pub async fn incoming_files(db: &Db, job: &StudyJob) -> StoreResult<Vec<IncomingFile>> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    let files = sqlx::query_as!(
        IncomingFile,
        r#"SELECT u.filename, u.sequence AS "sequence: SequenceClass", o.key AS object_key,
                  o.size, o.sha256
           FROM objects o JOIN uploads u ON u.id = o.upload_id
           WHERE o.study_id = $1 AND o.kind = 'incoming' AND o.practice_id = $2
           ORDER BY u.created_at, u.id"#,
        job.study_id,
        job.practice_id as PracticeId
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(files)
}

/// Forgets a refused study's raw uploads; returns their keys for the
/// caller to delete from S3.
pub async fn discard_incoming(db: &Db, job: &StudyJob) -> StoreResult<Vec<String>> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    let keys = sqlx::query_scalar!(
        "DELETE FROM objects WHERE study_id = $1 AND practice_id = $2 AND kind = 'incoming'
         RETURNING key",
        job.study_id,
        job.practice_id as PracticeId
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(keys)
}

/// Who the images are of, read from DICOM (or given with NIfTI uploads).
/// Stays in PostgreSQL.
#[derive(Clone, Debug, Default)]
pub struct PatientIdentity {
    pub patient_ref: String,
    pub name: Option<String>,
    pub birth_date: Option<Date>,
    pub sex: Option<String>,
}

/// A series as ingest found it; `volume` when it was made into a volume.
#[derive(Clone, Debug)]
pub struct NewSeries {
    pub number: i32,
    pub description: String,
    pub class: SequenceClass,
    pub used_as: Option<SequenceClass>,
    pub files: i32,
    pub dims: Vec<i32>,
    pub voxel_mm: Vec<f32>,
    pub note: Option<String>,
    pub volume: Option<NewObject>,
}

/// An object the job stored in S3.
#[derive(Clone, Debug)]
pub struct NewObject {
    pub key: String,
    pub kind: &'static str,
    pub size: i64,
    pub sha256: [u8; 32],
    pub content_type: &'static str,
}

/// Everything ingest learnt.
#[derive(Clone, Debug)]
pub struct Ingested {
    pub patient: PatientIdentity,
    /// StudyInstanceUID, or the volumes' digests for NIfTI.
    pub study_key: String,
    pub study_date: Option<Date>,
    pub description: Option<String>,
    pub series: Vec<NewSeries>,
    /// Set when the study cannot be analysed: what was found instead.
    pub needs_attention: Option<String>,
}

/// What became of an ingested study.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Queued for analysis.
    Analyse,
    /// Ingested, but cannot be analysed (no usable T1).
    NeedsAttention,
    /// The same study was uploaded before: this one was merged into it.
    Duplicate { original: Uuid },
    /// Another run of this job already recorded it.
    AlreadyDone,
}

/// Patients' folders: `practices/{p}/patients/{patient}/studies/{study}`.
pub fn study_prefix(practice: PracticeId, patient: Uuid, study: Uuid) -> String {
    format!("practices/{practice}/patients/{patient}/studies/{study}")
}

/// The patient the uploader gave with the study upload (NIfTI studies).
pub async fn upload_patient(db: &Db, job: &StudyJob) -> StoreResult<PatientIdentity> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    let given = sqlx::query_scalar!(
        "SELECT patient_ref FROM study_uploads WHERE study_id = $1 AND practice_id = $2",
        job.study_id,
        job.practice_id as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    tx.commit().await?;
    Ok(PatientIdentity {
        patient_ref: given
            .unwrap_or_else(|| format!("study-{}", &job.study_id.simple().to_string()[..8])),
        ..Default::default()
    })
}

/// Creates or matches the patient by the practice's patient ID (so the
/// volumes' keys can name it before they are written).
pub async fn match_patient(
    db: &Db,
    job: &StudyJob,
    patient: &PatientIdentity,
) -> StoreResult<Uuid> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO patients (id, practice_id, patient_ref, name, birth_date, sex)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (practice_id, patient_ref) DO UPDATE
           SET name = coalesce(patients.name, EXCLUDED.name),
               birth_date = coalesce(patients.birth_date, EXCLUDED.birth_date),
               sex = coalesce(patients.sex, EXCLUDED.sex)
         RETURNING id",
        Uuid::new_v4(),
        job.practice_id as PracticeId,
        patient.patient_ref,
        patient.name,
        patient.birth_date,
        patient.sex
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Records what ingest found, in one transaction: the study's patient and
/// key, its series and volumes, then queues the analysis (or says what needs
/// attention). A study whose key another study of the practice already has
/// is merged into that one: this study row goes, its upload points there.
/// Returns the outcome and the incoming objects' keys to delete from S3.
pub async fn record_ingest(
    db: &Db,
    job: &StudyJob,
    patient_id: Uuid,
    ingested: &Ingested,
) -> StoreResult<(IngestOutcome, Vec<String>)> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: StudyStatus" FROM studies
           WHERE id = $1 AND practice_id = $2 FOR UPDATE"#,
        job.study_id,
        job.practice_id as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?;
    match status {
        None => return Ok((IngestOutcome::AlreadyDone, Vec::new())),
        Some(StudyStatus::Queued | StudyStatus::Ingesting) => {}
        Some(_) => return Ok((IngestOutcome::AlreadyDone, Vec::new())),
    }
    let incoming: Vec<String> = sqlx::query_scalar!(
        "SELECT key FROM objects WHERE study_id = $1 AND kind = 'incoming'",
        job.study_id
    )
    .fetch_all(&mut *tx)
    .await?;

    let original = sqlx::query_scalar!(
        "SELECT id FROM studies WHERE practice_id = $1 AND study_key = $2 AND id <> $3
         FOR UPDATE",
        job.practice_id as PracticeId,
        ingested.study_key,
        job.study_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(original) = original {
        sqlx::query!(
            "UPDATE study_uploads SET study_id = $2, duplicate_of = $2 WHERE study_id = $1",
            job.study_id,
            original
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM objects WHERE study_id = $1 AND kind = 'incoming'",
            job.study_id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM studies WHERE id = $1", job.study_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok((IngestOutcome::Duplicate { original }, incoming));
    }

    let (status, error) = match &ingested.needs_attention {
        Some(message) => (StudyStatus::NeedsAttention, Some(message.as_str())),
        None => (StudyStatus::Analysing, None),
    };
    sqlx::query!(
        "UPDATE studies SET patient_id = $2, study_key = $3, study_date = $4, description = $5,
                            status = $6, error = $7, updated_at = now()
         WHERE id = $1",
        job.study_id,
        patient_id,
        ingested.study_key,
        ingested.study_date,
        ingested.description,
        status as StudyStatus,
        error
    )
    .execute(&mut *tx)
    .await?;
    // A re-run after a crash between S3 writes and this commit finds no rows
    // here (the transaction did not commit), so inserting is safe.
    sqlx::query!("DELETE FROM series WHERE study_id = $1", job.study_id)
        .execute(&mut *tx)
        .await?;
    for s in &ingested.series {
        let object = match &s.volume {
            Some(v) => Some(insert_object(&mut tx, job, v).await?),
            None => None,
        };
        sqlx::query!(
            "INSERT INTO series (id, practice_id, study_id, number, description, class, used_as,
                                 files, dims, voxel_mm, note, volume_object_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            Uuid::new_v4(),
            job.practice_id as PracticeId,
            job.study_id,
            s.number,
            s.description,
            s.class as SequenceClass,
            s.used_as as Option<SequenceClass>,
            s.files,
            &s.dims,
            &s.voxel_mm,
            s.note,
            object
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "DELETE FROM objects WHERE study_id = $1 AND kind = 'incoming'",
        job.study_id
    )
    .execute(&mut *tx)
    .await?;
    let outcome = if ingested.needs_attention.is_none() {
        jobs::push(&mut tx, Job::Analyse(*job)).await?;
        IngestOutcome::Analyse
    } else {
        IngestOutcome::NeedsAttention
    };
    tx.commit().await?;
    Ok((outcome, incoming))
}

async fn insert_object(
    conn: &mut sqlx::PgConnection,
    job: &StudyJob,
    o: &NewObject,
) -> StoreResult<Uuid> {
    let id = sqlx::query_scalar!(
        "INSERT INTO objects (id, practice_id, key, kind, study_id, size, sha256, content_type)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (key) DO UPDATE SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256
         RETURNING id",
        Uuid::new_v4(),
        job.practice_id as PracticeId,
        o.key,
        o.kind,
        job.study_id,
        o.size,
        &o.sha256[..],
        o.content_type
    )
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// A volume to analyse.
#[derive(Clone, Debug)]
pub struct StudyVolume {
    pub class: SequenceClass,
    pub key: String,
    pub sha256: Vec<u8>,
}

/// The study's patient and the volumes chosen for its analysis.
pub async fn analysis_inputs(db: &Db, job: &StudyJob) -> StoreResult<(Uuid, Vec<StudyVolume>)> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    let patient = sqlx::query_scalar!(
        "SELECT patient_id FROM studies WHERE id = $1 AND practice_id = $2",
        job.study_id,
        job.practice_id as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .flatten()
    .ok_or(StoreError::NotFound("study"))?;
    let volumes = sqlx::query_as!(
        StudyVolume,
        r#"SELECT s.used_as AS "class!: SequenceClass", o.key, o.sha256
           FROM series s JOIN objects o ON o.id = s.volume_object_id
           WHERE s.study_id = $1 AND s.used_as IS NOT NULL ORDER BY s.used_as"#,
        job.study_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((patient, volumes))
}

/// The measurements of a study, as the analysis job writes them.
#[derive(Clone, Debug)]
pub struct NewAnalysis {
    pub model_version: String,
    pub icv_ml: f64,
    pub brain_ml: f64,
    pub gm_ml: f64,
    pub wm_ml: f64,
    pub csf_ml: f64,
    pub lesion_count: Option<i32>,
    pub lesion_ml: Option<f64>,
    pub warnings: Vec<String>,
    pub timings: serde_json::Value,
    pub metrics: serde_json::Value,
    pub lesions: Vec<LesionInfo>,
    pub labels: NewObject,
    pub mask: NewObject,
}

/// Upserts the study's one result set (a re-run replaces it, lesions
/// included) and marks the study done, in one transaction.
pub async fn record_analysis(db: &Db, job: &StudyJob, a: &NewAnalysis) -> StoreResult<()> {
    let mut tx = db.begin(Scope::Practice(job.practice_id)).await?;
    let labels = insert_object(&mut tx, job, &a.labels).await?;
    let mask = insert_object(&mut tx, job, &a.mask).await?;
    sqlx::query!(
        "INSERT INTO analyses (study_id, practice_id, model_version, icv_ml, brain_ml, gm_ml,
                               wm_ml, csf_ml, lesion_count, lesion_ml, warnings, timings,
                               metrics, labels_object_id, mask_object_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (study_id) DO UPDATE SET
           model_version = EXCLUDED.model_version, icv_ml = EXCLUDED.icv_ml,
           brain_ml = EXCLUDED.brain_ml, gm_ml = EXCLUDED.gm_ml, wm_ml = EXCLUDED.wm_ml,
           csf_ml = EXCLUDED.csf_ml, lesion_count = EXCLUDED.lesion_count,
           lesion_ml = EXCLUDED.lesion_ml, warnings = EXCLUDED.warnings,
           timings = EXCLUDED.timings, metrics = EXCLUDED.metrics,
           labels_object_id = EXCLUDED.labels_object_id,
           mask_object_id = EXCLUDED.mask_object_id,
           runs = analyses.runs + 1, updated_at = now()",
        job.study_id,
        job.practice_id as PracticeId,
        a.model_version,
        a.icv_ml,
        a.brain_ml,
        a.gm_ml,
        a.wm_ml,
        a.csf_ml,
        a.lesion_count,
        a.lesion_ml,
        &a.warnings,
        a.timings,
        a.metrics,
        labels,
        mask
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM lesions WHERE study_id = $1", job.study_id)
        .execute(&mut *tx)
        .await?;
    for l in &a.lesions {
        sqlx::query!(
            "INSERT INTO lesions (study_id, number, practice_id, volume_ml, voxels, centroid_mm)
             VALUES ($1, $2, $3, $4, $5, $6)",
            job.study_id,
            l.number,
            job.practice_id as PracticeId,
            l.volume_ml,
            l.voxels,
            &l.centroid_mm
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "UPDATE studies SET status = 'done', error = NULL, updated_at = now() WHERE id = $1",
        job.study_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
