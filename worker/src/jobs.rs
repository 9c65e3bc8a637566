//! The job worker: ingest and analysis on apalis with the PostgreSQL
//! backend (queues [`INGEST_QUEUE`] and [`ANALYSE_QUEUE`]).
//!
//! - Liveness: each worker beats every [`HEARTBEAT`]; a worker silent for
//!   [`MISSED_HEARTBEATS`] beats is dead, and the next beat of any worker on
//!   the queue puts its job back (so a SIGKILLed worker's job runs again
//!   within about `HEARTBEAT × (MISSED_HEARTBEATS + 1)` = 16 s).
//! - Retries: transient failures (database, object store) are retried in
//!   the run with exponential backoff ([`RETRY_DELAYS`]); bad input is not
//!   retried: the study ends `failed` or `needs_attention` with the reason.
//!   A job that keeps dying with its worker ends `failed` after
//!   [`MAX_ATTEMPTS`] runs.
//! - Results are written exactly once: every write is an upsert keyed by
//!   the study, objects go to fixed keys, and a job first checks whether its
//!   work is already done.
//! - An idle worker asks the queue for a job at every heartbeat.
//! - Heavy work (unpacking, conversion, the networks) runs on blocking
//!   threads; a worker runs `concurrency` studies at once (default 1).

use anyhow::Context;
use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use gyri_store::jobs::{StudyJob, ANALYSE_QUEUE, INGEST_QUEUE, MAX_ATTEMPTS};
use gyri_store::objects::ObjectStore;
use gyri_store::studies::{self, IngestOutcome, NewObject, NewSeries, PatientIdentity};
use gyri_store::{Db, StoreError, StudyStatus};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

use crate::analyze::{self, Models};
use crate::ingest::{self, Refused, Uploaded};

/// An idle worker asks the queue for a job at every heartbeat too (the
/// bench measured a 5 s wait for the analysis job with 5 s beats).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
pub const MISSED_HEARTBEATS: usize = 15;
/// Waits before the second, third and fourth try of a transient failure.
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(16),
];

/// How the worker runs.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Studies analysed at once by this process.
    pub concurrency: usize,
    /// HD-BET's checkpoints.
    pub models_dir: PathBuf,
    /// The U-Net's weights.
    pub weights: PathBuf,
    /// Where jobs unpack (a temporary directory per job).
    pub work_dir: PathBuf,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 1,
            models_dir: crate::brain::default_models_dir(),
            weights: analyze::default_weights(),
            work_dir: std::env::temp_dir(),
        }
    }
}

impl WorkerSettings {
    /// `GYRI_WORKER_CONCURRENCY`, `GYRI_HDBET_MODELS`, `GYRI_WEIGHTS`,
    /// `GYRI_WORK_DIR` over the defaults.
    pub fn from_env() -> anyhow::Result<WorkerSettings> {
        let mut s = WorkerSettings::default();
        if let Ok(v) = std::env::var("GYRI_WORKER_CONCURRENCY") {
            s.concurrency = v
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .context("GYRI_WORKER_CONCURRENCY must be a whole number ≥ 1")?;
        }
        if let Ok(v) = std::env::var("GYRI_WORK_DIR") {
            s.work_dir = PathBuf::from(v);
        }
        Ok(s)
    }
}

struct Context_ {
    db: Db,
    objects: ObjectStore,
    settings: WorkerSettings,
    models: OnceCell<Arc<Models>>,
}

type Ctx = Arc<Context_>;

/// Why a job run did not finish.
#[derive(Debug)]
enum Failure {
    /// Bad input: tell the user, do not retry.
    Refused(String),
    /// Worth another try (database, object store, I/O).
    Transient(anyhow::Error),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Transient(anyhow::Error::new(e))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Transient(e)
    }
}

impl From<Refused> for Failure {
    fn from(e: Refused) -> Self {
        Failure::Refused(e.0)
    }
}

