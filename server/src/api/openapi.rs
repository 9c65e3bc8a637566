//! The OpenAPI document of `/api/v1`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gyri API",
        version = "1",
        description = "Brain MRI analysis portal. Authenticate with the session cookie from POST /api/v1/session (then send X-CSRF-Token on state-changing calls) or with `Authorization: Bearer <API key>`."
    ),
    paths(
        super::session::sign_in,
        super::session::sign_out,
        super::session::me,
        super::session::change_password,
        super::practices::list,
        super::practices::create,
        super::practices::show,
        super::practices::suspend,
        super::practices::reactivate,
        super::practices::invite_admin,
        super::practices::own,
        super::practices::update_own,
        super::users::list,
        super::users::invite,
        super::users::update,
        super::users::deactivate,
        super::users::reactivate,
        super::invitations::show,
        super::invitations::accept,
        super::api_keys::list,
        super::api_keys::create,
        super::api_keys::revoke,
        super::audit::list,
    )
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
