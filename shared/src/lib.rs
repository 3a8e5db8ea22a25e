//! pan's core, shared by the `api` and `worker` binaries.
//!
//! Nothing here knows about HTTP: the api crate maps [`Error`] to statuses.
//!
//! Layout:
//! - [`config`]: the typed settings, read once from flags and environment.
//! - [`domain`]: validated newtypes parsed at the edge (`UserName`, `Sha1Hex`,
//!   `UploadId`, `FileName`) and the chunk geometry of an upload.
//! - [`error`]: the domain error every backend translates its failures into.
//! - [`db`]: the metadata repository (users, tokens, files, user files) on
//!   SQLite or MySQL.
//! - [`uploads`]: upload sessions and their chunk state, in SQL or in Redis.
//! - [`objects`]: the byte stores (staging, files, backup) behind one
//!   `ByteStore` trait, in a local directory or an S3 bucket.
//! - [`jobs`]: job payloads and the queue they go through (apalis on SQLite
//!   or Redis).
//! - [`hashing`]: SHA-1 and SHA-256 of content in one pass.
//! - [`audit`]: the consistency audit of the database against the stores.
//! - [`backends`]: opens every backend from the settings, once, at start-up.
//! - [`service`], [`files`], [`links`]: the upload and file use cases.
//! - [`metrics`], [`process`]: counters for `/metrics`; logging and signals.

pub mod domain;
pub mod files;
pub mod runtime;
pub mod shares;
pub mod stores;
pub mod tree;
pub mod upload;

pub use domain::error::{Error, Result};

/// Seconds since the Unix epoch: how every time is stored and returned.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `n` random bytes from the OS generator, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
