//! Content digests. SHA-1 is the protocol's declared checksum (clients send
//! it at init); SHA-256 is content identity, since same-size SHA-1 collisions
//! are public (SHAttered, SHAmbles). One [`ContentHasher`] computes both in a
//! single pass over the bytes, wherever bytes are read: the merge, the
//! single-request upload, and (later) the ingest path.

use sha1::digest::common::hazmat::SerializableState;
use sha1::digest::typenum::Unsigned;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// SHA-1 and SHA-256 of the same bytes, fed once.
#[derive(Clone, Default)]
pub struct ContentHasher {
    sha1: Sha1,
    sha256: Sha256,
}

/// The digests of some content, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// SHA-1, 40 hex characters.
    pub sha1: String,
    /// SHA-256, 64 hex characters.
    pub sha256: String,
}

impl ContentHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the content.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha1.update(bytes);
        self.sha256.update(bytes);
    }

    /// [`ContentHasher::update`] of each of `pieces`, in order, with SHA-1
    /// on a second thread beside SHA-256: about half the wall time, for when the CPU has room (each
    /// digest runs at 1-2 GB/s with the SHA instructions; a thread costs
    /// tens of microseconds, a 1 MiB piece hundreds).
    pub fn update_on_two_threads<P: AsRef<[u8]> + Sync>(&mut self, pieces: &[P]) {
        let (sha1, sha256) = (&mut self.sha1, &mut self.sha256);
        std::thread::scope(|s| {
            s.spawn(|| pieces.iter().for_each(|p| sha1.update(p)));
            pieces.iter().for_each(|p| sha256.update(p));
        });
    }

    /// The digests of everything fed.
    pub fn finish(self) -> Digests {
        Digests { sha1: hex::encode(self.sha1.finalize()), sha256: hex::encode(self.sha256.finalize()) }
    }

    /// The hasher's state as bytes (SHA-1's, then SHA-256's), to carry a
    /// running hash between requests and processes: [`Self::restore`]
    /// continues exactly where this one stopped.
    pub fn save(&self) -> Vec<u8> {
        let mut out = self.sha1.serialize().to_vec();
        out.extend_from_slice(&self.sha256.serialize());
        out
    }

    /// A hasher in the state [`Self::save`] wrote; `None` when `bytes` is
    /// not such a state.
    pub fn restore(bytes: &[u8]) -> Option<Self> {
        let split = <Sha1 as SerializableState>::SerializedStateSize::USIZE;
        if bytes.len() != split + <Sha256 as SerializableState>::SerializedStateSize::USIZE {
            return None;
        }
        let sha1 = Sha1::deserialize(bytes[..split].try_into().ok()?).ok()?;
        let sha256 = Sha256::deserialize(bytes[split..].try_into().ok()?).ok()?;
        Some(ContentHasher { sha1, sha256 })
    }

    /// The digests of `bytes`.
    pub fn digest(bytes: &[u8]) -> Digests {
        let mut h = Self::new();
        h.update(bytes);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_nothing_are_the_well_known_empty_ones() {
        let d = ContentHasher::digest(b"");
        assert_eq!(d.sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(d.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn feeding_in_pieces_equals_feeding_at_once() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let mut h = ContentHasher::new();
        for piece in data.chunks(777) {
            h.update(piece);
        }
        assert_eq!(h.finish(), ContentHasher::digest(&data));
    }

    #[test]
    fn two_threads_give_the_digests_of_one() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let mut h = ContentHasher::new();
        h.update(&data[..1000]);
        let pieces: Vec<&[u8]> = data[1000..].chunks(65_536).collect();
        h.update_on_two_threads(&pieces);
        assert_eq!(h.finish(), ContentHasher::digest(&data));
    }

    #[test]
    fn a_restored_state_goes_on_where_the_saved_one_stopped() {
        let data: Vec<u8> = (0..300_001u32).map(|i| (i % 251) as u8).collect();
        let mut h = ContentHasher::new();
        h.update(&data[..100_003]);
        let mut restored = ContentHasher::restore(&h.save()).expect("a saved state restores");
        restored.update(&data[100_003..]);
        assert_eq!(restored.finish(), ContentHasher::digest(&data));
        assert!(ContentHasher::restore(b"not a state").is_none());
    }
}
