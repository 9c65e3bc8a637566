//! Accepting an invitation: the link's holder sets the password and the
//! account becomes active.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::auth::{check_password_policy, hash_password, token_hash};
use crate::db::{Db, Scope};
use crate::error::{StoreError, StoreResult};
use crate::ids::{PracticeId, UserId};

/// What the invitation page shows before the password is set.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationInfo {
    pub email: String,
    pub display_name: String,
    /// None for an invitation to the platform team.
    pub practice_name: Option<String>,
}

struct Open {
    invitation_id: Uuid,
    user_id: UserId,
    practice_id: Option<PracticeId>,
    email: String,
    display_name: String,
    practice_name: Option<String>,
}

async fn open_invitation(db: &Db, token: &str) -> StoreResult<Open> {
    let row = sqlx::query!(
        r#"SELECT invitation_id AS "invitation_id!", user_id AS "user_id!: UserId",
                  practice_id AS "practice_id: PracticeId", email AS "email!",
                  display_name AS "display_name!", practice_name,
                  expires_at AS "expires_at!", accepted_at
           FROM auth_invitation($1)"#,
        token_hash(token)
    )
    .fetch_optional(db.pool())
    .await?
    .ok_or(StoreError::NotFound("invitation"))?;
    if row.accepted_at.is_some() {
        return Err(StoreError::Conflict(
            "this invitation has already been used; sign in instead".into(),
        ));
    }
    if row.expires_at < OffsetDateTime::now_utc() {
        return Err(StoreError::Conflict(
            "this invitation has expired; ask your administrator for a new one".into(),
        ));
    }
    Ok(Open {
        invitation_id: row.invitation_id,
        user_id: row.user_id,
        practice_id: row.practice_id,
        email: row.email,
        display_name: row.display_name,
        practice_name: row.practice_name,
    })
}

pub async fn lookup(db: &Db, token: &str) -> StoreResult<InvitationInfo> {
    let open = open_invitation(db, token).await?;
    Ok(InvitationInfo {
        email: open.email,
        display_name: open.display_name,
        practice_name: open.practice_name,
    })
}

/// Sets the password and activates the account. Returns the e-mail address
/// so that the caller can sign the user in.
pub async fn accept(
    db: &Db,
    token: &str,
    password: &str,
    ip: Option<String>,
) -> StoreResult<String> {
    check_password_policy(password)?;
    let open = open_invitation(db, token).await?;
    let hash = hash_password(password.to_owned()).await?;
    let scope = match open.practice_id {
        Some(p) => Scope::Practice(p),
        None => Scope::Platform,
    };
    let mut tx = db.begin(scope).await?;
    // The accepted_at guard makes a double submit harmless.
    let claimed = sqlx::query!(
        "UPDATE invitations SET accepted_at = now() WHERE id = $1 AND accepted_at IS NULL",
        open.invitation_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Err(StoreError::Conflict(
            "this invitation has already been used; sign in instead".into(),
        ));
    }
    let activated = sqlx::query!(
        "UPDATE users SET password_hash = $2, status = 'active', updated_at = now()
         WHERE id = $1 AND status = 'invited'",
        open.user_id as UserId,
        hash
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if activated == 0 {
        return Err(StoreError::Conflict(
            "this account is not waiting for an invitation".into(),
        ));
    }
    let mut entry = AuditEntry::anonymous("invitation.accepted", &open.email, ip)
        .target("user", open.user_id.0);
    entry.actor_user_id = Some(open.user_id);
    entry.practice_id = open.practice_id;
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(open.email)
}
