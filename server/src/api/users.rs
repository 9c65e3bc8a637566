//! A practice's users, managed by its practice admins.

use axum::extract::{Path, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use gyri_store::users::{IssuedInvitation, NewInvitation, User};
use gyri_store::{Role, StoreError, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{Auth, Ip};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(invite))
        .route("/users/{id}", patch(update))
        .route("/users/{id}/deactivate", post(deactivate))
        .route("/users/{id}/reactivate", post(reactivate))
}

fn parse_id(id: &str) -> ApiResult<UserId> {
    id.parse()
        .map_err(|_| ApiError::Store(StoreError::NotFound("user")))
}

/// The users of your practice (practice admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = [User])))]
pub async fn list(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(gyri_store::users::list(&s.db, &actor).await?))
}

/// Invite a user into your practice (practice admins). The response holds
/// the invitation token: the link is `/invite/{token}`.
#[utoipa::path(post, path = "/api/v1/users", request_body = NewInvitation, tag = "users",
    responses((status = 200, body = IssuedInvitation), (status = 409, description = "e-mail taken")))]
pub async fn invite(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Json(body): Json<NewInvitation>,
) -> ApiResult<Json<IssuedInvitation>> {
    let practice = actor.practice_id.ok_or(StoreError::Forbidden)?;
    Ok(Json(
        gyri_store::users::invite(&s.db, &actor, practice, body, ip).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct UserUpdate {
    pub role: Role,
}

/// Change a user's role (practice admins, not their own).
#[utoipa::path(patch, path = "/api/v1/users/{id}", request_body = UserUpdate, tag = "users",
    params(("id" = String, Path)), responses((status = 200, body = User), (status = 404)))]
pub async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
    Json(body): Json<UserUpdate>,
) -> ApiResult<Json<User>> {
    let id = parse_id(&id)?;
    Ok(Json(
        gyri_store::users::set_role(&s.db, &actor, id, body.role, ip).await?,
    ))
}

/// Deactivate a user: their sessions end and keys stop working.
#[utoipa::path(post, path = "/api/v1/users/{id}/deactivate", tag = "users",
    params(("id" = String, Path)), responses((status = 200, body = User), (status = 404)))]
pub async fn deactivate(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    let id = parse_id(&id)?;
    Ok(Json(
        gyri_store::users::set_active(&s.db, &actor, id, false, ip).await?,
    ))
}

/// Reactivate a deactivated user.
#[utoipa::path(post, path = "/api/v1/users/{id}/reactivate", tag = "users",
    params(("id" = String, Path)), responses((status = 200, body = User), (status = 404)))]
pub async fn reactivate(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    let id = parse_id(&id)?;
    Ok(Json(
        gyri_store::users::set_active(&s.db, &actor, id, true, ip).await?,
    ))
}
