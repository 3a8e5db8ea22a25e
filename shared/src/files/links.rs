//! The server's keys, one set per purpose, and the signed download links
//! served by the api itself (when the file store cannot presign).
//!
//! - [`Keys`]: the rotating signing keys of signed download URLs
//!   ([`Purpose::Url`]) and share access tokens ([`Purpose::Share`]). They
//!   live in the SQL database, so every api process shares them. The newest
//!   key of a purpose signs, and each artefact carries its key's id (`kid`).
//!   A fresh key replaces the newest every `PAN_KEY_DAYS`, or at once on
//!   `api admin rotate-keys`; a replaced key still verifies what it signed
//!   until the longest lifetime of its purpose has passed since it was
//!   replaced ([`Purpose::longest_lifetime`]), then it is dropped. An unknown
//!   or dropped key id verifies nothing, exactly like a bad signature.
//! - [`ChallengeSeed`]: the key that seeds proof-of-possession challenge
//!   ranges. It is never rotated: the ranges must stay the same for a content
//!   for ever, or someone who knows part of a file could wait for a rotation
//!   to draw new ranges. It signs nothing that leaves the server.
//! - [`sign`] / [`verify`]: a link is an HMAC-SHA256 over (entry, user,
//!   expiry) with the [`Purpose::Url`] key its `kid` names.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::error::{Error, Result};
use crate::stores::meta::{MetaRepo, StoredKey};

/// Name of the challenge-range seed in the secrets table (it was the one
/// key of every purpose before keys were split and rotated; it became key
/// `0` of each purpose then, see [`LEGACY_KID`]).
const SEED_NAME: &str = "download_link_key";

/// The key id of artefacts made before keys had ids: the old single key,
/// kept (until it is dropped like any replaced key) so they work until they
/// expire.
pub const LEGACY_KID: &str = "0";

/// The longest a download URL can be asked to live, in seconds (7 days).
pub const MAX_URL_TTL: i64 = 604_800;

/// How long an unlocked share link stays open to its holder, in seconds.
pub const ACCESS_TTL: i64 = 3600;

/// How often a process re-reads the keys (to see another process's
/// rotation, and to rotate or drop keys on time).
const REFRESH: Duration = Duration::from_secs(10);

/// What a key signs; each purpose has its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Signed download URLs (`/file/signed`).
    Url,
    /// Share access tokens (from `/public/share/unlock`).
    Share,
}

impl Purpose {
    /// Every rotating purpose.
    pub const ALL: [Purpose; 2] = [Purpose::Url, Purpose::Share];

    /// Its name in the keys table.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Url => "url",
            Purpose::Share => "share",
        }
    }

    fn parse(name: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The longest anything signed for this purpose lives, in seconds: a
    /// replaced key is kept that long after it stopped signing.
    pub fn longest_lifetime(self) -> i64 {
        match self {
            Purpose::Url => MAX_URL_TTL,
            Purpose::Share => ACCESS_TTL,
        }
    }
}

/// One key in memory.
#[derive(Clone)]
struct Key {
    kid: String,
    secret: Arc<Vec<u8>>,
    created_at: i64,
}

/// The keys as last read, by purpose, oldest first.
#[derive(Default)]
struct Snapshot {
    keys: HashMap<Purpose, Vec<Key>>,
    read_at: Option<Instant>,
}

impl Snapshot {
    /// The key `kid` of `purpose` if it may still verify at `now`: it is
    /// the newest, or the one after it was made less than the purpose's
    /// longest lifetime ago.
    fn verifying(&self, purpose: Purpose, kid: &str, now: i64) -> Option<Arc<Vec<u8>>> {
        let keys = self.keys.get(&purpose)?;
        let i = keys.iter().position(|k| k.kid == kid)?;
        match keys.get(i + 1) {
            Some(next) if now >= next.created_at + purpose.longest_lifetime() => None,
            _ => Some(keys[i].secret.clone()),
        }
    }

    fn fresh(&self) -> bool {
        self.read_at.is_some_and(|t| t.elapsed() < REFRESH)
    }
}

/// A key chosen to sign: its id and secret.
#[derive(Clone)]
pub struct SigningKeyRef {
    /// The id the artefact carries.
    pub kid: String,
    /// The secret.
    pub secret: Arc<Vec<u8>>,
}

/// What a rotation did, for `api admin rotate-keys`.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The purpose.
    pub purpose: Purpose,
    /// The id of the key that signs from now on.
    pub kid: String,
    /// Keys kept to verify what they signed, with the time (Unix seconds)
    /// each is dropped.
    pub kept: Vec<(String, i64)>,
}

