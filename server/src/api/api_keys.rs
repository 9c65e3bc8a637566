//! Personal API keys of the signed-in user.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use gyri_store::api_keys::{ApiKey, CreatedApiKey, NewApiKey};
use gyri_store::StoreError;

use crate::auth::{Auth, Ip};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{id}", delete(revoke))
}

/// Your live API keys (without the keys themselves).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", responses((status = 200, body = [ApiKey])))]
pub async fn list(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Vec<ApiKey>>> {
    Ok(Json(gyri_store::api_keys::list(&s.db, &actor).await?))
}

/// Create an API key; the response is the only time the key is shown.
#[utoipa::path(post, path = "/api/v1/api-keys", request_body = NewApiKey, tag = "api-keys",
    responses((status = 200, body = CreatedApiKey)))]
pub async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Json(body): Json<NewApiKey>,
) -> ApiResult<Json<CreatedApiKey>> {
    Ok(Json(
        gyri_store::api_keys::create(&s.db, &actor, body, ip).await?,
    ))
}

/// Revoke one of your API keys.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404)))]
pub async fn revoke(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = id
        .parse()
        .map_err(|_| ApiError::Store(StoreError::NotFound("API key")))?;
    gyri_store::api_keys::revoke(&s.db, &actor, id, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}
