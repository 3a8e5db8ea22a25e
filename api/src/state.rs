//! What every handler can reach: the backends, the settings and the rate limits.

use std::sync::Arc;

use shared::runtime::config::Settings;
use shared::stores::Backends;

use crate::ratelimit::RateLimits;

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Every storage backend.
    pub backends: Backends,
    /// The settings in effect.
    pub settings: Arc<Settings>,
    /// `scheme://host[:port]` clients reach this server at, for signed URLs:
    /// `PAN_PUBLIC_URL`, or the loopback address it listens on.
    pub public_base: Arc<str>,
    /// The bearer token `/metrics` takes (`PAN_METRICS_TOKEN`); none: closed.
    pub metrics_token: Option<Arc<str>>,
    /// Chunk bodies being received, capped per process and per user.
    pub chunk_slots: Arc<crate::inflight::ChunkSlots>,
    /// The signin and signup rate limits of this process.
    pub rate_limits: Arc<RateLimits>,
    /// Days a new share link works by default (`PAN_SHARE_DAYS`; 0: forever).
    pub share_days: u64,
    /// Most entries in one zip of a shared folder (`PAN_ZIP_MAX_ENTRIES`).
    pub zip_max_entries: usize,
}
