//! The append-only audit trail: who did what to which record, from where.

use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::actor::Actor;
use crate::db::{Db, Scope};
use crate::error::{StoreError, StoreResult};
use crate::ids::{PracticeId, UserId};
use crate::model::Role;

/// One event to record.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub practice_id: Option<PracticeId>,
    pub actor_user_id: Option<UserId>,
    pub actor_email: Option<String>,
    pub action: &'static str,
    pub target_type: Option<&'static str>,
    pub target_id: Option<Uuid>,
    pub ip: Option<String>,
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// An event by a signed-in actor, in the actor's practice.
    pub fn by(actor: &Actor, action: &'static str, ip: Option<String>) -> Self {
        AuditEntry {
            practice_id: actor.practice_id,
            actor_user_id: Some(actor.user_id),
            actor_email: Some(actor.email.clone()),
            action,
            target_type: None,
            target_id: None,
            ip,
            details: serde_json::json!({}),
        }
    }

    /// An event by someone not (yet) signed in, such as a failed sign-in.
    pub fn anonymous(action: &'static str, email: &str, ip: Option<String>) -> Self {
        AuditEntry {
            practice_id: None,
            actor_user_id: None,
            actor_email: Some(email.to_owned()),
            action,
            target_type: None,
            target_id: None,
            ip,
            details: serde_json::json!({}),
        }
    }

    pub fn target(mut self, kind: &'static str, id: Uuid) -> Self {
        self.target_type = Some(kind);
        self.target_id = Some(id);
        self
    }

    /// Records the event in another practice's part of the trail (a
    /// platform admin acting on a practice).
    pub fn in_practice(mut self, practice: PracticeId) -> Self {
        self.practice_id = Some(practice);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Appends an event inside the caller's transaction, so it commits or rolls
/// back together with what it describes.
pub async fn record(conn: &mut PgConnection, e: AuditEntry) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO audit_events
           (practice_id, actor_user_id, actor_email, action, target_type, target_id, ip, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8)",
        e.practice_id as Option<PracticeId>,
        e.actor_user_id as Option<UserId>,
        e.actor_email,
        e.action,
        e.target_type,
        e.target_id,
        e.ip,
        e.details
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub practice_id: Option<PracticeId>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    pub ip: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// The newest events the actor may read: a practice admin their practice's,
/// a platform admin everything (practices, accounts, sign-ins).
pub async fn list(db: &Db, actor: &Actor, limit: i64) -> StoreResult<Vec<AuditEvent>> {
    let scope = match actor.role {
        Role::PlatformAdmin => Scope::Platform,
        Role::PracticeAdmin => Scope::Practice(actor.administered_practice()?),
        _ => return Err(StoreError::Forbidden),
    };
    let practice = actor.practice_id;
    let mut tx = db.begin(scope).await?;
    let events = sqlx::query_as!(
        AuditEvent,
        r#"SELECT id, at, practice_id AS "practice_id: PracticeId", actor_email, action,
                  target_type, target_id, host(ip) AS ip, details
           FROM audit_events
           WHERE $1::uuid IS NULL OR practice_id = $1
           ORDER BY id DESC LIMIT $2"#,
        practice as Option<PracticeId>,
        limit.clamp(1, 1000)
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(events)
}
