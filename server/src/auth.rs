//! Authentication and CSRF protection, for every request.
//!
//! A request is authenticated by `Authorization: Bearer <API key>` or by the
//! session cookie. The result goes into the request's extensions as
//! [`CurrentActor`], read by the API's [`Auth`] extractor and by the pages'
//! server functions.
//!
//! CSRF: the cookie is `SameSite=Strict`; in addition, a state-changing
//! `/api/v1` call authenticated by the cookie must send the session's token as
//! `X-CSRF-Token`, and every other state-changing request (the pages' server
//! functions and forms) must come from this origin (`Origin` or
//! `Sec-Fetch-Site`). Bearer-key calls need neither: browsers never attach
//! them by themselves.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gyri_app::ssr::{session_token, ClientIp, CurrentActor};
use gyri_store::{Actor, Credential};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

pub const CSRF_HEADER: &str = "x-csrf-token";

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let path = req.uri().path().to_owned();
    let api = path.starts_with("/api/v1/");
    let headers = req.headers();

    let actor = match bearer(headers) {
        Some(key) => match gyri_store::auth::actor_for_api_key(&state.db, &key).await {
            Ok(Some(actor)) => Some(actor),
            Ok(None) => return ApiError::Unauthenticated.into_response(),
            Err(e) => return ApiError::Store(e).into_response(),
        },
        None => match session_token(headers) {
            Some(token) => match gyri_store::auth::actor_for_session(&state.db, &token).await {
                Ok(actor) => actor,
                Err(e) => return ApiError::Store(e).into_response(),
            },
            None => None,
        },
    };

    if !is_safe(req.method()) {
        let by_cookie = matches!(
            actor.as_ref().map(|a| &a.credential),
            Some(Credential::Session { .. })
        );
        let allowed = if api {
            match actor.as_ref().map(|a| &a.credential) {
                Some(Credential::Session { csrf_token, .. }) => csrf_matches(headers, csrf_token),
                // No session: sign-in or accepting an invitation. A browser
                // says where the request comes from; other clients do not.
                _ => !by_cookie && same_origin_if_stated(headers),
            }
        } else {
            same_origin(headers)
        };
        if !allowed {
            tracing::warn!(%path, "rejected a cross-site or CSRF-less request");
            return ApiError::Csrf.into_response();
        }
    }

    req.extensions_mut().insert(CurrentActor(actor));
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim().to_owned())
}

fn csrf_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .map(|v| bool::from(v.as_bytes().ct_eq(expected.as_bytes())))
        .unwrap_or(false)
}

/// The request says it comes from this origin.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin.split("://").nth(1);
        return origin_host.is_some() && origin_host == host;
    }
    matches!(
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        Some("same-origin") | Some("none")
    )
}

/// Like [`same_origin`], but a request that says nothing (not a browser)
/// passes.
fn same_origin_if_stated(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site") {
        same_origin(headers)
    } else {
        true
    }
}

/// The API's authenticated actor; 401 without one.
pub struct Auth(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentActor>()
            .and_then(|CurrentActor(a)| a.clone())
            .map(Auth)
            .ok_or(ApiError::Unauthenticated)
    }
}

/// `Option<Auth>`: handlers that answer the unauthenticated themselves (the
/// tus endpoints add protocol headers to every reply).
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Auth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CurrentActor>()
            .and_then(|CurrentActor(a)| a.clone())
            .map(Auth))
    }
}

/// The client's address, for the audit trail and rate limits.
pub struct Ip(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Ip {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Ip(parts
            .extensions
            .get::<ClientIp>()
            .and_then(|ClientIp(ip)| ip.clone())))
    }
}
