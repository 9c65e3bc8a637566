//! Tenant isolation in the database itself: row-level security binds the
//! application role, and the audit trail is append-only.

use crate::helpers::spawn_app;

#[tokio::test]
async fn without_a_scope_the_application_role_sees_no_tenant_rows() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let as_app = app.as_app_role().await;
    let count = |sql: &'static str| {
        let pool = as_app.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(total, 7, "the owner sees the demo users");
    for table in [
        "practices",
        "users",
        "sessions",
        "invitations",
        "api_keys",
        "audit_events",
    ] {
        let sql: &'static str = Box::leak(format!("SELECT count(*) FROM {table}").into_boxed_str());
        assert_eq!(count(sql).await, 0, "{table} without a scope");
    }

    // With a practice scope, exactly that practice's rows.
    let north: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM practices WHERE name = 'Demo Clinic North'")
            .fetch_one(&owner)
            .await
            .unwrap();
    let mut tx = as_app.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.practice_id', $1, true)")
        .bind(north.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let practices: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM practices")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(practices, vec![north]);
    let other: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE practice_id IS DISTINCT FROM $1")
            .bind(north)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(other, 0, "no other practice's users, nor platform admins");
    // Writing into another practice is refused by the policy.
    let south: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM practices WHERE name = 'Demo Clinic South'")
            .fetch_one(&owner)
            .await
            .unwrap();
    let err = sqlx::query("INSERT INTO users (id, practice_id, email, display_name, role) VALUES ($1, $2, 'x@y.example', 'X', 'technician')")
        .bind(uuid::Uuid::new_v4())
        .bind(south)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // The application role cannot switch row-level security off.
    let err = sqlx::query("SET row_security = off; SELECT count(*) FROM users")
        .execute(&as_app)
        .await;
    let still_hidden: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&as_app)
        .await
        .unwrap();
    assert!(err.is_err() || still_hidden == 0);
    let bypass: bool = sqlx::query_scalar(
        "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&as_app)
    .await
    .unwrap();
    assert!(!bypass);
}

#[tokio::test]
async fn the_audit_trail_cannot_be_rewritten() {
    let app = spawn_app().await;
    app.login("admin@north.gyri.test").await;
    let as_app = app.as_app_role().await;
    let err = sqlx::query("DELETE FROM audit_events")
        .execute(&as_app)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    let err = sqlx::query("UPDATE audit_events SET action = 'nothing'")
        .execute(&as_app)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    // Not even the owner.
    let owner = app.owner().await;
    let err = sqlx::query("DELETE FROM audit_events")
        .execute(&owner)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(n > 0);
}
