//! Sign-in, sessions and credentials.
//!
//! Passwords are hashed with argon2id at the OWASP parameters (19 MiB, t=2,
//! p=1) on a blocking thread. Session tokens, API keys and invitation tokens
//! are 256-bit random strings; only their SHA-256 is stored.

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::actor::{Actor, Credential};
use crate::audit::{self, AuditEntry};
use crate::db::{Db, Scope};
use crate::error::{StoreError, StoreResult};
use crate::ids::{PracticeId, UserId};
use crate::model::{Role, UserStatus};

/// Minimum password length (NIST SP 800-63B).
pub const MIN_PASSWORD_LEN: usize = 12;

/// Limits for failed sign-ins inside a sliding window.
#[derive(Clone, Copy, Debug)]
pub struct SignInLimits {
    /// Failed attempts allowed per account since its last success.
    pub per_account: i64,
    /// Failed attempts allowed per client address.
    pub per_ip: i64,
    pub window: Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            per_account: 5,
            per_ip: 50,
            window: Duration::minutes(15),
        }
    }
}

/// A new browser session. `token` goes into the cookie, `csrf_token` into
/// the page (or the API response).
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
    pub actor: Actor,
}

/// A random 256-bit token, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn check_password_policy(password: &str) -> StoreResult<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StoreError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(StoreError::Invalid("the password is too long".into()));
    }
    Ok(())
}

/// Hashes a password with argon2id on a blocking thread.
pub async fn hash_password(password: String) -> StoreResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await
    .context("hashing task failed")?
    .map_err(StoreError::Internal)
}

/// Verifies a password on a blocking thread. With no hash (unknown account),
/// a dummy hash is verified so that timing does not reveal which e-mail
/// addresses exist.
async fn verify_password(password: String, hash: Option<String>) -> StoreResult<bool> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    tokio::task::spawn_blocking(move || {
        let dummy = DUMMY.get_or_init(|| {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            Argon2::default()
                .hash_password(b"not a password of anyone", &salt)
                .expect("argon2 hashes a constant")
                .to_string()
        });
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy.clone());
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known
    })
    .await
    .context("verification task failed")
    .map_err(StoreError::Internal)
}

/// Signs a user in: checks the rate limits, the password and the account,
/// records the attempt and the audit event, and opens a session.
pub async fn sign_in(
    db: &Db,
    email: &str,
    password: &str,
    ip: Option<String>,
    user_agent: Option<String>,
    limits: SignInLimits,
    ttl: Duration,
) -> StoreResult<NewSession> {
    let email = email.trim().to_lowercase();
    let window_secs = limits.window.whole_seconds() as f64;
    let counts = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM sign_in_attempts a
               WHERE a.email = $1 AND NOT a.succeeded
                 AND a.at > now() - make_interval(secs => $3)
                 AND a.at > coalesce((SELECT max(at) FROM sign_in_attempts s
                                      WHERE s.email = $1 AND s.succeeded), '-infinity'))
               AS "account!",
             (SELECT count(*) FROM sign_in_attempts a
               WHERE a.ip = $2::text::inet AND NOT a.succeeded
                 AND a.at > now() - make_interval(secs => $3)) AS "ip!""#,
        email,
        ip,
        window_secs
    )
    .fetch_one(db.pool())
    .await?;
    let user = sqlx::query!(
        r#"SELECT user_id AS "user_id!: UserId", practice_id AS "practice_id: PracticeId",
                  role AS "role!: Role", status AS "status!: UserStatus",
                  password_hash, practice_active AS "practice_active!"
           FROM auth_user_by_email($1)"#,
        email
    )
    .fetch_optional(db.pool())
    .await?;
    // Failed attempts on a known account go to its practice's audit trail.
    let failure_scope = match user.as_ref().and_then(|u| u.practice_id) {
        Some(p) => Scope::Practice(p),
        None => Scope::Anonymous,
    };
    let failure = |action| {
        let entry = AuditEntry::anonymous(action, &email, ip.clone());
        match failure_scope {
            Scope::Practice(p) => entry.in_practice(p),
            _ => entry,
        }
    };
    if counts.account >= limits.per_account || counts.ip >= limits.per_ip {
        let mut tx = db.begin(failure_scope).await?;
        audit::record(&mut tx, failure("sign_in.rate_limited")).await?;
        tx.commit().await?;
        return Err(StoreError::RateLimited);
    }
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let password_ok = verify_password(password.to_owned(), hash).await?;
    let user = user.filter(|u| password_ok && u.status == UserStatus::Active && u.practice_active);

    sqlx::query!(
        "INSERT INTO sign_in_attempts (email, ip, succeeded) VALUES ($1, $2::text::inet, $3)",
        email,
        ip,
        user.is_some()
    )
    .execute(db.pool())
    .await?;

    let Some(user) = user else {
        let mut tx = db.begin(failure_scope).await?;
        audit::record(&mut tx, failure("sign_in.failed")).await?;
        tx.commit().await?;
        return Err(StoreError::BadCredentials);
    };

    let scope = match user.practice_id {
        Some(p) => Scope::Practice(p),
        None => Scope::Platform,
    };
    let token = random_token();
    let csrf_token = random_token();
    let expires_at = OffsetDateTime::now_utc() + ttl;
    let session_id = Uuid::new_v4();
    let mut tx = db.begin(scope).await?;
    let profile = sqlx::query!(
        "SELECT email, display_name FROM users WHERE id = $1",
        user.user_id as UserId
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO sessions (id, practice_id, user_id, token_hash, csrf_token, expires_at, ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8)",
        session_id,
        user.practice_id as Option<PracticeId>,
        user.user_id as UserId,
        token_hash(&token),
        csrf_token,
        expires_at,
        ip,
        user_agent
    )
    .execute(&mut *tx)
    .await?;
    let actor = Actor {
        user_id: user.user_id,
        practice_id: user.practice_id,
        role: user.role,
        email: profile.email,
        display_name: profile.display_name,
        credential: Credential::Session {
            id: session_id,
            csrf_token: csrf_token.clone(),
        },
    };
    audit::record(&mut tx, AuditEntry::by(&actor, "sign_in.succeeded", ip)).await?;
    tx.commit().await?;
    Ok(NewSession {
        token,
        csrf_token,
        expires_at,
        actor,
    })
}

