use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use shared::backends::Backends;
use shared::config::Settings;

/// pan's merge worker: assembles, verifies and stores completed uploads.
/// Run as many as you like, on any machines that share the database, Redis
/// and stores.
#[derive(Debug, Parser)]
#[command(name = "worker", version, about, long_about = None)]
struct WorkerConfig {
    /// Storage and upload settings (the same as the api's).
    #[command(flatten)]
    settings: Settings,
}

/// Exit code for a bad setting or an unreachable backend at start-up.
const BAD_SETTING: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let config = WorkerConfig::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAN_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let backends = match Backends::open(&config.settings).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::from(BAD_SETTING);
        }
    };
    match worker::run(backends, Arc::new(config.settings), "worker", shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM: stop fetching, let merges in flight finish.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("stopping: finishing merges in flight");
}
