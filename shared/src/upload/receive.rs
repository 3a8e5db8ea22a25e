//! A segment's request body, received under the rules every front door
//! applies: the segment's length (exactly, or up to a limit for a body of
//! unknown length), its checksum when the client gave one, no idling and no
//! trickling. The byte store only offers where the bytes land
//! ([`ChunkSink`]); what counts as a good body is decided here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use sha1::{Digest, Sha1};

use crate::domain::Segment;
use crate::stores::objects::{ByteStore, ByteStream, ChunkSink, ChunkWriteError, Gathered, SegmentAt};

/// A request body streamed into a chunk.
pub type ChunkBody<'a> = dyn Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'a;

/// How long a chunk upload may go without receiving a byte.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The window over which a body's rate is held against the floor
/// (`PAN_MIN_CHUNK_RATE`): the first one starts with the body, so a slow
/// start is forgiven this long, and every later one must see its share too.
pub const RATE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// A body's rate, judged over consecutive windows of [`RATE_GRACE`] from
/// its start: each window must bring `floor` bytes a second on average. An
/// average from the start would let a client that sent fast at first
/// trickle for minutes (8 MiB, then a byte every 50 s) while holding a slot.
#[derive(Debug, Clone, Copy)]
pub struct RateWindow {
    floor: u64,
    since: tokio::time::Instant,
    got_then: u64,
}

impl RateWindow {
    /// A window starting now; `floor` 0 judges nothing.
    pub fn start(floor: u64) -> Self {
        RateWindow { floor, since: tokio::time::Instant::now(), got_then: 0 }
    }

    /// When the current window ends (`None`: no floor).
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        (self.floor > 0).then_some(self.since + RATE_GRACE)
    }

    /// With `got` bytes received in all: the window's rate when it ended
    /// below the floor; otherwise a new window starts when this one is over.
    pub fn check(&mut self, got: u64) -> Option<u64> {
        let elapsed = self.since.elapsed();
        if self.floor == 0 || elapsed < RATE_GRACE {
            return None;
        }
        let rate = ((got - self.got_then) as f64 / elapsed.as_secs_f64()) as u64;
        if rate < self.floor {
            return Some(rate);
        }
        *self = RateWindow { floor: self.floor, since: tokio::time::Instant::now(), got_then: got };
        None
    }
}

/// What a chunk's body is held to, besides its length.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyRules {
    /// The chunk's SHA-1, when the client sent one (`Upload-Checksum`).
    pub checksum: Option<[u8; 20]>,
    /// Slowest acceptable rate over each window of [`RATE_GRACE`] (bytes/s;
    /// 0: none).
    pub min_rate: u64,
}

/// Where received pieces go: a store's sink, or a comparison.
trait Pieces {
    fn put(&mut self, piece: Bytes) -> impl Future<Output = Result<(), ChunkWriteError>> + Send;
}

/// How long a segment's body must be: at least `min` bytes, at most `max`
/// (equal for a segment whose length is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The fewest bytes that make a whole segment.
    pub min: u64,
    /// The most it may hold.
    pub max: u64,
}

impl Expect {
    /// Exactly `len` bytes.
    pub fn exactly(len: u64) -> Self {
        Expect { min: len, max: len }
    }
}

/// How errors name the bytes of `segment`: as chunk `index` of the chunk
/// protocol, or as a byte range.
pub fn describe(segment: Segment, index: Option<u64>) -> String {
    match index {
        Some(i) => format!("chunk {i}"),
        None => format!("bytes {}-{}", segment.start, segment.end().saturating_sub(1)),
    }
}

/// Receives segment `at` into `store` (`replacing` an earlier send: see
/// [`ByteStore::open_segment`]), its body held to `expect`: the key it is
/// staged under and the bytes received once the whole, good body is
/// durable, and, when `keep` allows, the body's pieces (the request's own
/// buffers, not copies) for the running hash to hash without reading them
/// back; on any refusal the sink is aborted. (`at.segment.len` is the most
/// it may hold; `what` names it in errors.)
#[allow(clippy::too_many_arguments)]
pub async fn stage_segment(
    store: &dyn ByteStore,
    at: SegmentAt<'_>,
    what: &str,
    replacing: bool,
    expect: Expect,
    rules: BodyRules,
    keep: Option<&KeepBudget>,
    body: &mut ChunkBody<'_>,
) -> Result<(Path, u64, Option<KeptPieces>), ChunkWriteError> {
    let sink = store.open_segment(at, replacing).await?;
    let mut keeping = Keeping { sink, kept: keep.map(KeptPieces::new) };
    match receive(&mut keeping, what, expect, rules, body).await {
        Ok(got) => Ok((keeping.sink.finish().await?, got, keeping.kept)),
        Err(e) => {
            keeping.sink.abort().await;
            Err(e)
        }
    }
}

