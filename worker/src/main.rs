use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use shared::runtime::config::Settings;
use shared::{Services, ShareRules};

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
    shared::runtime::process::private_files();
    shared::runtime::crash::arm();
    let config: WorkerConfig = shared::runtime::process::parse_settings();
    shared::runtime::process::init_tracing();
    let services = match Services::open(&config.settings, ShareRules::default()).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::from(BAD_SETTING);
        }
    };
    let services = Arc::new(services);
    let ran =
        worker::run(services.clone(), Arc::new(config.settings), "worker", shared::runtime::process::shutdown_signal())
            .await;
    // Jobs have drained: what they started in the background finishes too.
    services.finish_background(shared::runtime::background::GRACE).await;
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}