/// The actor behind a session cookie, if the session is live.
pub async fn actor_for_session(db: &Db, token: &str) -> StoreResult<Option<Actor>> {
    let row = sqlx::query!(
        r#"SELECT session_id AS "session_id!", user_id AS "user_id!: UserId",
                  practice_id AS "practice_id: PracticeId", role AS "role!: Role",
                  email AS "email!", display_name AS "display_name!", csrf_token AS "csrf_token!"
           FROM auth_session($1)"#,
        token_hash(token)
    )
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| Actor {
        user_id: r.user_id,
        practice_id: r.practice_id,
        role: r.role,
        email: r.email,
        display_name: r.display_name,
        credential: Credential::Session {
            id: r.session_id,
            csrf_token: r.csrf_token,
        },
    }))
}

/// The actor behind an API key, if the key is live.
pub async fn actor_for_api_key(db: &Db, key: &str) -> StoreResult<Option<Actor>> {
    let row = sqlx::query!(
        r#"SELECT key_id AS "key_id!", user_id AS "user_id!: UserId",
                  practice_id AS "practice_id: PracticeId", role AS "role!: Role",
                  email AS "email!", display_name AS "display_name!"
           FROM auth_api_key($1)"#,
        token_hash(key)
    )
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let actor = Actor {
        user_id: r.user_id,
        practice_id: r.practice_id,
        role: r.role,
        email: r.email,
        display_name: r.display_name,
        credential: Credential::ApiKey { id: r.key_id },
    };
    let mut tx = db.begin(actor.scope()).await?;
    sqlx::query!(
        "UPDATE api_keys SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        r.key_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(actor))
}

/// Ends the actor's session (no-op for API keys).
pub async fn sign_out(db: &Db, actor: &Actor, ip: Option<String>) -> StoreResult<()> {
    let Credential::Session { id, .. } = &actor.credential else {
        return Ok(());
    };
    let mut tx = db.begin(actor.scope()).await?;
    sqlx::query!("DELETE FROM sessions WHERE id = $1", id)
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, AuditEntry::by(actor, "sign_out", ip)).await?;
    tx.commit().await?;
    Ok(())
}

/// Changes the actor's own password after checking the current one. Every
/// other session of the user ends.
pub async fn change_password(
    db: &Db,
    actor: &Actor,
    current: &str,
    new: &str,
    ip: Option<String>,
) -> StoreResult<()> {
    check_password_policy(new)?;
    let mut tx = db.begin(actor.scope()).await?;
    let hash = sqlx::query_scalar!(
        "SELECT password_hash FROM users WHERE id = $1",
        actor.user_id as UserId
    )
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    if !verify_password(current.to_owned(), hash).await? {
        return Err(StoreError::Invalid("the current password is wrong".into()));
    }
    let new_hash = hash_password(new.to_owned()).await?;
    sqlx::query!(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        actor.user_id as UserId,
        new_hash
    )
    .execute(&mut *tx)
    .await?;
    let keep = match &actor.credential {
        Credential::Session { id, .. } => Some(*id),
        Credential::ApiKey { .. } => None,
    };
    sqlx::query!(
        "DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2",
        actor.user_id as UserId,
        keep
    )
    .execute(&mut *tx)
    .await?;
    audit::record(&mut tx, AuditEntry::by(actor, "password.changed", ip)).await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes expired sessions and sign-in attempts older than a day.
pub async fn purge_expired(db: &Db) -> StoreResult<u64> {
    let mut tx = db.begin(Scope::Platform).await?;
    let sessions = sqlx::query!("DELETE FROM sessions WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let attempts = sqlx::query!("DELETE FROM sign_in_attempts WHERE at < now() - interval '1 day'")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(sessions + attempts)
}
