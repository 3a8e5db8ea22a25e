//! A chunk's request body, received under the rules every front door
//! applies: exactly the chunk's length, its checksum when the client gave
//! one, no idling and no trickling. The byte store only offers where the
//! bytes land ([`ChunkSink`]); what counts as a good body is decided here.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use sha1::{Digest, Sha1};

use crate::stores::objects::{ByteStore, ByteStream, ChunkAt, ChunkSink, ChunkWriteError};

/// A request body streamed into a chunk.
pub type ChunkBody<'a> = dyn Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'a;

/// How long a chunk upload may go without receiving a byte.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a chunk body may take before its average rate is held against
/// the floor (`PAN_MIN_CHUNK_RATE`): slow starts are forgiven this long.
pub const RATE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The average rate so far, when it is below `floor` after the grace period.
fn too_slow(started: tokio::time::Instant, got: u64, floor: u64) -> Option<u64> {
    let elapsed = started.elapsed();
    if floor == 0 || elapsed < RATE_GRACE {
        return None;
    }
    let rate = (got as f64 / elapsed.as_secs_f64()) as u64;
    (rate < floor).then_some(rate)
}

/// What a chunk's body is held to, besides its length.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyRules {
    /// The chunk's SHA-1, when the client sent one (`Upload-Checksum`).
    pub checksum: Option<[u8; 20]>,
    /// Slowest acceptable average rate after [`RATE_GRACE`] (bytes/s; 0: none).
    pub min_rate: u64,
}

/// Where received pieces go: a store's sink, or a comparison.
trait Pieces {
    fn put(&mut self, piece: Bytes) -> impl Future<Output = Result<(), ChunkWriteError>> + Send;
}

impl Pieces for ChunkSink {
    async fn put(&mut self, piece: Bytes) -> Result<(), ChunkWriteError> {
        ChunkSink::put(self, piece).await
    }
}

/// Receives chunk `at` into `store` (`replacing` an earlier send: see
/// [`ByteStore::open_chunk`]): the key it is staged under once the whole,
/// good body is durable; on any refusal the sink is aborted.
pub async fn stage_chunk(
    store: &dyn ByteStore,
    at: ChunkAt<'_>,
    replacing: bool,
    rules: BodyRules,
    body: &mut ChunkBody<'_>,
) -> Result<Path, ChunkWriteError> {
    let mut sink = store.open_chunk(at, replacing).await?;
    match receive(&mut sink, at.index, at.plan.chunk_len(at.index), rules, body).await {
        Ok(_) => sink.finish().await,
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

/// Reads chunk `index`'s body into `sink`: exactly `expected` bytes,
/// matching the rules' checksum when given, within the idle and rate
/// limits. Returns the bytes received.
async fn receive<P: Pieces>(
    sink: &mut P,
    index: u64,
    expected: u64,
    rules: BodyRules,
    body: &mut ChunkBody<'_>,
) -> Result<u64, ChunkWriteError> {
    let BodyRules { checksum, min_rate } = rules;
    let mut hasher = checksum.map(|_| Sha1::new());
    let mut got = 0u64;
    let started = tokio::time::Instant::now();
    let mut last_byte = started;
    loop {
        // Wake at least when the rate floor is first judged, so a client that
        // trickles (or stalls) is cut off on time, not at its next byte.
        let floor_check = started + RATE_GRACE;
        let idle = last_byte + BODY_IDLE_TIMEOUT;
        let wake = if min_rate > 0 && floor_check > tokio::time::Instant::now() { idle.min(floor_check) } else { idle };
        let next = tokio::time::timeout_at(wake, body.next()).await;
        if let Some(rate) = too_slow(started, got, min_rate) {
            return Err(ChunkWriteError::TooSlow { rate, floor: min_rate });
        }
        let next = match next {
            Ok(next) => next,
            Err(_) if tokio::time::Instant::now() >= idle => {
                return Err(ChunkWriteError::Idle(BODY_IDLE_TIMEOUT.as_secs()));
            }
            Err(_) => continue,
        };
        match next {
            None => break,
            Some(Err(e)) => return Err(ChunkWriteError::Body(e)),
            Some(Ok(piece)) => {
                last_byte = tokio::time::Instant::now();
                got += piece.len() as u64;
                if got > expected {
                    return Err(ChunkWriteError::TooLong { index, expected });
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&piece);
                }
                sink.put(piece).await?;
            }
        }
    }
    if got < expected {
        return Err(ChunkWriteError::TooShort { index, expected, got });
    }
    if let (Some(want), Some(h)) = (checksum, hasher) {
        let actual: [u8; 20] = h.finalize().into();
        if actual != want {
            return Err(ChunkWriteError::ChecksumMismatch { index, actual: hex::encode(actual) });
        }
    }
    Ok(got)
}

/// Nowhere: the pieces of a chunk nobody needs.
struct Discard;

impl Pieces for Discard {
    async fn put(&mut self, _piece: Bytes) -> Result<(), ChunkWriteError> {
        Ok(())
    }
}

/// Receives a chunk the upload does not need any more (it has all its
/// chunks) under the same rules, keeping none of it: the client that sent
/// it all before reading the answer gets one, and one that trickles is
/// still cut off.
pub async fn discard_chunk(
    index: u64,
    expected: u64,
    rules: BodyRules,
    body: &mut ChunkBody<'_>,
) -> Result<(), ChunkWriteError> {
    receive(&mut Discard, index, expected, rules, body).await.map(|_| ())
}

/// A comparison with the bytes stored before: `differs` once they do.
struct Compare {
    stored: ByteStream,
    have: Bytes,
    differs: bool,
}

impl Pieces for Compare {
    async fn put(&mut self, piece: Bytes) -> Result<(), ChunkWriteError> {
        let mut rest = &piece[..];
        while !rest.is_empty() && !self.differs {
            if self.have.is_empty() {
                match self.stored.next().await {
                    Some(Ok(next)) => self.have = next,
                    Some(Err(e)) => return Err(ChunkWriteError::Stored(e)),
                    None => {
                        self.differs = true;
                        break;
                    }
                }
                continue;
            }
            let n = self.have.len().min(rest.len());
            if self.have[..n] != rest[..n] {
                self.differs = true;
            }
            self.have = self.have.slice(n..);
            rest = &rest[n..];
        }
        Ok(())
    }
}

/// Receives a chunk sent again after the running hash passed it: its bytes
/// may not change, so the body is only compared with `stored` (the chunk's
/// staged bytes). Ok(true) when they are the same bytes.
pub async fn compare_chunk(
    stored: ByteStream,
    index: u64,
    expected: u64,
    rules: BodyRules,
    body: &mut ChunkBody<'_>,
) -> Result<bool, ChunkWriteError> {
    let mut sink = Compare { stored, have: Bytes::new(), differs: false };
    receive(&mut sink, index, expected, rules, body).await?;
    let Compare { mut stored, have, differs } = sink;
    // The same bytes, and no more of them stored.
    Ok(!differs && have.is_empty() && stored.next().await.is_none())
}
