//! Invitations, from the invited person's side: no sign-in needed, the
//! token is the credential.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gyri_store::invitations::InvitationInfo;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Ip;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/invitations/{token}", get(show))
        .route("/invitations/{token}/accept", post(accept))
}

/// Who an open invitation is for.
#[utoipa::path(get, path = "/api/v1/invitations/{token}", tag = "invitations",
    params(("token" = String, Path)), responses((status = 200, body = InvitationInfo), (status = 404), (status = 409)))]
pub async fn show(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Json<InvitationInfo>> {
    Ok(Json(gyri_store::invitations::lookup(&s.db, &token).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct Acceptance {
    pub password: String,
}

/// Accept an invitation by choosing a password (at least 12 characters).
#[utoipa::path(post, path = "/api/v1/invitations/{token}/accept", request_body = Acceptance,
    tag = "invitations", params(("token" = String, Path)),
    responses((status = 204), (status = 404), (status = 409), (status = 422)))]
pub async fn accept(
    State(s): State<AppState>,
    Ip(ip): Ip,
    Path(token): Path<String>,
    Json(body): Json<Acceptance>,
) -> ApiResult<StatusCode> {
    gyri_store::invitations::accept(&s.db, &token, &body.password, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}
