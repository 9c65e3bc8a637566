//! Building and running the application: storage (embedded or external),
//! migrations, first data, the router.

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use gyri_app::ssr::ServerContext;
use gyri_store::objects::{ObjectStore, ObjectStoreConfig};
use gyri_store::Db;
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::embedded::postgres::EmbeddedPostgres;
use crate::embedded::s3::EmbeddedS3;
use crate::state::AppState;

/// A built application, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    embedded_pg: Option<EmbeddedPostgres>,
    embedded_s3: Option<EmbeddedS3>,
    housekeeping: Option<tokio::task::JoinHandle<()>>,
    /// The in-process job worker and the sender that stops it.
    jobs: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let mut embedded_pg = None;
        let db_url = match &settings.database_url {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(&settings.data_dir).with_context(|| {
                    format!(
                        "cannot create the data directory {}",
                        settings.data_dir.display()
                    )
                })?;
                let pg = EmbeddedPostgres::start(&settings.data_dir).await?;
                let url = pg.url("gyri");
                embedded_pg = Some(pg);
                url
            }
        };
        match Self::build_with_database(&settings, &db_url).await {
            Ok((state, embedded_s3)) => {
                let housekeeping = settings.embedded_worker.then(|| {
                    tokio::spawn(gyri_worker::housekeeping(
                        state.db.clone(),
                        state.objects.clone(),
                    ))
                });
                let jobs = match settings.embedded_worker {
                    false => None,
                    true => {
                        let worker = gyri_worker::jobs::WorkerSettings::from_env()?;
                        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                        let task = tokio::spawn(gyri_worker::jobs::run(
                            state.db.clone(),
                            state.objects.clone(),
                            worker,
                            async move {
                                let _ = stopped.await;
                            },
                        ));
                        Some((stop, task))
                    }
                };
                let router = router(state.clone(), &settings);
                let listener = TcpListener::bind(settings.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", settings.listen))?;
                Ok(Application {
                    listener,
                    router,
                    state,
                    embedded_pg,
                    embedded_s3,
                    housekeeping,
                    jobs,
                })
            }
            Err(e) => {
                if let Some(pg) = embedded_pg {
                    let _ = pg.stop().await;
                }
                Err(e)
            }
        }
    }

    async fn build_with_database(
        settings: &Settings,
        db_url: &str,
    ) -> anyhow::Result<(AppState, Option<EmbeddedS3>)> {
        let db = Db::migrate_and_connect(db_url, settings.app_db_password.as_deref(), 10).await?;

        let mut embedded_s3 = None;
        let objects = match &settings.s3 {
            Some(s3) => {
                let store = ObjectStore::connect(&ObjectStoreConfig {
                    endpoint: s3.endpoint.clone(),
                    bucket: s3.bucket.clone(),
                    region: s3.region.clone(),
                    credentials: None,
                })
                .await?;
                if let Err(e) = store.ping().await {
                    tracing::warn!(error = %e, "the object store is not reachable yet");
                }
                store
            }
            None => {
                std::fs::create_dir_all(&settings.data_dir)?;
                let s3 = EmbeddedS3::start(&settings.data_dir).await?;
                let store = ObjectStore::connect(&s3.config).await?;
                store.ensure_bucket().await?;
                embedded_s3 = Some(s3);
                store
            }
        };

        if let Some((email, password)) = &settings.bootstrap_admin {
            if gyri_store::seed::bootstrap_admin(&db, email, password).await? {
                tracing::info!(%email, "created the first platform admin");
            }
        }
        if settings.demo {
            seed_demo(&db, settings).await?;
        }

        let context = ServerContext {
            db: db.clone(),
            session_ttl: settings.session_ttl,
            cookie_secure: settings.cookie_secure,
            limits: Default::default(),
        };
        let leptos = LeptosOptions::builder()
            .output_name("gyri")
            .site_root(settings.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(settings.listen)
            .build();
        let state = AppState {
            db,
            objects,
            context,
            leptos,
            metrics: Arc::default(),
            upload_limits: settings.upload_limits,
        };
        Ok((state, embedded_s3))
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    pub fn objects(&self) -> &ObjectStore {
        &self.state.objects
    }

    /// Serves until `shutdown` completes, then stops everything cleanly.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "Gyri is serving");
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        if let Some(task) = self.housekeeping {
            task.abort();
        }
        if let Some((stop, task)) = self.jobs {
            // Running jobs finish (or, past the wait, are taken over by the
            // next start: their heartbeat stops).
            let _ = stop.send(());
            match tokio::time::timeout(std::time::Duration::from_secs(120), task).await {
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "the job worker failed"),
                Err(_) => tracing::warn!("the job worker did not stop in time"),
                _ => {}
            }
        }
        self.state.db.pool().close().await;
        if let Some(s3) = self.embedded_s3 {
            s3.stop().await;
        }
        if let Some(pg) = self.embedded_pg {
            pg.stop().await?;
        }
        served.context("the HTTP server failed")
    }
}

fn router(state: AppState, settings: &Settings) -> Router {
    let routes = generate_route_list(gyri_app::App);
    let context = state.context.clone();
    let leptos = state.leptos.clone();
    Router::new()
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
        .route("/metrics", get(crate::metrics::render))
        .nest("/api/v1", crate::api::router())
        .nest_service("/pkg", ServeDir::new(settings.site_root.join("pkg")))
        .leptos_routes_with_context(
            &state,
            routes,
            move || leptos::prelude::provide_context(context.clone()),
            move || gyri_app::shell(leptos.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            gyri_app::shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Seeds the demo practices once and prints every demo sign-in. The
/// password is GYRI_DEMO_PASSWORD, or one generated at the first start and
/// kept in `<data dir>/demo-password` (mode 0600).
async fn seed_demo(db: &Db, settings: &Settings) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let file = settings.data_dir.join("demo-password");
    let password = match &settings.demo_password {
        Some(p) => p.clone(),
        None => match std::fs::read_to_string(&file) {
            Ok(p) if !p.trim().is_empty() => p.trim().to_owned(),
            _ => {
                let p = gyri_store::auth::random_token()[..20].to_owned();
                std::fs::create_dir_all(&settings.data_dir)?;
                std::fs::write(&file, &p)?;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                p
            }
        },
    };
    let seeded = gyri_store::seed::demo(db, &password).await?;
    let mut out = String::from("\n  Gyri demo sign-ins");
    out.push_str(if seeded {
        " (just created)"
    } else {
        " (created at an earlier start)"
    });
    out.push_str(&format!(":\n  password for all: {password}\n"));
    for (email, role, practice) in gyri_store::seed::demo_accounts() {
        out.push_str(&format!(
            "    {email:<24} {:<15} {}\n",
            role.label(),
            practice.unwrap_or("(platform)")
        ));
    }
    out.push_str(&format!("  open http://{}\n", settings.listen));
    println!("{out}");
    Ok(())
}