/// At most `left` bytes of a body, the rest kept (in `carry`) for the
/// next segment: a body of unknown length is cut into segments this way.
pub struct Limited<'a, 'b> {
    body: &'a mut ChunkBody<'b>,
    carry: &'a mut Option<Bytes>,
    left: u64,
}

impl<'a, 'b> Limited<'a, 'b> {
    /// The next `left` bytes of `body`, starting with what `carry` holds.
    pub fn new(body: &'a mut ChunkBody<'b>, carry: &'a mut Option<Bytes>, left: u64) -> Self {
        Limited { body, carry, left }
    }
}

impl Stream for Limited<'_, '_> {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let piece = match self.carry.take() {
            Some(piece) => piece,
            None => match std::task::ready!(self.body.poll_next_unpin(cx)) {
                Some(Ok(piece)) => piece,
                other => return Poll::Ready(other),
            },
        };
        let mut piece = piece;
        if piece.len() as u64 > self.left {
            let rest = piece.split_off(self.left as usize);
            *self.carry = Some(rest);
        }
        self.left -= piece.len() as u64;
        Poll::Ready(Some(Ok(piece)))
    }
}

/// A digest of a whole request body, by the algorithm its checksum names
/// (`Upload-Checksum: sha1 …` or, on tus, `sha256 …`).
pub enum BodyDigest {
    /// SHA-1.
    Sha1(Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
}

impl BodyDigest {
    /// Feeds `piece`.
    pub fn update(&mut self, piece: &[u8]) {
        match self {
            BodyDigest::Sha1(h) => h.update(piece),
            BodyDigest::Sha256(h) => h.update(piece),
        }
    }

    /// The digest's bytes.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            BodyDigest::Sha1(h) => h.finalize().to_vec(),
            BodyDigest::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// A body whose bytes also feed a digest of all of it, when there is one
/// (the checksum of a request whose body spans several segments).
pub struct Watched<'a, S> {
    body: &'a mut S,
    digest: Option<&'a mut BodyDigest>,
}

impl<'a, S> Watched<'a, S> {
    /// `body`, its bytes fed to `digest` as they are read.
    pub fn new(body: &'a mut S, digest: Option<&'a mut BodyDigest>) -> Self {
        Watched { body, digest }
    }
}

impl<S: Stream<Item = std::io::Result<Bytes>> + Unpin> Stream for Watched<'_, S> {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = std::task::ready!(self.body.poll_next_unpin(cx));
        if let (Some(Ok(piece)), Some(digest)) = (&next, self.digest.as_mut()) {
            digest.update(piece);
        }
        std::task::Poll::Ready(next)
    }
}

/// The memory a process may spend on bytes kept for its running hash (in
/// requests still arriving and in chunks waiting for the hash), shared by
/// everything that keeps some.
#[derive(Debug, Clone)]
pub struct KeepBudget {
    held: Arc<AtomicUsize>,
    limit: usize,
}

impl KeepBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        KeepBudget { held: Default::default(), limit }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// A chunk's pieces, counted against a [`KeepBudget`] until dropped (small
/// ones copied together: see [`Gathered`]).
pub struct KeptPieces {
    budget: KeepBudget,
    pieces: Gathered,
    size: usize,
}

impl KeptPieces {
    pub(crate) fn new(budget: &KeepBudget) -> Self {
        KeptPieces { budget: budget.clone(), pieces: Gathered::default(), size: 0 }
    }

    /// Keeps `piece` if the budget has room; false (and nothing kept any
    /// more) when it has not.
    pub(crate) fn push(&mut self, piece: &Bytes) -> bool {
        let len = piece.len();
        if self.budget.held.fetch_add(len, Ordering::Relaxed) + len > self.budget.limit {
            self.budget.held.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        self.size += len;
        self.pieces.push(piece.clone());
        true
    }

    /// The pieces, in order (no longer counted: the caller is about to use
    /// and drop them).
    pub fn into_pieces(mut self) -> Vec<Bytes> {
        self.pieces.take()
    }
}

impl std::fmt::Debug for KeptPieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeptPieces({} bytes)", self.size)
    }
}

impl Drop for KeptPieces {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.size, Ordering::Relaxed);
    }
}

/// A sink that also keeps (a reference to) every piece it is given, while
/// the budget lets it: once it does not, nothing of the chunk is kept.
struct Keeping {
    sink: ChunkSink,
    kept: Option<KeptPieces>,
}

impl Pieces for Keeping {
    async fn put(&mut self, piece: Bytes) -> Result<(), ChunkWriteError> {
        if let Some(kept) = self.kept.as_mut()
            && !kept.push(&piece)
        {
            self.kept = None;
        }
        self.sink.put(piece).await
    }
}

