//! What a pan process is made of, below every layer: its settings, its
//! crash points (test builds), its metrics, its logging and signals, and
//! the tracker its background tasks belong to.

pub mod background;
pub mod config;
pub mod crash;
pub mod metrics;
pub mod process;