/// Runs the ingest and analysis workers until `shutdown` completes, then
/// lets running jobs finish.
pub async fn run(
    db: Db,
    objects: ObjectStore,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let concurrency = settings.concurrency;
    let ctx: Ctx = Arc::new(Context_ {
        db: db.clone(),
        objects,
        settings,
        models: OnceCell::new(),
    });
    let config = |queue: &str| {
        Config::default()
            .queue(queue)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(MISSED_HEARTBEATS)
            .batch_size(1)
    };
    let pool = db.pool().clone();
    let ingest_storage = PostgresStorage::<StudyJob>::new(&pool).with_config(config(INGEST_QUEUE));
    let analyse_storage =
        PostgresStorage::<StudyJob>::new(&pool).with_config(config(ANALYSE_QUEUE));
    let id = format!(
        "{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (ingest_ctx, analyse_ctx) = (ctx.clone(), ctx.clone());
    let ingest_name = format!("gyri-ingest-{id}");
    let analyse_name = format!("gyri-analyse-{id}");
    tracing::info!(%ingest_name, %analyse_name, concurrency, "job worker starting");
    Monitor::new()
        .register(move |_| {
            WorkerBuilder::new(ingest_name.clone())
                .backend(ingest_storage.clone())
                .data(ingest_ctx.clone())
                .concurrency(concurrency)
                .build(ingest_job)
        })
        .register(move |_| {
            WorkerBuilder::new(analyse_name.clone())
                .backend(analyse_storage.clone())
                .data(analyse_ctx.clone())
                .concurrency(concurrency)
                .build(analyse_job)
        })
        .run_with_signal(async move {
            shutdown.await;
            tracing::info!("job worker stopping: running jobs finish first");
            Ok(())
        })
        .await
        .context("the job worker failed")?;
    Ok(())
}

/// Runs `work`, retrying transient failures with backoff; ends the study
/// with the failure when it is bad input or keeps failing. A run after
/// [`MAX_ATTEMPTS`] (a job whose workers keep dying) fails the study.
async fn supervise<F, Fut>(ctx: &Ctx, job: StudyJob, attempt: usize, what: &str, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    if attempt > MAX_ATTEMPTS {
        let message = format!(
            "the {what} was interrupted {attempt} times (its worker stopped each time); \
             it was not tried again"
        );
        tracing::error!(study = %job.study_id, %message);
        fail_study(ctx, &job, &message).await;
        return;
    }
    for (try_no, delay) in std::iter::once(None)
        .chain(RETRY_DELAYS.iter().copied().map(Some))
        .enumerate()
    {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        match work().await {
            Ok(()) => return,
            Err(Failure::Refused(message)) => {
                tracing::info!(study = %job.study_id, %message, "{what} refused the study");
                fail_study(ctx, &job, &message).await;
                return;
            }
            Err(Failure::Transient(e)) => {
                tracing::warn!(study = %job.study_id, error = ?e, try_no, "{what} failed; retrying");
                if try_no == RETRY_DELAYS.len() {
                    let message = format!(
                        "the {what} could not finish after {} tries: {e}; it can be retried later",
                        try_no + 1
                    );
                    fail_study(ctx, &job, &message).await;
                }
            }
        }
    }
}

/// Ends the study `failed` with `message` for the user.
async fn fail_study(ctx: &Ctx, job: &StudyJob, message: &str) {
    if let Err(e) = studies::set_status(&ctx.db, job, StudyStatus::Failed, Some(message)).await {
        tracing::error!(error = %e, "cannot record a study's failure");
    }
}

async fn ingest_job(job: StudyJob, ctx: Data<Ctx>, attempt: Attempt) -> Result<(), BoxDynError> {
    let ctx: Ctx = (*ctx).clone();
    let c = ctx.clone();
    supervise(&ctx, job, attempt.current(), "ingest", move || {
        let c = c.clone();
        async move { ingest(&c, job).await }
    })
    .await;
    Ok(())
}

async fn analyse_job(job: StudyJob, ctx: Data<Ctx>, attempt: Attempt) -> Result<(), BoxDynError> {
    let ctx: Ctx = (*ctx).clone();
    let c = ctx.clone();
    supervise(&ctx, job, attempt.current(), "analysis", move || {
        let c = c.clone();
        async move { analyse(&c, job).await }
    })
    .await;
    Ok(())
}

fn sha256_file(path: &Path) -> anyhow::Result<(i64, [u8; 32])> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0i64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as i64;
    }
    Ok((size, h.finalize().into()))
}

