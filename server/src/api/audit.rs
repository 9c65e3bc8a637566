//! The audit trail, for admins.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use gyri_store::audit::AuditEvent;
use serde::Deserialize;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// How many of the newest events (1 to 1000, default 100).
    pub limit: Option<i64>,
}

/// The newest audit events: a practice admin's practice, or for platform
/// admins every practice's account events.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditEvent])))]
pub async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEvent>>> {
    Ok(Json(
        gyri_store::audit::list(&s.db, &actor, q.limit.unwrap_or(100)).await?,
    ))
}
