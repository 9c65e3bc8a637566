//! The JSON API's error: each variant says its HTTP status. Clients get a
//! clear message, never SQL or a stack trace; internal errors are logged
//! here, once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gyri_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no valid session or API key.
    #[error("sign in first (session cookie or `Authorization: Bearer <key>`)")]
    Unauthenticated,
    /// 403: a state-changing call with a session cookie lacks its CSRF token.
    #[error("missing or wrong X-CSRF-Token header")]
    Csrf,
    /// 400: the request cannot be understood.
    #[error("{0}")]
    BadRequest(String),
    /// 460 (tus): the body's checksum does not match `Upload-Checksum`.
    #[error("{0}")]
    ChecksumMismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Csrf => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::ChecksumMismatch(_) => {
                StatusCode::from_u16(crate::tus::CHECKSUM_MISMATCH).expect("a valid status")
            }
            ApiError::Store(e) => match e {
                StoreError::BadCredentials => StatusCode::UNAUTHORIZED,
                StoreError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                StoreError::Forbidden => StatusCode::FORBIDDEN,
                StoreError::NotFound(_) => StatusCode::NOT_FOUND,
                StoreError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                StoreError::Conflict(_) => StatusCode::CONFLICT,
                StoreError::OffsetMismatch { .. } => StatusCode::CONFLICT,
                StoreError::Limit(_) => StatusCode::PAYLOAD_TOO_LARGE,
                StoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Store(StoreError::Internal(e)) => {
                tracing::error!(error = ?e, "request failed");
                "something went wrong on our side; please try again".to_owned()
            }
            other => other.to_string(),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
