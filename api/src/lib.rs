//! pan's HTTP service: a thin adapter. Each handler parses the request,
//! calls one use case of [`shared::Services`] (held in [`state::AppState`]),
//! and maps the answer to HTTP; no handler can reach a store.
//!
//! Layout:
//! - [`config`]: the api's settings (flags and environment).
//! - [`routes`]: one module per resource (`usr`, `mupload`, `files`,
//!   `folders`, `shares`, `health`), and `tus`: the tus 1.0 front door at `/tus/`, and `uplinks`: upload links (a file drop),
//!   and `web`: the web page (assets embedded in the binary) served at `/`,
//!   `/static/…` and, for browsers, at GET `/usr/signup`, `/usr/signin`, `/file/upload`.
//! - [`dav`]: WebDAV in the Nextcloud dialect at `/remote.php/dav/files/<username>/`
//!   (and `/remote.php/webdav/`), outside the OpenAPI document.
//! - [`admin`]: `api admin …`, the operator's account commands and the audit.
//! - [`state`]: what every handler can reach.
//! - [`access_log`]: one log line per request, without query strings.
//! - [`auth`]: the bearer-token security scheme.
//! - [`inflight`]: caps on bodies received at once (chunks, single uploads), per process and per user.
//! - [`connections`]: the cap on connections one process holds.
//! - [`head_timeout`]: the bound on how long a request head may take to arrive.
//! - [`ratelimit`]: rate limits on signin and signup, and who the client is.
//! - [`error`]: the one mapping from domain errors to `{code, message}`.
//! - [`limits`]: request body limits.
//! - [`text`]: strict JSON strings for request bodies.
//!
//! [`build`] opens the use cases (and so the stores) and binds the port; [`App::serve`] runs until
//! the shutdown future resolves. `main` and the tests drive it the same way.

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod config;
pub mod connections;
pub mod dav;
pub mod error;
pub mod head_timeout;
pub mod inflight;
pub mod limits;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod text;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt, Route, Server};
use poem_openapi::OpenApiService;
use shared::stores::OpenError;
use shared::{Services, ShareRules};

use crate::config::ApiConfig;
use crate::connections::ConnectionLimit;
use crate::head_timeout::HeadTimeoutAcceptor;
use crate::ratelimit::RateLimits;
use crate::state::AppState;

/// The OpenAPI service: every operation, documented.
pub fn openapi() -> OpenApiService<routes::Api, ()> {
    OpenApiService::new(routes::api(), "pan", env!("CARGO_PKG_VERSION")).description(format!(
        "A self-hosted cloud disk: chunked, resumable, verified, deduplicated uploads. \
         Errors are JSON `{{code, message}}`. Authenticate with `Authorization: Bearer <token>` from `/usr/signin`.\n\n\
         ## Error codes\n\n{}",
        shared::ErrorCode::markdown_table()
    ))
}

/// The spec as served at `/openapi.json` (and checked in as `openapi/openapi.json`).
pub fn spec_json() -> String {
    error::with_error_code_schema(&openapi().spec())
}

/// Every route: the API and the web page, Swagger UI at `/docs`, the spec at
/// `/openapi.json`; every error as JSON `{code, message}`, 405s with `Allow`.
pub fn endpoint(state: AppState) -> impl Endpoint {
    let api = openapi();
    let docs = routes::web::with_docs_headers(api.swagger_ui(), &api.swagger_ui_html());
    let spec_text = spec_json();
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder().content_type("application/json").body(spec_text.clone())
    });
    let routes = Route::new()
        .nest("/", routes::web::with_web_app(api))
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .nest(dav::MOUNT, dav::endpoint())
        // tus has a protocol of its own, outside the spec (see the README).
        .nest("/tus", routes::tus::endpoint())
        .data(state);
    let routes = access_log::access_log(routes::mark_head(routes)).catch_all_error(error::json_errors);
    error::retry_after_header(error::allow_header(routes))
}

/// A built server: backends open, port bound, not yet serving.
pub struct App {
    acceptor: ConnectionLimit<HeadTimeoutAcceptor<TcpAcceptor>>,
    state: AppState,
    workers: bool,
    local_addr: SocketAddr,
}

