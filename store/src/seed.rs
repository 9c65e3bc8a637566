//! First data: the platform admin that bootstraps a production database, and
//! the demo practices of the embedded edition.

use crate::audit::{self, AuditEntry};
use crate::auth::{check_password_policy, hash_password};
use crate::db::{Db, Scope};
use crate::error::StoreResult;
use crate::ids::{PracticeId, UserId};
use crate::model::{Programme, Role};

/// The demo accounts: (e-mail, display name, role, practice index).
pub const DEMO_PLATFORM_ADMIN: &str = "admin@gyri.test";
pub const DEMO_PRACTICES: [(&str, &str, Programme); 2] = [
    ("Demo Clinic North", "north.gyri.test", Programme::Ms),
    ("Demo Clinic South", "south.gyri.test", Programme::Dementia),
];

/// Every demo sign-in as (e-mail, role, practice name).
pub fn demo_accounts() -> Vec<(String, Role, Option<&'static str>)> {
    let mut accounts = vec![(DEMO_PLATFORM_ADMIN.to_owned(), Role::PlatformAdmin, None)];
    for (practice, domain, _) in DEMO_PRACTICES {
        for (local, role) in [
            ("admin", Role::PracticeAdmin),
            ("neuro", Role::Neurologist),
            ("tech", Role::Technician),
        ] {
            accounts.push((format!("{local}@{domain}"), role, Some(practice)));
        }
    }
    accounts
}

async fn insert_user(
    tx: &mut sqlx::PgConnection,
    practice: Option<PracticeId>,
    email: &str,
    name: &str,
    role: Role,
    hash: &str,
) -> StoreResult<UserId> {
    let id = UserId::new();
    sqlx::query!(
        "INSERT INTO users (id, practice_id, email, display_name, role, status, password_hash)
         VALUES ($1, $2, $3, $4, $5, 'active', $6)",
        id as UserId,
        practice as Option<PracticeId>,
        email,
        name,
        role as Role,
        hash
    )
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// Creates the first platform admin if the database has none. Returns
/// whether it was created.
pub async fn bootstrap_admin(db: &Db, email: &str, password: &str) -> StoreResult<bool> {
    check_password_policy(password)?;
    let mut tx = db.begin(Scope::Platform).await?;
    sqlx::query!("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE role = 'platform_admin') AS "e!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Ok(false);
    }
    let hash = hash_password(password.to_owned()).await?;
    let email = email.trim().to_lowercase();
    let id = insert_user(
        &mut tx,
        None,
        &email,
        "Platform admin",
        Role::PlatformAdmin,
        &hash,
    )
    .await?;
    let mut entry =
        AuditEntry::anonymous("platform_admin.bootstrapped", &email, None).target("user", id.0);
    entry.actor_user_id = Some(id);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(true)
}

/// Seeds the demo practices and accounts, once. Returns whether it seeded.
pub async fn demo(db: &Db, password: &str) -> StoreResult<bool> {
    check_password_policy(password)?;
    let mut tx = db.begin(Scope::Platform).await?;
    sqlx::query!("LOCK TABLE practices IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let seeded = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM practices WHERE name = $1) AS "e!""#,
        DEMO_PRACTICES[0].0
    )
    .fetch_one(&mut *tx)
    .await?;
    if seeded {
        return Ok(false);
    }
    let hash = hash_password(password.to_owned()).await?;
    let admin_exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1) AS "e!""#,
        DEMO_PLATFORM_ADMIN
    )
    .fetch_one(&mut *tx)
    .await?;
    if !admin_exists {
        insert_user(
            &mut tx,
            None,
            DEMO_PLATFORM_ADMIN,
            "Demo Platform Admin",
            Role::PlatformAdmin,
            &hash,
        )
        .await?;
    }
    for (name, domain, programme) in DEMO_PRACTICES {
        let practice = PracticeId::new();
        sqlx::query!(
            "INSERT INTO practices (id, name, programme, follow_up_months) VALUES ($1, $2, $3, $4)",
            practice as PracticeId,
            name,
            programme as Programme,
            programme.default_follow_up_months()
        )
        .execute(&mut *tx)
        .await?;
        let short = name.trim_start_matches("Demo Clinic ");
        for (local, role, title) in [
            ("admin", Role::PracticeAdmin, "Practice Admin"),
            ("neuro", Role::Neurologist, "Neurologist"),
            ("tech", Role::Technician, "Technician"),
        ] {
            let email = format!("{local}@{domain}");
            let display = format!("{short} {title}");
            insert_user(&mut tx, Some(practice), &email, &display, role, &hash).await?;
        }
        audit::record(
            &mut tx,
            AuditEntry::anonymous("demo.seeded", DEMO_PLATFORM_ADMIN, None)
                .in_practice(practice)
                .target("practice", practice.0),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
