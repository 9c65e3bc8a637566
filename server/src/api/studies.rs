//! The practice's studies: the list with status, and one study with its
//! series and measurements. Every view of a study is audited.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use gyri_store::studies::{StudyDetail, StudyFilter, StudyPage};
use gyri_store::StoreError;
use uuid::Uuid;

use crate::auth::{Auth, Ip};
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/studies", get(list))
        .route("/studies/{id}", get(show))
}

/// Your practice's studies, newest first, with their status.
#[utoipa::path(get, path = "/api/v1/studies", tag = "studies", params(StudyFilter),
    responses((status = 200, body = StudyPage), (status = 403)))]
pub async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(filter): Query<StudyFilter>,
) -> ApiResult<Json<StudyPage>> {
    Ok(Json(
        gyri_store::studies::list(&s.db, &actor, &filter).await?,
    ))
}

/// One study: its series, status, error and measurements (the fields of
/// `metrics.json`).
#[utoipa::path(get, path = "/api/v1/studies/{id}", tag = "studies",
    params(("id" = String, Path)), responses((status = 200, body = StudyDetail), (status = 404)))]
pub async fn show(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
) -> ApiResult<Json<StudyDetail>> {
    let id: Uuid = id.parse().map_err(|_| StoreError::NotFound("study"))?;
    Ok(Json(gyri_store::studies::get(&s.db, &actor, id, ip).await?))
}