/// Opens the backends the config names and binds the listening port.
pub async fn build(config: ApiConfig) -> Result<App, OpenError> {
    let share_rules = ShareRules { default_days: config.share_days, zip_max_entries: config.zip_max_entries as usize };
    let services = Services::open(&config.settings, share_rules).await?;
    let acceptor = TcpListener::bind(config.listen.to_string()).into_acceptor().await.map_err(|e| OpenError {
        setting: "PAN_LISTEN",
        message: format!("cannot listen on {}: {e}", config.listen),
    })?;
    let local_addr = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(config.listen);
    let public_base = public_base(config.settings.public_url.as_deref(), local_addr)?;
    // Each chunk in flight holds at most two pieces of the staging store.
    let chunk_capacity = (config.chunk_memory.0.unwrap_or(u64::MAX) / (2 * services.staging_part_size() as u64))
        .clamp(4, 1 << 20) as usize;
    let workers = config.runs_workers();
    let acceptor = HeadTimeoutAcceptor::new(acceptor, Duration::from_secs(config.header_timeout));
    let acceptor = ConnectionLimit::new(
        acceptor,
        config.max_connections as usize,
        config.max_connections_per_address as usize,
        config.trusted_proxies.clone().unwrap_or_default(),
    );
    let rate_limits = Arc::new(RateLimits::new(
        services.rate_limiter(config.rate_settings()),
        config.trusted_proxies.clone().unwrap_or_default(),
    ));
    let chunk_slots = inflight::BodySlots::chunks(chunk_capacity, services.user_slots("chunks", config.user_chunks));
    let single_upload_slots = inflight::BodySlots::single_uploads(
        limits::SINGLE_UPLOADS_AT_ONCE,
        services.user_slots("uploads", limits::SINGLE_UPLOADS_PER_USER),
    );
    let state = AppState {
        services: Arc::new(services),
        settings: Arc::new(config.settings),
        public_base: public_base.into(),
        metrics_token: config.metrics_token.map(Into::into),
        tus_cors_origins: config.tus_cors_origins.into(),
        chunk_slots,
        single_upload_slots,
        rate_limits,
    };
    Ok(App { acceptor, state, workers, local_addr })
}

/// Where clients reach this server: `PAN_PUBLIC_URL` (an http or https URL),
/// or, only when listening on loopback, the address itself. A request's
/// `Host` header is never trusted for this: a link built from it could point
/// anywhere.
fn public_base(public_url: Option<&str>, local_addr: SocketAddr) -> Result<String, OpenError> {
    let bad = |message: String| OpenError { setting: "PAN_PUBLIC_URL", message };
    match public_url {
        Some(url) => {
            let parsed = url::Url::parse(url).map_err(|e| bad(format!("{url:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(bad(format!("{url:?} must be an http:// or https:// URL with a host")));
            }
            Ok(url.trim_end_matches('/').to_owned())
        }
        None if local_addr.ip().is_loopback() => Ok(format!("http://{local_addr}")),
        None => Err(bad(format!(
            "required when listening beyond loopback ({local_addr}): the address clients reach pan at, e.g. https://pan.example.com"
        ))),
    }
}

impl App {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then drains requests (and merges
    /// in flight, when this process runs workers), then waits for the
    /// background tasks they started (bounded by
    /// [`shared::runtime::background::GRACE`]).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let services = self.state.services.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // The embedded workers run on a task of their own, joined below
        // before the background tasks are drained: shutdown waits for it
        // (and it for every job it started, see `worker::run`).
        let workers = self.workers.then(|| {
            let services = self.state.services.clone();
            let settings = self.state.settings.clone();
            let mut rx = stop_rx.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = worker::run(services, settings, "embedded", stop).await {
                    tracing::error!(error = %e, "embedded workers stopped");
                }
            })
        });
        // A connection that sends and receives nothing for two minutes (a
        // stalled client, a half-open socket) is closed; one whose request
        // head trickles in is closed after PAN_HEADER_TIMEOUT (the acceptor).
        let server =
            Server::new_with_acceptor(self.acceptor).idle_timeout(Duration::from_secs(120)).run_with_graceful_shutdown(
                endpoint(self.state),
                async move {
                    shutdown.await;
                    let _ = stop_tx.send(true);
                },
                Some(Duration::from_secs(30)),
            );
        let result = server.await;
        if let Some(w) = workers {
            let _ = w.await;
        }
        services.finish_background(shared::runtime::background::GRACE).await;
        result
    }
}
