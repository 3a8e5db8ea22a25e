//! What every handler can reach: the use cases, the settings and the rate limits.

use std::sync::Arc;

use shared::Services;
use shared::runtime::config::Settings;

use crate::ratelimit::RateLimits;

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Every use case: what the handlers call.
    /// Behind one `Arc`: the route clones the state into every request.
    pub services: Arc<Services>,
    /// The settings in effect.
    pub settings: Arc<Settings>,
    /// `scheme://host[:port]` clients reach this server at, for signed URLs:
    /// `PAN_PUBLIC_URL`, or the loopback address it listens on.
    pub public_base: Arc<str>,
    /// The bearer token `/metrics` takes (`PAN_METRICS_TOKEN`); none: closed.
    pub metrics_token: Option<Arc<str>>,
    /// Origins whose pages may use `/tus/` (`PAN_TUS_CORS_ORIGINS`).
    pub tus_cors_origins: Arc<[String]>,
    /// Chunk bodies being received, capped per process and per user.
    pub chunk_slots: Arc<crate::inflight::BodySlots>,
    /// Single-request uploads received at once, per process and per user.
    pub single_upload_slots: Arc<crate::inflight::BodySlots>,
    /// The signin and signup rate limits of this process.
    pub rate_limits: Arc<RateLimits>,
}
