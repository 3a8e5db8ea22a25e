//! What every pan binary does around its work: private files, logging and stopping.

/// Makes every file and directory this process creates private to its user
/// (0600 / 0700): the data directory holds the database, password hashes and
/// everyone's files. Call first thing in `main`.
pub fn private_files() {
    // SAFETY: umask only sets this process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Logs to stderr, filtered by `PAN_LOG` (tracing's syntax; default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAN_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on SIGINT or SIGTERM (`ctrl_c` alone misses the SIGTERM that
/// service managers send).
pub async fn shutdown_signal() {
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
    tracing::info!("stopping: finishing work in flight");
}

/// Parses the command line and environment into `T`. `--help` and
/// `--version` print and exit 0; a bad setting prints one line naming the
/// flag and its environment variable, and exits 2.
pub fn parse_settings<T: clap::Parser>() -> T {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match T::try_parse() {
        Ok(settings) => settings,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => {
            let command = T::command();
            let env = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => {
                    let flag = arg.split_whitespace().next().unwrap_or("").trim_start_matches('-');
                    command
                        .get_arguments()
                        .find(|a| a.get_long() == Some(flag))
                        .and_then(|a| a.get_env())
                        .map(|v| format!(" (environment variable {})", v.to_string_lossy()))
                }
                _ => None,
            };
            let message = e.to_string();
            let first = message.lines().next().unwrap_or("invalid settings").trim_start_matches("error: ");
            eprintln!("{}: {first}{}", command.get_name(), env.unwrap_or_default());
            std::process::exit(2);
        }
    }
}
