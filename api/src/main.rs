use std::process::ExitCode;

/// Exit code for a bad setting or an unreachable backend at start-up.
const BAD_SETTING: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    shared::runtime::process::private_files();
    shared::runtime::crash::arm();
    let mut config: api::config::ApiConfig = shared::runtime::process::parse_settings();
    let exposed = config.exposed();
    config.settings.set_exposed(exposed);
    if config.print_openapi {
        println!("{}", api::spec_json());
        return ExitCode::SUCCESS;
    }
    if config.print_error_codes {
        print!("{}", shared::ErrorCode::markdown_table());
        return ExitCode::SUCCESS;
    }
    if let Some(api::config::Command::Admin(command)) = config.command {
        return match api::admin::run(&config.settings, command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("api admin: {e}");
                ExitCode::FAILURE
            }
        };
    }
    shared::runtime::process::init_tracing();
    let summary = config.settings.redacted_summary();
    let defaults = config.settings.defaults_in_force();
    let plain_basic =
        config.exposed() && !config.settings.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let app = match api::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("api: {e}");
            return ExitCode::from(BAD_SETTING);
        }
    };
    let addr = app.local_addr();
    tracing::info!(settings = %summary, defaults = %defaults, "started");
    println!("pan accounts: {defaults}");
    if plain_basic {
        // WebDAV clients send the username and an app password on every request.
        tracing::warn!(
            "WebDAV's HTTP Basic would travel over plain HTTP beyond loopback: set an https PAN_PUBLIC_URL behind a TLS proxy"
        );
        eprintln!(
            "pan: warning: WebDAV (/remote.php/dav) sends app passwords with HTTP Basic; beyond loopback serve it over HTTPS (an https PAN_PUBLIC_URL behind a TLS proxy)"
        );
    }
    println!("pan is listening on http://{addr}/ — Swagger UI: http://{addr}/docs");
    match app.serve(shared::runtime::process::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api: {e:#}");
            ExitCode::FAILURE
        }
    }
}
