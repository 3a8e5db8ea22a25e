use std::process::ExitCode;

use clap::Parser;

/// Exit code for a bad setting or an unreachable backend at start-up.
const BAD_SETTING: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let config = api::config::ApiConfig::parse();
    if config.print_openapi {
        println!("{}", api::spec_json());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAN_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let summary = config.settings.redacted_summary();
    let app = match api::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("api: {e}");
            return ExitCode::from(BAD_SETTING);
        }
    };
    let addr = app.local_addr();
    tracing::info!(settings = %summary, "started");
    println!("pan is listening on http://{addr}/ — Swagger UI: http://{addr}/docs");
    match app.serve(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM (`ctrl_c` alone misses SIGTERM from service managers).
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
    tracing::info!("shutting down");
}
