//! The `gyri-server` binary: settings, logging, run until SIGINT/SIGTERM.

use gyri_server::{Application, Settings};

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
    gyri_worker::init_logging("info,sqlx=warn,aws=warn,hyper=warn,s3s=warn");
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
