//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::time::Duration;

use crate::state::AppState;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database and the object store answer.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let limit = Duration::from_secs(3);
    let database = matches!(
        tokio::time::timeout(limit, state.db.ping()).await,
        Ok(Ok(()))
    );
    let objects = matches!(
        tokio::time::timeout(limit, state.objects.ping()).await,
        Ok(Ok(()))
    );
    let word = |ok| if ok { "ok" } else { "unreachable" };
    let status = if database && objects {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "database": word(database), "object_store": word(objects) })),
    )
}