/// Stores a file at `key` and describes it for the database.
async fn store_file(
    objects: &ObjectStore,
    path: &Path,
    key: String,
    kind: &'static str,
) -> Result<NewObject, Failure> {
    let p = path.to_owned();
    let (size, sha256) = tokio::task::spawn_blocking(move || sha256_file(&p))
        .await
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))??;
    objects.put_file(&key, path).await?;
    Ok(NewObject {
        key,
        kind,
        size,
        sha256,
        content_type: "application/gzip",
    })
}

fn parse_da(da: &str) -> Option<time::Date> {
    let d = da.trim();
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let month = time::Month::try_from(d[4..6].parse::<u8>().ok()?).ok()?;
    time::Date::from_calendar_date(d[..4].parse().ok()?, month, d[6..8].parse().ok()?).ok()
}

async fn ingest(ctx: &Ctx, job: StudyJob) -> Result<(), Failure> {
    let result = ingest_files(ctx, job).await;
    if let Err(Failure::Refused(_)) = &result {
        // Bad input is not retried: the raw uploads (which may hold
        // identity) go now.
        match studies::discard_incoming(&ctx.db, &job).await {
            Ok(keys) => {
                for key in keys {
                    if let Err(e) = ctx.objects.delete(&key).await {
                        tracing::warn!(error = %e, %key, "could not delete an incoming object");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not discard a refused study's uploads"),
        }
    }
    result
}

async fn ingest_files(ctx: &Ctx, job: StudyJob) -> Result<(), Failure> {
    match studies::status(&ctx.db, &job).await? {
        Some(StudyStatus::Queued | StudyStatus::Ingesting) => {}
        // Done by an earlier run, or merged into another study.
        _ => return Ok(()),
    }
    studies::set_status(&ctx.db, &job, StudyStatus::Ingesting, None).await?;
    let files = studies::incoming_files(&ctx.db, &job).await?;
    if files.is_empty() {
        return Err(Failure::Refused("the study upload has no files".into()));
    }
    let work = tempfile::Builder::new()
        .prefix("gyri-ingest-")
        .tempdir_in(&ctx.settings.work_dir)
        .context("cannot make a work directory")?;
    let incoming = work.path().join("incoming");
    std::fs::create_dir_all(&incoming).context("cannot make a work directory")?;
    let mut uploaded = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let path = incoming.join(format!("{i:05}"));
        ctx.objects.download(&f.object_key, &path).await?;
        uploaded.push(Uploaded {
            filename: f.filename.clone(),
            path,
            sequence: f.sequence.map(imaging_class),
            sha256: f.sha256.clone(),
        });
    }
    let dir = work.path().to_owned();
    let prepared = tokio::task::spawn_blocking(move || {
        ingest::prepare(&uploaded, &dir, &gyri_imaging::Limits::default())
    })
    .await
    .map_err(|e| anyhow::anyhow!("ingest crashed: {e}"))??;

    let patient = match &prepared.identity {
        Some(id) => PatientIdentity {
            patient_ref: id
                .patient_id
                .clone()
                .filter(|p| !p.trim().is_empty())
                .unwrap_or_else(|| format!("no-id-{}", &job.study_id.simple().to_string()[..8])),
            name: id.patient_name.clone().filter(|n| !n.trim().is_empty()),
            birth_date: id.birth_date.as_deref().and_then(parse_da),
            sex: id
                .sex
                .clone()
                .filter(|s| matches!(s.as_str(), "F" | "M" | "O")),
        },
        None => studies::upload_patient(&ctx.db, &job).await?,
    };
    let study_date = prepared
        .identity
        .as_ref()
        .and_then(|i| i.study_date.as_deref())
        .and_then(parse_da);
    let patient_id = studies::match_patient(&ctx.db, &job, &patient).await?;
    let prefix = studies::study_prefix(job.practice_id, patient_id, job.study_id);
    let mut series = Vec::new();
    for s in &prepared.series {
        let class = store_class(s.class);
        let key = format!("{prefix}/volumes/{}_{}.nii.gz", s.number, class_slug(class));
        let volume = store_file(&ctx.objects, &s.volume, key, "volumes").await?;
        series.push(NewSeries {
            number: s.number,
            description: s.description.clone(),
            class,
            used_as: s.used_as.map(store_class),
            files: s.files,
            dims: s.dims.iter().map(|&d| d as i32).collect(),
            voxel_mm: s.voxel_mm.iter().map(|&v| v as f32).collect(),
            note: (!s.warnings.is_empty())
                .then(|| format!("{}; {}", s.class_reason, s.warnings.join("; ")))
                .or_else(|| Some(s.class_reason.clone())),
            volume: Some(volume),
        });
    }
    let ingested = studies::Ingested {
        patient,
        study_key: prepared.study_key.clone(),
        study_date,
        description: None,
        series,
        needs_attention: prepared.needs_attention.clone(),
    };
    let (outcome, incoming_keys) =
        studies::record_ingest(&ctx.db, &job, patient_id, &ingested).await?;
    tracing::info!(study = %job.study_id, ?outcome, "ingested");
    if let IngestOutcome::Duplicate { .. } = outcome {
        // The volumes written for this copy are not referred to.
        for s in &ingested.series {
            if let Some(v) = &s.volume {
                let _ = ctx.objects.delete(&v.key).await;
            }
        }
    }
    // The raw uploads may hold identity: they go once ingest is recorded.
    for key in incoming_keys {
        if let Err(e) = ctx.objects.delete(&key).await {
            tracing::warn!(error = %e, %key, "could not delete an incoming object");
        }
    }
    Ok(())
}

fn store_class(c: gyri_imaging::SequenceClass) -> gyri_store::SequenceClass {
    match c {
        gyri_imaging::SequenceClass::T1 => gyri_store::SequenceClass::T1,
        gyri_imaging::SequenceClass::Flair => gyri_store::SequenceClass::Flair,
        gyri_imaging::SequenceClass::Other => gyri_store::SequenceClass::Other,
    }
}

fn imaging_class(c: gyri_store::SequenceClass) -> gyri_imaging::SequenceClass {
    match c {
        gyri_store::SequenceClass::T1 => gyri_imaging::SequenceClass::T1,
        gyri_store::SequenceClass::Flair => gyri_imaging::SequenceClass::Flair,
        gyri_store::SequenceClass::Other => gyri_imaging::SequenceClass::Other,
    }
}

fn class_slug(c: gyri_store::SequenceClass) -> &'static str {
    match c {
        gyri_store::SequenceClass::T1 => "t1",
        gyri_store::SequenceClass::Flair => "flair",
        gyri_store::SequenceClass::Other => "other",
    }
}

async fn models(ctx: &Ctx) -> Result<Arc<Models>, Failure> {
    let settings = ctx.settings.clone();
    ctx.models
        .get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || {
                gyri_analysis::alloc::flush_denormals_here();
                Models::load(&settings.models_dir, &settings.weights).map(Arc::new)
            })
            .await
            .map_err(|e| Failure::Transient(anyhow::anyhow!("loading the models crashed: {e}")))?
            .map_err(|e| Failure::Transient(anyhow::anyhow!(e)))
        })
        .await
        .cloned()
}

