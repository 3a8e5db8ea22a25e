//! The api's settings: the shared storage settings plus what only the HTTP
//! service needs. Parsed once, from flags and environment, in `main`.

use std::net::SocketAddr;

use clap::Parser;
use shared::runtime::config::Settings;

use crate::ratelimit::TrustedProxies;
use shared::accounts::limits::RateSettings;

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

    /// Memory this process may hold for chunk bodies in flight (bytes, with
    /// K, M, G suffixes). Each chunk being received holds at most two pieces
    /// (1 MiB each on local staging, 5 MiB on S3), so this caps how many are
    /// received at once; more answer 429 `TOO_MANY_CHUNKS` with Retry-After.
    #[arg(long, env = "PAN_CHUNK_MEMORY", default_value = "256M")]
    pub chunk_memory: shared::runtime::config::Limit,

    /// Chunk bodies one user may send at once (the web page sends up to 16).
    #[arg(long, env = "PAN_USER_CHUNKS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub user_chunks: u32,

    /// Most connections this process holds at once (each costs a file
    /// descriptor: keep it under `ulimit -n`). Past it, new connections wait
    /// in the kernel's backlog until one closes.
    #[arg(long, env = "PAN_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Most connections one client address holds at once (trusted proxies
    /// excepted); more are closed at once, so one host cannot take every
    /// connection of the process.
    #[arg(long, env = "PAN_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_address: u32,

    /// Bearer token that `GET /metrics` requires (a secret: give it to the
    /// Prometheus scraper). Unset: `/metrics` answers 401 to everyone.
    #[arg(long, env = "PAN_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Signin attempts one client address may make per minute, right or
    /// wrong: a burst of that many, then one more every 60/N seconds; past
    /// it, 429 with Retry-After. IPv6 clients count per /64. 0: no limit.
    #[arg(long, env = "PAN_SIGNIN_RATE", default_value_t = 30)]
    pub signin_rate: u32,

    /// Signin attempts per minute for one username from one client address
    /// (never per username alone: that would let anyone lock anyone out).
    /// 0: no limit.
    #[arg(long, env = "PAN_SIGNIN_USER_RATE", default_value_t = 10)]
    pub signin_user_rate: u32,

    /// Signups one client address may make per minute (a burst of that many,
    /// then one every 60/N seconds). 0: no limit.
    #[arg(long, env = "PAN_SIGNUP_RATE", default_value_t = 10)]
    pub signup_rate: u32,

    /// Password attempts on share links per minute, counted per client
    /// address and, apart, per link (so many addresses cannot guess one
    /// link's password faster); past it, 429 with Retry-After. 0: no limit.
    #[arg(long, env = "PAN_SHARE_PASSWORD_RATE", default_value_t = 10)]
    pub share_password_rate: u32,

    /// Wrong app passwords (WebDAV, tus) per minute for one username from
    /// one client address, and ten times as many per address; right ones
    /// never count. Past it, 429 with Retry-After. 0: no limit.
    #[arg(long, env = "PAN_APP_PASSWORD_RATE", default_value_t = 10)]
    pub app_password_rate: u32,

    /// Web origins whose pages may use `/tus/` (Uppy on a site of yours),
    /// comma-separated, exactly as a browser sends them
    /// (`https://uploads.example.com`); their requests get CORS headers
    /// naming that origin, never `*` and never credentials. Unset: no page
    /// of another origin may (pan's own `/u/<link>` page is same-origin).
    #[arg(long, env = "PAN_TUS_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub tus_cors_origins: Vec<String>,

    /// Days a new share link works when its maker gives no expiry; 0: such
    /// links never expire.
    #[arg(long, env = "PAN_SHARE_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=36_500))]
    pub share_days: u64,

    /// Most files and folders one zip download of a shared folder may hold;
    /// bigger folders answer 413 `ZIP_TOO_MANY_ENTRIES`.
    #[arg(long, env = "PAN_ZIP_MAX_ENTRIES", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub zip_max_entries: u64,

    /// Reverse proxies whose X-Forwarded-For names the client, for the rate
    /// limits: comma-separated IPs or CIDR blocks (e.g. 127.0.0.1,10.0.0.0/8).
    /// The client is the right-most address in that header that is not one of
    /// them. Default: none (the TCP peer is the client; the header is ignored).
    #[arg(long, env = "PAN_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<TrustedProxies>,

    /// Seconds a request's head (request line and headers) may take to
    /// arrive, counted from the connection's start or, on a kept-alive
    /// connection, from the first byte of each later request; then the
    /// connection is closed. Bodies and idle time between requests are not
    /// counted (the idle limit is two minutes).
    #[arg(long, env = "PAN_HEADER_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,

    /// Print the OpenAPI spec this server serves, then exit.
    #[arg(long)]
    pub print_openapi: bool,

    /// Print the table of error codes (as in the README), then exit.
    #[arg(long)]
    pub print_error_codes: bool,

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
    /// Whether strangers may reach this server: it listens beyond loopback,
    /// its public URL names a host that is not loopback, or it sits behind
    /// proxies. Then signup and quota defaults are the safe ones.
    pub fn exposed(&self) -> bool {
        let public_beyond_loopback = self.settings.public_url.as_deref().is_some_and(|u| {
            match url::Url::parse(u).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
                Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
                Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
                None => true,
            }
        });
        !self.listen.ip().is_loopback() || public_beyond_loopback || self.trusted_proxies.is_some()
    }

    /// The rate-limit settings.
    pub fn rate_settings(&self) -> RateSettings {
        RateSettings {
            signin: self.signin_rate,
            signin_user: self.signin_user_rate,
            signup: self.signup_rate,
            share_password: self.share_password_rate,
            app_password: self.app_password_rate,
        }
    }

    /// Whether this process runs merge workers.
    pub fn runs_workers(&self) -> bool {
        !self.no_worker && self.embedded_workers.unwrap_or(self.settings.redis_url.is_none())
    }
}

/// A web origin as browsers send it: `scheme://host[:port]`, nothing after.
fn parse_origin(raw: &str) -> Result<String, String> {
    let origin = raw.trim();
    let url = url::Url::parse(origin).map_err(|e| format!("{origin:?} is not an origin: {e}"))?;
    let exact = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || exact != origin {
        return Err(format!("{origin:?} is not an origin; write it as {exact:?} (scheme, host and port only)"));
    }
    Ok(exact)
}