/// Reads a body (its bytes named `what` in errors) into `sink`: as many
/// bytes as `expect` allows, matching the rules' checksum when given,
/// within the idle and rate limits. Returns the bytes received.
async fn receive<P: Pieces>(
    sink: &mut P,
    what: &str,
    expect: Expect,
    rules: BodyRules,
    body: &mut ChunkBody<'_>,
) -> Result<u64, ChunkWriteError> {
    let BodyRules { checksum, min_rate } = rules;
    let mut hasher = checksum.map(|_| Sha1::new());
    let mut got = 0u64;
    let mut window = RateWindow::start(min_rate);
    let mut last_byte = tokio::time::Instant::now();
    loop {
        // Wake at least when the rate's window ends, so a client that
        // trickles (or stalls) is cut off on time, not at its next byte.
        let idle = last_byte + BODY_IDLE_TIMEOUT;
        let wake = window.deadline().map_or(idle, |end| idle.min(end));
        let next = tokio::time::timeout_at(wake, body.next()).await;
        if let Some(rate) = window.check(got) {
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
                if got > expect.max {
                    return Err(ChunkWriteError::TooLong { what: what.to_owned(), expected: expect.max });
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&piece);
                }
                sink.put(piece).await?;
            }
        }
    }
    if got < expect.min {
        return Err(ChunkWriteError::TooShort { what: what.to_owned(), expected: expect.min, got });
    }
    if let (Some(want), Some(h)) = (checksum, hasher) {
        let actual: [u8; 20] = h.finalize().into();
        if actual != want {
            return Err(ChunkWriteError::ChecksumMismatch { what: what.to_owned(), actual: hex::encode(actual) });
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
    what: &str,
    expected: u64,
    rules: BodyRules,
    body: &mut ChunkBody<'_>,
) -> Result<(), ChunkWriteError> {
    receive(&mut Discard, what, Expect::exactly(expected), rules, body).await.map(|_| ())
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

/// Receives a segment sent again after the running hash passed it: its
/// bytes may not change, so the body is only compared with `stored` (the
/// segment's staged bytes). Ok(true) when they are the same bytes.
pub async fn compare_segment(
    stored: ByteStream,
    what: &str,
    expected: u64,
    rules: BodyRules,
    body: &mut ChunkBody<'_>,
) -> Result<bool, ChunkWriteError> {
    let mut sink = Compare { stored, have: Bytes::new(), differs: false };
    receive(&mut sink, what, Expect::exactly(expected), rules, body).await?;
    let Compare { mut stored, have, differs } = sink;
    // The same bytes, and no more of them stored.
    Ok(!differs && have.is_empty() && stored.next().await.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that arrives as `pieces`: (seconds to wait first, bytes).
    fn paced(pieces: Vec<(u64, usize)>) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
        Box::pin(futures::stream::iter(pieces).then(|(wait, len)| async move {
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            Ok(Bytes::from(vec![7u8; len]))
        }))
    }

    async fn received(pieces: Vec<(u64, usize)>, expected: u64) -> (Result<u64, ChunkWriteError>, u64) {
        let started = tokio::time::Instant::now();
        let mut body = paced(pieces);
        let rules = BodyRules { checksum: None, min_rate: 16 << 10 };
        let got = receive(&mut Discard, "chunk 0", Expect::exactly(expected), rules, &mut body).await;
        (got, started.elapsed().as_secs())
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_sent_fast_and_then_trickles_is_cut_off_at_its_next_window() {
        // 8 MiB at once would keep an average from the start above 16 KiB/s
        // for 512 s; the second window sees 1 byte in 30 s and ends it.
        let mut pieces = vec![(0, 8 << 20)];
        pieces.extend((0..20).map(|_| (25, 1)));
        let (got, secs) = received(pieces, (8 << 20) + 100).await;
        assert!(matches!(got, Err(ChunkWriteError::TooSlow { .. })), "{got:?}");
        assert!((60..=61).contains(&secs), "cut off after {secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_at_the_floor_passes_every_window() {
        // 20 KiB a second for 100 s: above the floor in every window.
        let pieces = (0..100).map(|_| (1, 20 << 10)).collect();
        let (got, secs) = received(pieces, 100 * (20 << 10)).await;
        assert_eq!(got.unwrap(), 100 * (20 << 10));
        assert_eq!(secs, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_start_is_forgiven_for_the_first_window_only() {
        // Nothing for 20 s, then 1 MiB: the first window averages 34 KiB/s.
        let (got, _) = received(vec![(20, 1 << 20)], 1 << 20).await;
        assert_eq!(got.unwrap(), 1 << 20);
        // One byte then silence: cut off when the first window ends.
        let (got, secs) = received(vec![(0, 1), (3600, 1)], 2).await;
        assert!(matches!(got, Err(ChunkWriteError::TooSlow { .. })), "{got:?}");
        assert_eq!(secs, 30);
    }
}
