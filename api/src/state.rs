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
}
