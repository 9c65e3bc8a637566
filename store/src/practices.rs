//! Practices (tenants): created and suspended by platform admins; their
//! settings are kept by their practice admins.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::actor::Actor;
use crate::audit::{self, AuditEntry};
use crate::db::{Db, Scope};
use crate::error::{StoreError, StoreResult};
use crate::ids::PracticeId;
use crate::model::{PracticeStatus, Programme, Role};

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Practice {
    pub id: PracticeId,
    pub name: String,
    pub status: PracticeStatus,
    pub programme: Programme,
    pub follow_up_months: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Users of the practice (all statuses).
    pub user_count: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NewPractice {
    pub name: String,
    #[serde(default = "default_programme")]
    pub programme: Programme,
    /// Months between follow-up scans; the programme's default when absent.
    #[serde(default)]
    pub follow_up_months: Option<i32>,
}

fn default_programme() -> Programme {
    Programme::Ms
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PracticeSettings {
    pub programme: Programme,
    pub follow_up_months: i32,
}

pub async fn list(db: &Db, actor: &Actor) -> StoreResult<Vec<Practice>> {
    actor.require(Role::PlatformAdmin)?;
    let mut tx = db.begin(Scope::Platform).await?;
    let rows = sqlx::query_as!(
        Practice,
        r#"SELECT p.id AS "id: PracticeId", p.name, p.status AS "status: PracticeStatus",
                  p.programme AS "programme: Programme", p.follow_up_months, p.created_at,
                  (SELECT count(*) FROM users u WHERE u.practice_id = p.id) AS "user_count!"
           FROM practices p ORDER BY lower(p.name)"#
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// A platform admin may read any practice; a member only their own.
pub async fn get(db: &Db, actor: &Actor, id: PracticeId) -> StoreResult<Practice> {
    let scope = match actor.role {
        Role::PlatformAdmin => Scope::Platform,
        _ if actor.practice_id == Some(id) => Scope::Practice(id),
        _ => return Err(StoreError::NotFound("practice")),
    };
    let mut tx = db.begin(scope).await?;
    let row = sqlx::query_as!(
        Practice,
        r#"SELECT p.id AS "id: PracticeId", p.name, p.status AS "status: PracticeStatus",
                  p.programme AS "programme: Programme", p.follow_up_months, p.created_at,
                  (SELECT count(*) FROM users u WHERE u.practice_id = p.id) AS "user_count!"
           FROM practices p WHERE p.id = $1"#,
        id as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("practice"))?;
    tx.commit().await?;
    Ok(row)
}

pub async fn create(
    db: &Db,
    actor: &Actor,
    new: NewPractice,
    ip: Option<String>,
) -> StoreResult<Practice> {
    actor.require(Role::PlatformAdmin)?;
    let id = PracticeId::new();
    let name = new.name.trim().to_owned();
    let follow_up = new
        .follow_up_months
        .unwrap_or_else(|| new.programme.default_follow_up_months());
    let mut tx = db.begin(Scope::Platform).await?;
    sqlx::query!(
        "INSERT INTO practices (id, name, programme, follow_up_months) VALUES ($1, $2, $3, $4)",
        id as PracticeId,
        name,
        new.programme as Programme,
        follow_up
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "practice.created", ip)
            .in_practice(id)
            .target("practice", id.0)
            .details(serde_json::json!({ "name": name })),
    )
    .await?;
    tx.commit().await?;
    get(db, actor, id).await
}

/// Suspends or reactivates a practice. A suspended practice's users cannot
/// sign in, and their sessions and API keys stop working at once.
pub async fn set_status(
    db: &Db,
    actor: &Actor,
    id: PracticeId,
    status: PracticeStatus,
    ip: Option<String>,
) -> StoreResult<Practice> {
    actor.require(Role::PlatformAdmin)?;
    let mut tx = db.begin(Scope::Platform).await?;
    let updated = sqlx::query!(
        "UPDATE practices SET status = $2 WHERE id = $1",
        id as PracticeId,
        status as PracticeStatus
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(StoreError::NotFound("practice"));
    }
    let action = match status {
        PracticeStatus::Active => "practice.reactivated",
        PracticeStatus::Suspended => "practice.suspended",
    };
    audit::record(
        &mut tx,
        AuditEntry::by(actor, action, ip)
            .in_practice(id)
            .target("practice", id.0),
    )
    .await?;
    tx.commit().await?;
    get(db, actor, id).await
}

/// A practice admin changes their practice's programme defaults.
pub async fn update_settings(
    db: &Db,
    actor: &Actor,
    settings: PracticeSettings,
    ip: Option<String>,
) -> StoreResult<Practice> {
    let id = actor.administered_practice()?;
    let mut tx = db.begin(Scope::Practice(id)).await?;
    sqlx::query!(
        "UPDATE practices SET programme = $2, follow_up_months = $3 WHERE id = $1",
        id as PracticeId,
        settings.programme as Programme,
        settings.follow_up_months
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "practice.settings_changed", ip)
            .target("practice", id.0)
            .details(serde_json::json!({
                "programme": settings.programme,
                "follow_up_months": settings.follow_up_months,
            })),
    )
    .await?;
    tx.commit().await?;
    get(db, actor, id).await
}
