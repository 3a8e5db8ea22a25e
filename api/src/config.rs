//! The api's settings: the shared storage settings plus what only the HTTP
//! service needs. Parsed once, from flags and environment, in `main`.

use std::net::SocketAddr;

use clap::Parser;
use shared::config::Settings;

/// pan's HTTP API: users, chunked resumable uploads, files.
///
/// With no settings at all it runs the embedded deployment under ./data
/// (SQLite, local directories, merge workers in this process).
#[derive(Debug, Clone, Parser)]
#[command(name = "api", version, about, long_about = None)]
pub struct ApiConfig {
    /// Address and port to listen on.
    #[arg(long, env = "PAN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Run the merge workers inside this process. Default: true when REDIS_URL
    /// is unset (embedded), false otherwise (run `worker` processes).
    #[arg(long, env = "PAN_EMBEDDED_WORKERS", value_parser = clap::builder::BoolishValueParser::new())]
    pub embedded_workers: Option<bool>,

    /// Never run workers in this process (api nodes of a fleet); same as
    /// --embedded-workers=false.
    #[arg(long)]
    pub no_worker: bool,

    /// Bearer token that `GET /metrics` requires (a secret: give it to the
    /// Prometheus scraper). Unset: `/metrics` answers 401 to everyone.
    #[arg(long, env = "PAN_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Print the OpenAPI spec this server serves, then exit.
    #[arg(long)]
    pub print_openapi: bool,

    /// Storage and upload settings.
    #[command(flatten)]
    pub settings: Settings,

    /// An operator command instead of serving (`api admin --help`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage accounts: create users, set quotas, make invite codes, list,
    /// disable and enable users. Works on both deployments (it uses only
    /// the SQL database).
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
}

impl ApiConfig {
    /// Whether this process runs merge workers.
    pub fn runs_workers(&self) -> bool {
        !self.no_worker && self.embedded_workers.unwrap_or(self.settings.redis_url.is_none())
    }
}
