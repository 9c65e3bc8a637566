//! Server functions of the study pages: the list, one study, and what the
//! upload page needs. On the server they call `gyri-store` as the signed-in
//! user (every view of a study is audited there).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::ssr::{actor, client_ip, fail, format_time, server_context};

/// The statuses a study passes through, for the filter.
pub const STATUSES: [(&str, &str); 7] = [
    ("uploading", "Uploading"),
    ("queued", "Queued"),
    ("ingesting", "Ingesting"),
    ("analysing", "Analysing"),
    ("done", "Done"),
    ("needs_attention", "Needs attention"),
    ("failed", "Failed"),
];

/// Statuses after which nothing changes by itself.
pub fn is_final(status: &str) -> bool {
    matches!(status, "done" | "needs_attention" | "failed")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyRow {
    pub id: String,
    pub patient_ref: Option<String>,
    pub patient_name: Option<String>,
    pub study_date: Option<String>,
    pub sequences: String,
    pub status: String,
    pub status_label: String,
    pub uploaded: String,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudiesPage {
    pub rows: Vec<StudyRow>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    pub number: i32,
    pub description: String,
    pub class: String,
    pub used_as: Option<String>,
    pub files: i32,
    pub dims: String,
    pub voxel: String,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeRow {
    pub label: String,
    pub ml: f64,
    /// Percent of the intracranial volume.
    pub percent_icv: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LesionRow {
    pub number: i32,
    pub volume_ml: f64,
    pub centroid: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysisView {
    pub model: String,
    pub volumes: Vec<VolumeRow>,
    pub lesion_count: Option<i32>,
    pub lesion_ml: Option<f64>,
    pub lesions: Vec<LesionRow>,
    pub warnings: Vec<String>,
    /// (stage, seconds)
    pub timings: Vec<(String, f64)>,
    pub measured: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyView {
    pub summary: StudyRow,
    pub series: Vec<SeriesRow>,
    pub analysis: Option<AnalysisView>,
}

/// What the upload page needs of the session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadSettings {
    /// Sent as X-CSRF-Token by the uploader.
    pub csrf_token: String,
    pub may_upload: bool,
}

#[cfg(feature = "ssr")]
fn class_label(c: gyri_store::SequenceClass) -> &'static str {
    match c {
        gyri_store::SequenceClass::T1 => "T1",
        gyri_store::SequenceClass::Flair => "FLAIR",
        gyri_store::SequenceClass::Other => "other",
    }
}

#[cfg(feature = "ssr")]
fn study_row(s: gyri_store::studies::StudySummary) -> StudyRow {
    StudyRow {
        id: s.id.to_string(),
        patient_ref: s.patient_ref,
        patient_name: s.patient_name,
        study_date: s.study_date.map(|d| d.to_string()),
        sequences: s
            .sequences
            .iter()
            .map(|&c| class_label(c))
            .collect::<Vec<_>>()
            .join(", "),
        status: s.status.as_str().to_owned(),
        status_label: s.status.label().to_owned(),
        uploaded: format_time(s.created_at),
        error: s.error,
    }
}

#[server(prefix = "/fn")]
pub async fn list_studies(
    status: Option<String>,
    patient: Option<String>,
    offset: i64,
) -> Result<StudiesPage, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let filter = gyri_store::studies::StudyFilter {
        status: status
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(gyri_store::StudyStatus::parse),
        patient,
        limit: Some(25),
        offset: Some(offset),
    };
    let page = gyri_store::studies::list(&ctx.db, &actor, &filter)
        .await
        .map_err(fail)?;
    Ok(StudiesPage {
        rows: page.studies.into_iter().map(study_row).collect(),
        total: page.total,
        offset: page.offset,
        limit: page.limit,
    })
}

#[server(prefix = "/fn")]
pub async fn get_study(id: String) -> Result<StudyView, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let id = id
        .parse()
        .map_err(|_| ServerFnError::new("study not found"))?;
    let s = gyri_store::studies::get(&ctx.db, &actor, id, client_ip().await)
        .await
        .map_err(fail)?;
    let class = |c| class_label(c).to_owned();
    let series = s
        .series
        .into_iter()
        .map(|x| SeriesRow {
            number: x.number,
            description: x.description,
            class: class(x.class),
            used_as: x.used_as.map(class),
            files: x.files,
            dims: x
                .dims
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×"),
            voxel: format!(
                "{} mm",
                x.voxel_mm
                    .iter()
                    .map(|v| format!("{v:.2}"))
                    .collect::<Vec<_>>()
                    .join("×")
            ),
            note: x.note,
        })
        .collect();
    let analysis = s.analysis.map(|a| {
        let icv = a.icv_ml;
        let pct = |ml: f64| if icv > 0.0 { 100.0 * ml / icv } else { 0.0 };
        let mut volumes = vec![
            ("Intracranial", a.icv_ml),
            ("Whole brain", a.brain_ml),
            ("Grey matter", a.gm_ml),
            ("White matter", a.wm_ml),
            ("CSF", a.csf_ml),
        ];
        if let Some(l) = a.lesion_ml {
            volumes.push(("White-matter lesions", l));
        }
        let timings = a
            .timings
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.replace('_', " "), v.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        AnalysisView {
            model: a.model_version,
            volumes: volumes
                .into_iter()
                .map(|(label, ml)| VolumeRow {
                    label: label.to_owned(),
                    ml,
                    percent_icv: pct(ml),
                })
                .collect(),
            lesion_count: a.lesion_count,
            lesion_ml: a.lesion_ml,
            lesions: a
                .lesions
                .into_iter()
                .map(|l| LesionRow {
                    number: l.number,
                    volume_ml: l.volume_ml,
                    centroid: l
                        .centroid_mm
                        .iter()
                        .map(|c| format!("{c:.1}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect(),
            warnings: a.warnings,
            timings,
            measured: format_time(a.updated_at),
        }
    });
    Ok(StudyView {
        summary: study_row(s.summary),
        series,
        analysis,
    })
}

#[server(prefix = "/fn")]
pub async fn upload_config() -> Result<UploadSettings, ServerFnError> {
    let actor = actor().await?;
    let csrf_token = match &actor.credential {
        gyri_store::Credential::Session { csrf_token, .. } => csrf_token.clone(),
        gyri_store::Credential::ApiKey { .. } => String::new(),
    };
    Ok(UploadSettings {
        csrf_token,
        may_upload: matches!(
            actor.role,
            gyri_store::Role::Technician | gyri_store::Role::PracticeAdmin
        ),
    })
}

/// A study's status alone, for polling (not a view of the study: no audit
/// entry).
#[server(prefix = "/fn")]
pub async fn study_status(id: String) -> Result<String, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let id = id
        .parse()
        .map_err(|_| ServerFnError::new("study not found"))?;
    let status = gyri_store::studies::status_for(&ctx.db, &actor, id)
        .await
        .map_err(fail)?;
    Ok(status.as_str().to_owned())
}
