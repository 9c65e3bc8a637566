//! Connections: migrations run as the database owner; everything else runs as
//! `gyri_app`, which row-level security binds to the scope of each transaction.

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres, Transaction};
use std::str::FromStr;

use crate::ids::PracticeId;

/// The login role of the application. It owns nothing and cannot bypass RLS.
pub const APP_ROLE: &str = "gyri_app";

/// Whose rows a transaction may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One practice's rows.
    Practice(PracticeId),
    /// Platform administration: practices and their accounts, never patients.
    Platform,
    /// No tenant rows at all (credential lookups go through SECURITY DEFINER
    /// functions, which need no scope).
    Anonymous,
}

/// The application's pool of `gyri_app` connections.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Migrates the database at `owner_url` (run as its owner), then opens the
    /// application pool as [`APP_ROLE`] on the same server and database.
    /// `app_password` is set on the role when given (needed wherever the
    /// server does not trust local connections).
    pub async fn migrate_and_connect(
        owner_url: &str,
        app_password: Option<&str>,
        max_connections: u32,
    ) -> anyhow::Result<Db> {
        let owner_options = PgConnectOptions::from_str(owner_url)
            .context("DATABASE_URL is not a valid PostgreSQL URL")?
            .disable_statement_logging();
        let mut owner = owner_options
            .connect()
            .await
            .context("cannot connect to PostgreSQL as the owner (DATABASE_URL)")?;
        sqlx::migrate!("../migrations")
            .run(&mut owner)
            .await
            .context("database migrations failed")?;
        // The job queue's own schema (`apalis`), with its own migration
        // history; gyri_app may use it, not change it.
        apalis_postgres::PostgresStorage::migrations()
            .run(&mut owner)
            .await
            .context("the job queue's migrations failed")?;
        // Processes starting together (workers, servers) would update the
        // same catalogue rows at once ("tuple concurrently updated"): one at
        // a time, under a transaction-level advisory lock.
        sqlx::raw_sql(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtext('gyri.apalis.grants'));
             GRANT USAGE ON SCHEMA apalis TO gyri_app;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA apalis TO gyri_app;
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA apalis TO gyri_app;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA apalis TO gyri_app;
             COMMIT;",
        )
        .execute(&mut owner)
        .await
        .context("cannot grant the application role the job queue")?;
        if let Some(password) = app_password {
            // Identifiers and literals cannot be bound; quote the literal.
            let literal = password.replace('\'', "''");
            // (standard_conforming_strings is on: only quotes need doubling)
            let sql = format!(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext('gyri.apalis.grants'));
                 ALTER ROLE {APP_ROLE} PASSWORD '{literal}'; COMMIT;"
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut owner)
                .await
                .context("cannot set the application role's password")?;
        }
        drop(owner);

        let mut app_options = owner_options.username(APP_ROLE);
        app_options = match app_password {
            Some(p) => app_options.password(p),
            None => app_options,
        };
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(app_options)
            .await
            .context("cannot connect to PostgreSQL as gyri_app")?;
        let db = Db { pool };
        db.check_role().await?;
        Ok(db)
    }

    /// Refuses to run with a role that could see through row-level security.
    async fn check_role(&self) -> anyhow::Result<()> {
        let row = sqlx::query!(
            r#"SELECT rolsuper AS "superuser!", rolbypassrls AS "bypass!"
               FROM pg_roles WHERE rolname = current_user"#
        )
        .fetch_one(&self.pool)
        .await?;
        anyhow::ensure!(
            !row.superuser && !row.bypass,
            "the application role can bypass row-level security"
        );
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction bound to `scope`, both in code and for row-level
    /// security (`SET LOCAL`, so the setting ends with the transaction).
    pub async fn begin(&self, scope: Scope) -> sqlx::Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        let (practice, platform) = match scope {
            Scope::Practice(p) => (p.0.to_string(), "off"),
            Scope::Platform => (String::new(), "on"),
            Scope::Anonymous => (String::new(), "off"),
        };
        sqlx::query!(
            "SELECT set_config('app.practice_id', $1, true) AS practice, set_config('app.platform', $2, true) AS platform",
            practice,
            platform
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(tx)
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query!("SELECT 1 AS one")
            .fetch_one(&self.pool)
            .await
            .map(|_| ())
    }
}
