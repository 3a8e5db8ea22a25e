//! The roles pan's use cases call, each a trait beside its implementations,
//! one per real system, chosen once at start-up ([`open`]).

pub mod connection;
pub mod limits;
pub mod locks;
pub mod meta;
pub mod objects;
pub mod open;
pub mod queue;
pub mod uploads;

pub(crate) use open::Backends;
pub use open::OpenError;