async fn analyse(ctx: &Ctx, job: StudyJob) -> Result<(), Failure> {
    match studies::status(&ctx.db, &job).await? {
        Some(StudyStatus::Analysing) => {}
        _ => return Ok(()),
    }
    let (patient, volumes) = studies::analysis_inputs(&ctx.db, &job).await?;
    let t1 = volumes
        .iter()
        .find(|v| v.class == gyri_store::SequenceClass::T1)
        .ok_or_else(|| Failure::Refused("the study has no T1 volume to analyse".into()))?;
    let flair = volumes
        .iter()
        .find(|v| v.class == gyri_store::SequenceClass::Flair);
    let work = tempfile::Builder::new()
        .prefix("gyri-analyse-")
        .tempdir_in(&ctx.settings.work_dir)
        .context("cannot make a work directory")?;
    let started = Instant::now();
    let t1_path = work.path().join("t1.nii.gz");
    ctx.objects.download(&t1.key, &t1_path).await?;
    let flair_path = match flair {
        Some(f) => {
            let p = work.path().join("flair.nii.gz");
            ctx.objects.download(&f.key, &p).await?;
            Some(p)
        }
        None => None,
    };
    let download_s = started.elapsed().as_secs_f64();
    let models = models(ctx).await?;
    let out = work.path().join("out");
    let out_dir = out.clone();
    let study = job.study_id;
    let (metrics, voxel_ml) =
        tokio::task::spawn_blocking(move || -> Result<(analyze::Metrics, f64), Failure> {
            use gyri_imaging::nifti::{self, ReadOptions};
            gyri_analysis::alloc::flush_denormals_here();
            let read_started = Instant::now();
            let read = |p: &Path| {
                nifti::read_path(p, ReadOptions::default())
                    .map_err(|e| Failure::Refused(format!("a stored volume cannot be read: {e}")))
            };
            let t1 = read(&t1_path)?;
            let flair = flair_path.as_deref().map(read).transpose()?;
            let read_s = read_started.elapsed().as_secs_f64() + download_s;
            let mut progress = |stage: &str| tracing::debug!(%study, stage, "analysis");
            let mut a = analyze::analyze(
                &models,
                &t1,
                flair.as_ref(),
                &analyze::Settings::default(),
                &mut progress,
            )
            .map_err(Failure::Refused)?;
            a.metrics.timings_s.read = read_s;
            analyze::write(&mut a, &out_dir, started)
                .map_err(|e| Failure::Transient(anyhow::anyhow!(e)))?;
            // Lesions are measured on the T1's grid.
            let voxel_ml = a.labels.affine.det3().abs() / 1000.0;
            Ok((a.metrics, voxel_ml))
        })
        .await
        .map_err(|e| anyhow::anyhow!("the analysis crashed: {e}"))??;

    let prefix = studies::study_prefix(job.practice_id, patient, job.study_id);
    let labels = store_file(
        &ctx.objects,
        &out.join("labels.nii.gz"),
        format!("{prefix}/masks/labels.nii.gz"),
        "masks",
    )
    .await?;
    let mask = store_file(
        &ctx.objects,
        &out.join("brain_mask.nii.gz"),
        format!("{prefix}/masks/brain_mask.nii.gz"),
        "masks",
    )
    .await?;
    let v = &metrics.volumes_ml;
    let analysis = studies::NewAnalysis {
        model_version: format!("{} {}", metrics.model.name, metrics.model.version),
        icv_ml: v.intracranial,
        brain_ml: v.brain,
        gm_ml: v.grey_matter,
        wm_ml: v.white_matter,
        csf_ml: v.csf,
        lesion_count: metrics.lesions.count.map(|n| n as i32),
        lesion_ml: v.lesion,
        warnings: metrics.qc.warnings.clone(),
        timings: serde_json::to_value(&metrics.timings_s).unwrap_or_default(),
        metrics: serde_json::to_value(&metrics).unwrap_or_default(),
        lesions: metrics
            .lesions
            .items
            .iter()
            .map(|l| studies::LesionInfo {
                number: l.id as i32,
                volume_ml: l.volume_ml,
                voxels: (l.volume_ml / voxel_ml).round() as i32,
                centroid_mm: l.centroid_ras_mm.to_vec(),
            })
            .collect(),
        labels,
        mask,
    };
    studies::record_analysis(&ctx.db, &job, &analysis).await?;
    tracing::info!(study = %job.study_id, seconds = started.elapsed().as_secs_f64(), "analysed");
    Ok(())
}

/// `gyri-worker work`: a worker process of its own. The database is
/// `DATABASE_URL` (the owner's URL: migrations run first, then the
/// application role connects, password `GYRI_APP_DB_PASSWORD`), the object
/// store `S3_ENDPOINT`, `S3_BUCKET`, `S3_REGION` and the AWS credential
/// chain. Stops on SIGTERM or SIGINT after its running jobs.
pub async fn run_from_env() -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let url = env("DATABASE_URL").context("DATABASE_URL is not set")?;
    let db = Db::migrate_and_connect(&url, env("GYRI_APP_DB_PASSWORD").as_deref(), 5).await?;
    let objects = ObjectStore::connect(&gyri_store::objects::ObjectStoreConfig {
        endpoint: env("S3_ENDPOINT"),
        bucket: env("S3_BUCKET").context("S3_BUCKET is not set")?,
        region: env("S3_REGION")
            .or_else(|| env("AWS_REGION"))
            .unwrap_or_else(|| "us-east-1".into()),
        credentials: None,
    })
    .await?;
    let settings = WorkerSettings::from_env()?;
    run(db, objects, settings, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can listen for SIGTERM");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    })
    .await
}
