//! Signing in and out, and the signed-in user's own account.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use gyri_app::ssr::{cleared_cookie, session_cookie};
use gyri_store::actor::Profile;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Auth, Ip};
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/session", post(sign_in).delete(sign_out))
        .route("/me", get(me))
        .route("/me/password", put(change_password))
}

#[derive(Deserialize, ToSchema)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignInResponse {
    /// Send this as `X-CSRF-Token` with every state-changing call that uses
    /// the session cookie.
    pub csrf_token: String,
    pub user: Profile,
}

/// Sign in: sets the session cookie and returns the CSRF token.
#[utoipa::path(post, path = "/api/v1/session", request_body = SignInRequest, tag = "session",
    responses((status = 200, body = SignInResponse), (status = 401, description = "wrong credentials"),
              (status = 429, description = "too many failed attempts")))]
pub async fn sign_in(
    State(state): State<AppState>,
    Ip(ip): Ip,
    headers: HeaderMap,
    Json(body): Json<SignInRequest>,
) -> ApiResult<Response> {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ctx = &state.context;
    let session = gyri_store::auth::sign_in(
        &state.db,
        &body.email,
        &body.password,
        ip,
        agent,
        ctx.limits,
        ctx.session_ttl,
    )
    .await?;
    let cookie = session_cookie(&session.token, ctx.session_ttl, ctx.cookie_secure);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(SignInResponse {
            csrf_token: session.csrf_token,
            user: session.actor.profile(),
        }),
    )
        .into_response())
}

/// Sign out: ends the session and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204)))]
pub async fn sign_out(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
) -> ApiResult<Response> {
    gyri_store::auth::sign_out(&state.db, &actor, ip).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            cleared_cookie(state.context.cookie_secure),
        )],
    )
        .into_response())
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "session", responses((status = 200, body = Profile)))]
pub async fn me(Auth(actor): Auth) -> Json<Profile> {
    Json(actor.profile())
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Change your password; your other sessions end.
#[utoipa::path(put, path = "/api/v1/me/password", request_body = PasswordChange, tag = "session",
    responses((status = 204), (status = 422, description = "wrong current password or weak new one")))]
pub async fn change_password(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Json(body): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    gyri_store::auth::change_password(
        &state.db,
        &actor,
        &body.current_password,
        &body.new_password,
        ip,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
