//! Signed download links served by the api itself (when the file store cannot
//! presign): an HMAC-SHA256 over (file, user, expiry) with a key the server
//! makes once and keeps in the database, so every api process agrees on it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::error::{Error, Result};
use std::sync::Arc;

use crate::stores::meta::MetaRepo;

/// Name of the signing key in the secrets table.
const KEY_NAME: &str = "download_link_key";

/// The server's signing key: made once and kept in the database (so every
/// api process agrees on it), then kept in memory (it never changes).
/// Download links, share access tokens and upload challenges are signed
/// with it.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) repo: Arc<dyn MetaRepo>,
    pub(crate) cached: Arc<tokio::sync::OnceCell<Vec<u8>>>,
}

impl SigningKey {
    /// The key, loaded (or made) on first use.
    pub(crate) async fn get(&self) -> Result<Vec<u8>> {
        self.cached
            .get_or_try_init(|| async {
                let hexkey = self.repo.secret(KEY_NAME, &crate::random_hex(32)).await?;
                hex::decode(hexkey).map_err(|e| Error::internal("reading the link signing key", e))
            })
            .await
            .cloned()
    }
}

fn mac(key: &[u8], filehash: &str, user_id: i64, expires: i64) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(format!("pan-download\n{filehash}\n{user_id}\n{expires}").as_bytes());
    m
}

/// The signature of a link, as hex.
pub fn sign(key: &[u8], filehash: &str, user_id: i64, expires: i64) -> String {
    hex::encode(mac(key, filehash, user_id, expires).finalize().into_bytes())
}

/// Why a link was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The signature does not match (tampered or forged).
    Invalid,
    /// The link's time is up.
    Expired,
}

/// Checks a link's signature (in constant time) and expiry.
pub fn verify(key: &[u8], filehash: &str, user_id: i64, expires: i64, sig: &str, now: i64) -> Result<(), LinkError> {
    let sig = hex::decode(sig).map_err(|_| LinkError::Invalid)?;
    mac(key, filehash, user_id, expires).verify_slice(&sig).map_err(|_| LinkError::Invalid)?;
    if now >= expires { Err(LinkError::Expired) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_until_it_expires_and_not_after_tampering() {
        let key = b"k".repeat(32);
        let sig = sign(&key, "ab", 7, 1000);
        assert_eq!(verify(&key, "ab", 7, 1000, &sig, 999), Ok(()));
        assert_eq!(verify(&key, "ab", 7, 1000, &sig, 1000), Err(LinkError::Expired));
        assert_eq!(verify(&key, "ab", 8, 1000, &sig, 999), Err(LinkError::Invalid));
        assert_eq!(verify(&key, "ab", 7, 1001, &sig, 999), Err(LinkError::Invalid));
        assert_eq!(verify(&key, "ac", 7, 1000, &sig, 999), Err(LinkError::Invalid));
        assert_eq!(verify(b"other", "ab", 7, 1000, &sig, 999), Err(LinkError::Invalid));
        assert_eq!(verify(&key, "ab", 7, 1000, "zz", 999), Err(LinkError::Invalid));
    }
}
