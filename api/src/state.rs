//! What every handler can reach: the backends and the settings.

use std::sync::Arc;

use shared::backends::Backends;
use shared::config::Settings;

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
}
