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
        description = "Brain MRI analysis portal. Authenticate with the session cookie from POST /api/v1/session (then send X-CSRF-Token on state-changing calls) or with `Authorization: Bearer <API key>`. Study files are sent by the tus 1.0 resumable-upload protocol (core, creation, termination, checksum with sha256) at /api/v1/uploads: POST with Upload-Length and Upload-Metadata (`filename`, `study_upload` from POST /api/v1/study-uploads, optional `sequence` t1|flair|other and `sha256` hex of the whole file), then PATCH /api/v1/uploads/{id} with Upload-Offset; HEAD tells the offset to resume from, DELETE removes the file. Limits: Tus-Max-Size per file (OPTIONS), a per-study total and file count, and the practice's storage quota; a request beyond one gets 413 with a message naming the limit."
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
        super::uploads::create_study_upload,
        super::uploads::get_study_upload,
        super::uploads::complete_study_upload,
        super::studies::list,
        super::studies::show,
    )
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
