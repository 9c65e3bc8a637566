//! The JSON API under `/api/v1`: the same operations as the pages, for
//! scripts and research tools. Described by `/api/v1/openapi.json`.

mod api_keys;
mod audit;
mod invitations;
mod openapi;
mod practices;
mod session;
mod studies;
mod uploads;
mod users;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(session::router())
        .merge(practices::router())
        .merge(users::router())
        .merge(invitations::router())
        .merge(api_keys::router())
        .merge(audit::router())
        .merge(uploads::router())
        .merge(studies::router())
        .merge(openapi::router())
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({ "error": "no such API route" })),
            )
        })
}