/// The rotating signing keys, shared by every api process through the
/// database; cheap to clone.
#[derive(Clone)]
pub struct Keys {
    pub(crate) repo: Arc<dyn MetaRepo>,
    /// Seconds a key signs before a fresh one replaces it (`PAN_KEY_DAYS`).
    pub(crate) rotate_secs: i64,
    /// The keys as last read. A `std` lock: it is held only to copy or swap
    /// the snapshot, never across an await.
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    /// One re-read at a time; the others wait and use its result.
    reading: Arc<tokio::sync::Mutex<()>>,
}

impl Keys {
    /// Keys read from `repo`, rotated every `key_days` days.
    pub(crate) fn new(repo: Arc<dyn MetaRepo>, key_days: u64) -> Self {
        Keys { repo, rotate_secs: key_days as i64 * 86_400, snapshot: Default::default(), reading: Default::default() }
    }

    /// Opens the database the settings name, and nothing else (for
    /// `api admin rotate-keys`, which works while Redis or the stores are
    /// away).
    pub async fn open(settings: &crate::runtime::config::Settings) -> Result<Self, crate::stores::open::OpenError> {
        let repo = crate::stores::meta::open(&settings.database_url())
            .await
            .map_err(crate::stores::open::fail("DATABASE_URL"))?;
        Ok(Keys::new(Arc::new(repo), settings.key_days))
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the keys (unless another caller's read started after
    /// `asked`, which then serves this one too):
    /// makes a fresh key for a purpose whose newest is due, drops keys
    /// whose signatures can all have expired. Every step is safe when
    /// several processes take it at once: two fresh keys made together are
    /// both valid, and the newest of them signs.
    async fn reread(&self, asked: Instant, force_rotation: bool) -> Result<Arc<Snapshot>> {
        let _one = self.reading.lock().await;
        let latest = self.current();
        if !force_rotation && latest.read_at.is_some_and(|t| t >= asked) {
            return Ok(latest);
        }
        let started = Instant::now();
        let now = crate::now();
        let mut keys = self.load().await?;
        let mut changed = false;
        for purpose in Purpose::ALL {
            let newest = keys.get(&purpose).and_then(|k| k.last()).map(|k| k.created_at);
            if force_rotation || newest.is_none_or(|t| now >= t + self.rotate_secs) {
                // Strictly newer than the newest, even within its second:
                // the newest by time is the one that signs.
                self.add(purpose, newest.map_or(now, |t| now.max(t + 1))).await?;
                changed = true;
            }
        }
        if changed {
            keys = self.load().await?;
        }
        let mut snapshot = Snapshot { keys, read_at: Some(started) };
        let mut dropped = Vec::new();
        for purpose in Purpose::ALL {
            for k in snapshot.keys.get(&purpose).into_iter().flatten() {
                if snapshot.verifying(purpose, &k.kid, now).is_none() {
                    dropped.push((purpose, k.kid.clone()));
                }
            }
        }
        for (purpose, kid) in dropped {
            self.repo.drop_signing_key(purpose.name(), &kid).await?;
            snapshot.keys.entry(purpose).or_default().retain(|k| k.kid != kid);
            tracing::info!(purpose = purpose.name(), %kid, "signing key dropped: what it signed has expired");
        }
        let snapshot = Arc::new(snapshot);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snapshot.clone();
        Ok(snapshot)
    }

    async fn load(&self) -> Result<HashMap<Purpose, Vec<Key>>> {
        let mut keys: HashMap<Purpose, Vec<Key>> = HashMap::new();
        for StoredKey { purpose, kid, secret, created_at } in self.repo.signing_keys().await? {
            let Some(purpose) = Purpose::parse(&purpose) else { continue };
            let secret = hex::decode(&secret).map_err(|e| Error::internal("reading a signing key", e))?;
            keys.entry(purpose).or_default().push(Key { kid, secret: Arc::new(secret), created_at });
        }
        Ok(keys)
    }

    async fn add(&self, purpose: Purpose, created_at: i64) -> Result<()> {
        loop {
            let key = StoredKey {
                purpose: purpose.name().into(),
                kid: crate::random_hex(6),
                secret: crate::random_hex(32),
                created_at,
            };
            if self.repo.add_signing_key(&key).await? {
                tracing::info!(purpose = purpose.name(), kid = %key.kid, "new signing key");
                return Ok(());
            }
        }
    }

    /// The snapshot, re-read when it is older than [`REFRESH`].
    async fn fresh(&self) -> Result<Arc<Snapshot>> {
        let snapshot = self.current();
        if snapshot.fresh() { Ok(snapshot) } else { self.reread(Instant::now(), false).await }
    }

    /// The key that signs for `purpose` now.
    pub async fn signing(&self, purpose: Purpose) -> Result<SigningKeyRef> {
        let snapshot = self.fresh().await?;
        let key = snapshot.keys.get(&purpose).and_then(|k| k.last()).ok_or_else(|| {
            Error::internal("choosing a signing key", format!("no {} key after a re-read", purpose.name()))
        })?;
        Ok(SigningKeyRef { kid: key.kid.clone(), secret: key.secret.clone() })
    }

    /// The secret of key `kid` of `purpose`, if it may still verify; an id
    /// this process does not know makes it re-read the keys, as another
    /// process may just have made it. Re-reads run one at a time and the
    /// requests waiting meanwhile share the next one, so a flood of made-up
    /// ids costs one small query in flight, not one per request.
    pub async fn verifying(&self, purpose: Purpose, kid: &str) -> Result<Option<Arc<Vec<u8>>>> {
        let asked = Instant::now();
        let snapshot = self.fresh().await?;
        let now = crate::now();
        if let Some(secret) = snapshot.verifying(purpose, kid, now) {
            return Ok(Some(secret));
        }
        if snapshot.keys.get(&purpose).is_some_and(|k| k.iter().any(|k| k.kid == kid)) {
            return Ok(None);
        }
        Ok(self.reread(asked, false).await?.verifying(purpose, kid, now))
    }

    /// Makes a fresh key for every purpose now (`api admin rotate-keys`):
    /// it signs from now on, in every process once it re-reads (within
    /// 10 s); the replaced keys keep verifying what they signed until that
    /// can have expired.
    pub async fn rotate(&self) -> Result<Vec<Rotated>> {
        let snapshot = self.reread(Instant::now(), true).await?;
        Ok(Purpose::ALL
            .into_iter()
            .map(|purpose| {
                let keys = snapshot.keys.get(&purpose).cloned().unwrap_or_default();
                let kept =
                    keys.windows(2).map(|w| (w[0].kid.clone(), w[1].created_at + purpose.longest_lifetime())).collect();
                Rotated { purpose, kid: keys.last().map(|k| k.kid.clone()).unwrap_or_default(), kept }
            })
            .collect())
    }
}

/// The key that seeds challenge ranges: made once, kept in the database (so
/// every process draws the same ranges), never rotated.
#[derive(Clone)]
pub struct ChallengeSeed {
    pub(crate) repo: Arc<dyn MetaRepo>,
    pub(crate) cached: Arc<tokio::sync::OnceCell<Vec<u8>>>,
}

impl ChallengeSeed {
    /// The seed key, loaded (or made) on first use.
    pub(crate) async fn get(&self) -> Result<Vec<u8>> {
        self.cached
            .get_or_try_init(|| async {
                let hexkey = self.repo.secret(SEED_NAME, &crate::random_hex(32)).await?;
                hex::decode(hexkey).map_err(|e| Error::internal("reading the challenge seed", e))
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
    /// The signature does not match (tampered or forged), or its key is
    /// unknown or dropped.
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

    fn key(kid: &str, secret: u8, created_at: i64) -> Key {
        Key { kid: kid.into(), secret: Arc::new(vec![secret; 32]), created_at }
    }

    #[test]
    fn a_replaced_key_verifies_for_its_purposes_longest_lifetime_and_keys_are_per_purpose() {
        let mut s = Snapshot::default();
        s.keys.insert(Purpose::Url, vec![key("a", 1, 0), key("b", 2, 1000)]);
        s.keys.insert(Purpose::Share, vec![key("c", 3, 0), key("d", 4, 1000)]);
        // The newest always verifies; a replaced one until its purpose's
        // longest lifetime has passed since it was replaced.
        assert!(s.verifying(Purpose::Url, "b", i64::MAX).is_some());
        assert!(s.verifying(Purpose::Url, "a", 1000 + MAX_URL_TTL - 1).is_some());
        assert!(s.verifying(Purpose::Url, "a", 1000 + MAX_URL_TTL).is_none());
        assert!(s.verifying(Purpose::Share, "c", 1000 + ACCESS_TTL - 1).is_some());
        assert!(s.verifying(Purpose::Share, "c", 1000 + ACCESS_TTL).is_none());
        // A key id of one purpose is unknown to the other, and a link signed
        // with a share key does not verify as a URL.
        assert!(s.verifying(Purpose::Url, "d", 0).is_none());
        assert!(s.verifying(Purpose::Share, "b", 0).is_none());
        assert!(s.verifying(Purpose::Url, "zz", 0).is_none());
        let share_secret = s.verifying(Purpose::Share, "d", 0).unwrap();
        let url_secret = s.verifying(Purpose::Url, "b", 0).unwrap();
        let sig = sign(&share_secret, "ab", 7, 1000);
        assert_eq!(verify(&url_secret, "ab", 7, 1000, &sig, 999), Err(LinkError::Invalid));
        assert_eq!(verify(&share_secret, "ab", 7, 1000, &sig, 999), Ok(()));
    }
}
