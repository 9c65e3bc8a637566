//! Practices: platform admins manage them; members read their own, and its
//! practice admin keeps its settings.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use gyri_store::practices::{NewPractice, Practice, PracticeSettings};
use gyri_store::users::{IssuedInvitation, NewInvitation};
use gyri_store::{PracticeId, PracticeStatus, Role, StoreError};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{Auth, Ip};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/practices", get(list).post(create))
        .route("/practices/{id}", get(show))
        .route("/practices/{id}/suspend", post(suspend))
        .route("/practices/{id}/reactivate", post(reactivate))
        .route("/practices/{id}/invitations", post(invite_admin))
        .route("/practice", get(own).put(update_own))
}

fn parse_id(id: &str) -> ApiResult<PracticeId> {
    id.parse()
        .map_err(|_| ApiError::Store(StoreError::NotFound("practice")))
}

/// All practices (platform admins).
#[utoipa::path(get, path = "/api/v1/practices", tag = "practices", responses((status = 200, body = [Practice])))]
pub async fn list(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Vec<Practice>>> {
    Ok(Json(gyri_store::practices::list(&s.db, &actor).await?))
}

/// Create a practice (platform admins).
#[utoipa::path(post, path = "/api/v1/practices", request_body = NewPractice, tag = "practices",
    responses((status = 200, body = Practice), (status = 409, description = "name taken")))]
pub async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Json(body): Json<NewPractice>,
) -> ApiResult<Json<Practice>> {
    Ok(Json(
        gyri_store::practices::create(&s.db, &actor, body, ip).await?,
    ))
}

/// One practice (platform admins: any; members: their own).
#[utoipa::path(get, path = "/api/v1/practices/{id}", tag = "practices", params(("id" = String, Path)),
    responses((status = 200, body = Practice), (status = 404)))]
pub async fn show(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Practice>> {
    Ok(Json(
        gyri_store::practices::get(&s.db, &actor, parse_id(&id)?).await?,
    ))
}

/// Suspend a practice: its users can no longer sign in (platform admins).
#[utoipa::path(post, path = "/api/v1/practices/{id}/suspend", tag = "practices", params(("id" = String, Path)),
    responses((status = 200, body = Practice)))]
pub async fn suspend(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
) -> ApiResult<Json<Practice>> {
    let id = parse_id(&id)?;
    Ok(Json(
        gyri_store::practices::set_status(&s.db, &actor, id, PracticeStatus::Suspended, ip).await?,
    ))
}

/// Reactivate a suspended practice (platform admins).
#[utoipa::path(post, path = "/api/v1/practices/{id}/reactivate", tag = "practices", params(("id" = String, Path)),
    responses((status = 200, body = Practice)))]
pub async fn reactivate(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
) -> ApiResult<Json<Practice>> {
    let id = parse_id(&id)?;
    Ok(Json(
        gyri_store::practices::set_status(&s.db, &actor, id, PracticeStatus::Active, ip).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct AdminInvitation {
    pub email: String,
    pub display_name: String,
}

/// Invite a practice admin into a practice (platform admins). The response
/// holds the invitation token: the link is `/invite/{token}`.
#[utoipa::path(post, path = "/api/v1/practices/{id}/invitations", request_body = AdminInvitation,
    tag = "practices", params(("id" = String, Path)), responses((status = 200, body = IssuedInvitation)))]
pub async fn invite_admin(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
    Json(body): Json<AdminInvitation>,
) -> ApiResult<Json<IssuedInvitation>> {
    let id = parse_id(&id)?;
    let new = NewInvitation {
        email: body.email,
        display_name: body.display_name,
        role: Role::PracticeAdmin,
    };
    Ok(Json(
        gyri_store::users::invite(&s.db, &actor, id, new, ip).await?,
    ))
}

/// The signed-in user's own practice.
#[utoipa::path(get, path = "/api/v1/practice", tag = "practices", responses((status = 200, body = Practice)))]
pub async fn own(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Practice>> {
    let id = actor.practice_id.ok_or(StoreError::NotFound("practice"))?;
    Ok(Json(gyri_store::practices::get(&s.db, &actor, id).await?))
}

/// Change the practice's programme defaults (practice admins).
#[utoipa::path(put, path = "/api/v1/practice", request_body = PracticeSettings, tag = "practices",
    responses((status = 200, body = Practice)))]
pub async fn update_own(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Json(body): Json<PracticeSettings>,
) -> ApiResult<Json<Practice>> {
    Ok(Json(
        gyri_store::practices::update_settings(&s.db, &actor, body, ip).await?,
    ))
}
