//! Personal API keys: created by a user for scripts, shown once, stored as a
//! SHA-256, revocable.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::actor::Actor;
use crate::audit::{self, AuditEntry};
use crate::auth::{random_token, token_hash};
use crate::db::Db;
use crate::error::{StoreError, StoreResult};
use crate::ids::{PracticeId, UserId};

/// Every key starts with this, so that leaked keys are easy to recognise.
pub const KEY_PREFIX: &str = "gyri_";

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NewApiKey {
    pub name: String,
}

/// A key just created; `key` is never shown again.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub info: ApiKey,
    pub key: String,
}

pub async fn list(db: &Db, actor: &Actor) -> StoreResult<Vec<ApiKey>> {
    let mut tx = db.begin(actor.scope()).await?;
    let keys = sqlx::query_as!(
        ApiKey,
        "SELECT id, name, prefix, created_at, last_used_at FROM api_keys
         WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at",
        actor.user_id as UserId
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(keys)
}

pub async fn create(
    db: &Db,
    actor: &Actor,
    new: NewApiKey,
    ip: Option<String>,
) -> StoreResult<CreatedApiKey> {
    let key = format!("{KEY_PREFIX}{}", random_token());
    let prefix: String = key.chars().take(KEY_PREFIX.len() + 6).collect();
    let mut tx = db.begin(actor.scope()).await?;
    let info = sqlx::query_as!(
        ApiKey,
        "INSERT INTO api_keys (id, practice_id, user_id, name, prefix, key_hash)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, name, prefix, created_at, last_used_at",
        Uuid::new_v4(),
        actor.practice_id as Option<PracticeId>,
        actor.user_id as UserId,
        new.name.trim(),
        prefix,
        token_hash(&key)
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "api_key.created", ip).target("api_key", info.id),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedApiKey { info, key })
}

/// Revokes one of the actor's own keys.
pub async fn revoke(db: &Db, actor: &Actor, id: Uuid, ip: Option<String>) -> StoreResult<()> {
    let mut tx = db.begin(actor.scope()).await?;
    let revoked = sqlx::query!(
        "UPDATE api_keys SET revoked_at = now()
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        id,
        actor.user_id as UserId
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if revoked == 0 {
        return Err(StoreError::NotFound("API key"));
    }
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "api_key.revoked", ip).target("api_key", id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
