//! The store's error type: what went wrong, in terms a caller can map to an
//! HTTP status or a message for the user. Database details stay inside.

use thiserror::Error;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The credentials are wrong, expired or belong to a disabled account.
    #[error("sign-in failed: wrong e-mail or password, or the account is not active")]
    BadCredentials,
    /// Too many failed sign-ins for this account or address.
    #[error("too many failed sign-in attempts; try again later")]
    RateLimited,
    /// The actor's role does not allow this.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// Nothing by that id in the actor's scope (also what another practice's
    /// data looks like).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request breaks a rule of the data (duplicate e-mail, bad name, ...).
    #[error("{0}")]
    Invalid(String),
    /// A size limit or quota would be exceeded; the message says which.
    #[error("{0}")]
    Limit(String),
    /// A resumable upload is not at the offset the request says.
    #[error("the upload stands at byte {expected}; resume from there")]
    OffsetMismatch { expected: i64 },
    /// Conflicts with existing data.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if let Some(message) = db.constraint().and_then(constraint_message) {
                return match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(message.into()),
                    _ => StoreError::Invalid(message.into()),
                };
            }
        }
        StoreError::Internal(anyhow::Error::new(e).context("database error"))
    }
}

/// User-facing messages for the constraints of the schema.
fn constraint_message(constraint: &str) -> Option<&'static str> {
    Some(match constraint {
        "practices_name_key" => "a practice with this name already exists",
        "practices_name_length" => "the practice name must have 1 to 200 characters",
        "practices_follow_up_range" => "the follow-up interval must be 1 to 120 months",
        "users_email_key" => "a user with this e-mail address already exists",
        "users_email_format" => "this is not a valid e-mail address",
        "users_display_name_length" => "the name must have 1 to 200 characters",
        "users_practice_matches_role" => {
            "platform admins belong to no practice; everyone else to one"
        }
        "api_keys_name_length" => "the key name must have 1 to 100 characters",
        "study_uploads_patient_ref_length" | "patients_ref_length" => {
            "the patient ID must have 1 to 64 characters"
        }
        _ => return None,
    })
}
