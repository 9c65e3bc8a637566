//! The authenticated principal behind a request, and its rights.

use crate::db::Scope;
use crate::error::{StoreError, StoreResult};
use crate::ids::{PracticeId, UserId};
use crate::model::Role;
use serde::Serialize;
use uuid::Uuid;

/// How the actor proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A browser session; state-changing requests must carry its CSRF token.
    Session { id: Uuid, csrf_token: String },
    /// A personal API key (no CSRF: the key is never sent automatically).
    ApiKey { id: Uuid },
}

#[derive(Clone, Debug)]
pub struct Actor {
    pub user_id: UserId,
    pub practice_id: Option<PracticeId>,
    pub role: Role,
    pub email: String,
    pub display_name: String,
    pub credential: Credential,
}

impl Actor {
    /// The scope this actor's own rows live in.
    pub fn scope(&self) -> Scope {
        match self.practice_id {
            Some(p) => Scope::Practice(p),
            None => Scope::Platform,
        }
    }

    pub fn require(&self, role: Role) -> StoreResult<()> {
        if self.role == role {
            Ok(())
        } else {
            Err(StoreError::Forbidden)
        }
    }

    /// The practice of a practice admin; `Forbidden` for anyone else.
    pub fn administered_practice(&self) -> StoreResult<PracticeId> {
        match (self.role, self.practice_id) {
            (Role::PracticeAdmin, Some(p)) => Ok(p),
            _ => Err(StoreError::Forbidden),
        }
    }

    /// What the UI and `GET /me` show about the signed-in user.
    pub fn profile(&self) -> Profile {
        Profile {
            user_id: self.user_id,
            practice_id: self.practice_id,
            role: self.role,
            email: self.email.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Profile {
    pub user_id: UserId,
    pub practice_id: Option<PracticeId>,
    pub role: Role,
    pub email: String,
    pub display_name: String,
}
