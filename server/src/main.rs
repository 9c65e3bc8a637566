//! The `gyri-server` binary: settings, logging, run until SIGINT/SIGTERM.

use gyri_server::{Application, Settings};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    // The in-process job worker runs the networks: allocator thresholds and
    // flush-to-zero before any thread pool exists.
    gyri_worker::prepare_compute();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,aws=warn,hyper=warn,s3s=warn"));
    if std::env::var("GYRI_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let settings = Settings::from_args_and_env(std::env::args().skip(1))?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can listen for SIGTERM");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
