//! Server-side glue for the pages: what the server provides to server
//! functions, the session cookie, and error mapping.

use axum::http::{header, HeaderMap, HeaderValue};
use gyri_store::auth::SignInLimits;
use gyri_store::{Actor, Db, StoreError};
use leptos::prelude::*;
use leptos_axum::ResponseOptions;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gyri_session";

/// What server functions need from the server, provided as context.
#[derive(Clone, Debug)]
pub struct ServerContext {
    pub db: Db,
    pub session_ttl: time::Duration,
    pub cookie_secure: bool,
    pub limits: SignInLimits,
}

/// Put into every request's extensions by the server's authentication layer.
#[derive(Clone, Debug, Default)]
pub struct CurrentActor(pub Option<Actor>);

/// The client's address, put into every request's extensions by the server.
#[derive(Clone, Debug, Default)]
pub struct ClientIp(pub Option<String>);

pub fn server_context() -> Result<ServerContext, ServerFnError> {
    use_context::<ServerContext>().ok_or_else(|| ServerFnError::new("server context missing"))
}

pub async fn maybe_actor() -> Result<Option<Actor>, ServerFnError> {
    let axum::Extension(CurrentActor(actor)) = leptos_axum::extract().await?;
    Ok(actor)
}

/// The signed-in actor, or an error asking to sign in.
pub async fn actor() -> Result<Actor, ServerFnError> {
    maybe_actor()
        .await?
        .ok_or_else(|| ServerFnError::new("please sign in"))
}

pub async fn client_ip() -> Option<String> {
    leptos_axum::extract::<axum::Extension<ClientIp>>()
        .await
        .ok()
        .and_then(|axum::Extension(ClientIp(ip))| ip)
}

/// A store error as the page should show it; internal details are logged
/// once here and replaced by a generic message.
pub fn fail(e: StoreError) -> ServerFnError {
    match e {
        StoreError::Internal(inner) => {
            tracing::error!(error = ?inner, "server function failed");
            ServerFnError::new("something went wrong on our side; please try again")
        }
        other => ServerFnError::new(other.to_string()),
    }
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(token: &str, ttl: time::Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.whole_seconds(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session token in a request's cookies.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

pub fn set_session_cookie(ctx: &ServerContext, token: &str) {
    if let Some(response) = use_context::<ResponseOptions>() {
        if let Ok(v) =
            HeaderValue::from_str(&session_cookie(token, ctx.session_ttl, ctx.cookie_secure))
        {
            response.append_header(header::SET_COOKIE, v);
        }
    }
}

pub fn clear_session_cookie(ctx: &ServerContext) {
    if let Some(response) = use_context::<ResponseOptions>() {
        if let Ok(v) = HeaderValue::from_str(&cleared_cookie(ctx.cookie_secure)) {
            response.append_header(header::SET_COOKIE, v);
        }
    }
}

/// The absolute invitation link, on the host the admin is using.
pub async fn invite_url(token: &str) -> String {
    let headers: HeaderMap = leptos_axum::extract().await.unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:3000");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}/invite/{token}")
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}
