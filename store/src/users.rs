//! Users of a practice: listed, invited, given roles and deactivated by
//! their practice admin (and a practice's first admin by a platform admin).

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::actor::Actor;
use crate::audit::{self, AuditEntry};
use crate::auth::{random_token, token_hash};
use crate::db::{Db, Scope};
use crate::error::{StoreError, StoreResult};
use crate::ids::{PracticeId, UserId};
use crate::model::{PracticeStatus, Role, UserStatus};

/// How long an invitation link stays valid.
pub const INVITATION_TTL: Duration = Duration::days(7);

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub practice_id: Option<PracticeId>,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub status: UserStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NewInvitation {
    pub email: String,
    pub display_name: String,
    pub role: Role,
}

/// An invitation just made. The token is shown once, to the inviting admin,
/// who passes the link on (Gyri sends no e-mail).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedInvitation {
    pub user: User,
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// The users of the practice admin's practice.
pub async fn list(db: &Db, actor: &Actor) -> StoreResult<Vec<User>> {
    let practice = actor.administered_practice()?;
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    let users = sqlx::query_as!(
        User,
        r#"SELECT id AS "id: UserId", practice_id AS "practice_id: PracticeId", email,
                  display_name, role AS "role: Role", status AS "status: UserStatus", created_at
           FROM users WHERE practice_id = $1 ORDER BY lower(display_name), lower(email)"#,
        practice as PracticeId
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(users)
}

/// Invites a user into `practice`. Practice admins invite into their own
/// practice with any practice role; platform admins invite practice admins
/// into any active practice.
pub async fn invite(
    db: &Db,
    actor: &Actor,
    practice: PracticeId,
    new: NewInvitation,
    ip: Option<String>,
) -> StoreResult<IssuedInvitation> {
    let scope = match actor.role {
        Role::PlatformAdmin if new.role == Role::PracticeAdmin => Scope::Platform,
        Role::PracticeAdmin
            if actor.practice_id == Some(practice) && new.role.is_practice_role() =>
        {
            Scope::Practice(practice)
        }
        _ => return Err(StoreError::Forbidden),
    };
    let email = new.email.trim().to_lowercase();
    let display_name = new.display_name.trim().to_owned();
    let mut tx = db.begin(scope).await?;
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: PracticeStatus" FROM practices WHERE id = $1"#,
        practice as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("practice"))?;
    if status != PracticeStatus::Active {
        return Err(StoreError::Conflict(
            "the practice is suspended; reactivate it first".into(),
        ));
    }
    let user = sqlx::query_as!(
        User,
        r#"INSERT INTO users (id, practice_id, email, display_name, role, status)
           VALUES ($1, $2, $3, $4, $5, 'invited')
           RETURNING id AS "id: UserId", practice_id AS "practice_id: PracticeId", email,
                     display_name, role AS "role: Role", status AS "status: UserStatus",
                     created_at"#,
        UserId::new() as UserId,
        practice as PracticeId,
        email,
        display_name,
        new.role as Role
    )
    .fetch_one(&mut *tx)
    .await?;
    let token = random_token();
    let expires_at = OffsetDateTime::now_utc() + INVITATION_TTL;
    sqlx::query!(
        "INSERT INTO invitations (id, practice_id, user_id, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        uuid::Uuid::new_v4(),
        practice as PracticeId,
        user.id as UserId,
        token_hash(&token),
        actor.user_id as UserId,
        expires_at
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "user.invited", ip)
            .in_practice(practice)
            .target("user", user.id.0)
            .details(serde_json::json!({ "email": email, "role": new.role })),
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedInvitation {
        user,
        token,
        expires_at,
    })
}

/// Loads a user of the admin's practice for a change, refusing changes to
/// the admin's own account (an admin cannot lock themselves out).
async fn lock_member(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    practice: PracticeId,
    id: UserId,
) -> StoreResult<()> {
    let found = sqlx::query_scalar!(
        "SELECT id FROM users WHERE id = $1 AND practice_id = $2 FOR UPDATE",
        id as UserId,
        practice as PracticeId
    )
    .fetch_optional(&mut *tx)
    .await?;
    if found.is_none() {
        return Err(StoreError::NotFound("user"));
    }
    if id == actor.user_id {
        return Err(StoreError::Conflict(
            "you cannot change your own role or status".into(),
        ));
    }
    Ok(())
}

async fn fetch(tx: &mut sqlx::PgConnection, id: UserId) -> StoreResult<User> {
    Ok(sqlx::query_as!(
        User,
        r#"SELECT id AS "id: UserId", practice_id AS "practice_id: PracticeId", email,
                  display_name, role AS "role: Role", status AS "status: UserStatus", created_at
           FROM users WHERE id = $1"#,
        id as UserId
    )
    .fetch_one(&mut *tx)
    .await?)
}

pub async fn set_role(
    db: &Db,
    actor: &Actor,
    id: UserId,
    role: Role,
    ip: Option<String>,
) -> StoreResult<User> {
    let practice = actor.administered_practice()?;
    if !role.is_practice_role() {
        return Err(StoreError::Forbidden);
    }
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    lock_member(&mut tx, actor, practice, id).await?;
    sqlx::query!(
        "UPDATE users SET role = $2, updated_at = now() WHERE id = $1",
        id as UserId,
        role as Role
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::by(actor, "user.role_changed", ip)
            .target("user", id.0)
            .details(serde_json::json!({ "role": role })),
    )
    .await?;
    let user = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(user)
}

/// Deactivates a user (their sessions end and keys stop working) or
/// reactivates them (back to active, or to invited if they never accepted).
pub async fn set_active(
    db: &Db,
    actor: &Actor,
    id: UserId,
    active: bool,
    ip: Option<String>,
) -> StoreResult<User> {
    let practice = actor.administered_practice()?;
    let mut tx = db.begin(Scope::Practice(practice)).await?;
    lock_member(&mut tx, actor, practice, id).await?;
    if active {
        sqlx::query!(
            "UPDATE users SET updated_at = now(),
                 status = CASE WHEN password_hash IS NULL THEN 'invited'::user_status
                               ELSE 'active'::user_status END
             WHERE id = $1 AND status = 'deactivated'",
            id as UserId
        )
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query!(
            "UPDATE users SET status = 'deactivated', updated_at = now() WHERE id = $1",
            id as UserId
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM sessions WHERE user_id = $1", id as UserId)
            .execute(&mut *tx)
            .await?;
    }
    let action = if active {
        "user.reactivated"
    } else {
        "user.deactivated"
    };
    audit::record(
        &mut tx,
        AuditEntry::by(actor, action, ip).target("user", id.0),
    )
    .await?;
    let user = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(user)
}
