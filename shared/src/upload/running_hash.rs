//! The running hash: an upload's SHA-1 and SHA-256 follow its bytes in.
//!
//! Whenever a segment is received that starts where the hashed bytes end,
//! some process (the api that received it, any other api process, or the
//! merge) advances the hash over it and every following segment already
//! present, and saves the hasher's state with the upload. Two kinds of lease
//! keep this safe across processes:
//! - the [`HASH_LEASE`]: one advancer per upload; its progress is saved only
//!   while the lease is held, so a process that lost it (stalled, killed)
//!   cannot overwrite a newer state;
//! - a [`segment_lease`] per segment: one writer of any byte at a time (a
//!   second send is refused with `CHUNK_BUSY`), and the advancer takes it
//!   too while it reads the segment, so it never hashes bytes being replaced.
//!
//! Bytes below the saved `next` never change again: a later send of their
//! segment is compared with the stored bytes and refused (`CHUNK_CONFLICT`)
//! when it differs. A crash loses at most the segment being hashed; at
//! `complete` the merge hashes only what is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use tokio::sync::Notify;

use crate::domain::error::{Error, Result};
use crate::domain::hashing::{ContentHasher, Digests};
use crate::domain::{Segment, UploadId, UploadSession};
use crate::runtime::background::Background;
use crate::upload::receive::{KeepBudget, KeptPieces};

use crate::stores::objects::Store;
use crate::stores::uploads::{HASH_LEASE, HashProgress, SEGMENT_LEASE_PREFIX, Staged, segment_lease};
use crate::stores::uploads::{HashLeases, SegmentMap};

/// How long a lease lasts unless renewed: a process that dies holding one
/// blocks its chunk (or the hash) this long at most.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often a held lease is renewed.
const LEASE_RENEW: Duration = Duration::from_secs(5);
/// The merge waits for writers or an advancer to finish woken at once by a
/// lease given back or progress saved in its own process; for those of other
/// processes it looks again after `WAIT_FIRST`, doubling up to `WAIT_MAX`.
const WAIT_FIRST: Duration = Duration::from_millis(20);
const WAIT_MAX: Duration = Duration::from_millis(200);
/// How long a send waits for the lease on its bytes before it answers
/// `CHUNK_BUSY`.
const SEND_PATIENCE: Duration = Duration::from_secs(1);
/// How long the merge waits for an advancer that saves no progress before
/// hashing what is left itself.
const ADVANCER_WAIT: Duration = Duration::from_secs(3);
/// Bytes hashed per blocking call.
const HASH_BATCH: usize = 1 << 20;
/// The memory a process spends on received chunks kept for its running
/// hash, at most (see [`KeepBudget`]): a chunk hashed from them is not read
/// back from the staging store. Four chunks of 8 MiB, the pace of four
/// connections sending in order. Once it is spent, arriving chunks are not
/// kept (the hash reads them back later), so what is kept is what the hash
/// needs next.
pub const KEEP_BUDGET: usize = 32 << 20;
/// Segments starting further than this many bytes ahead of the hash are not
/// kept: sent out of order, they would wait long and hold the room the next
/// ones need.
pub const KEEP_AHEAD: u64 = 64 << 20;
/// A kept chunk the hash has not taken in this long (its upload was
/// aborted, or the hash moved to another process) gives its room back.
const KEEP_TTL: Duration = Duration::from_secs(60);

/// Segments received by this process, as the request's buffers, until the
/// running hash takes them.
#[derive(Default)]
pub(crate) struct Landed {
    /// (upload, the segment's start, the key it was marked under, its
    /// pieces, when kept), oldest first.
    segments: std::collections::VecDeque<(UploadId, u64, String, KeptPieces, std::time::Instant)>,
}

impl Landed {
    /// Keeps the segment at `start` of `id`, marked under `key`, replacing
    /// an earlier send's.
    fn keep(&mut self, id: &UploadId, start: u64, key: &str, pieces: KeptPieces) {
        self.take(id, start);
        self.segments.push_back((id.clone(), start, key.to_owned(), pieces, std::time::Instant::now()));
    }

    /// Lets segments kept longer than [`KEEP_TTL`] go.
    fn expire(&mut self) {
        while self.segments.front().is_some_and(|c| c.4.elapsed() > KEEP_TTL) {
            self.segments.pop_front();
        }
    }

    /// Takes the segment at `start` of `id` out, whatever key it was marked under.
    fn take(&mut self, id: &UploadId, start: u64) -> Option<(String, KeptPieces)> {
        let at = self.segments.iter().position(|(i, s, ..)| i == id && *s == start)?;
        let (_, _, key, pieces, _) = self.segments.remove(at)?;
        Some((key, pieces))
    }
}

/// Counts a chunk send as in flight (in [`RunningHash::sends`]) until dropped.
pub struct SendInFlight(Arc<AtomicUsize>);

impl Drop for SendInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch (lease clocks).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A lease on one upload, renewed in the background while held and given
/// back by [`Lease::release`] (or, when dropped, by a background task).
pub struct Lease {
    b: Arc<dyn HashLeases>,
    id: UploadId,
    name: String,
    holder: String,
    renewer: Option<tokio::task::JoinHandle<()>>,
    background: Background,
    /// Told when the lease is given back.
    changed: Arc<Notify>,
    /// Set when a renewal found the lease taken by another holder.
    lost: Arc<std::sync::atomic::AtomicBool>,
    /// When it was last taken or renewed (ms): past [`LEASE_TTL`] without a
    /// renewal (the backend away), another may hold it.
    renewed: Arc<std::sync::atomic::AtomicI64>,
}

impl Lease {
    /// Takes the lease `name` of upload `id`; `None` when another holder has it.
    async fn take(hash: &RunningHash, id: &UploadId, name: &str) -> Result<Option<Lease>> {
        let b = &hash.leases;
        let holder = crate::random_hex(12);
        if !b.acquire_lease(id, name, &holder, now_ms(), LEASE_TTL.as_millis() as i64).await? {
            return Ok(None);
        }
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renewed = Arc::new(std::sync::atomic::AtomicI64::new(now_ms()));
        let renewer = {
            let (b, id, name, holder) = (b.clone(), id.clone(), name.to_owned(), holder.clone());
            let (lost, renewed) = (lost.clone(), renewed.clone());
            hash.background.spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    let ttl = LEASE_TTL.as_millis() as i64;
                    let at = now_ms();
                    match b.acquire_lease(&id, &name, &holder, at, ttl).await {
                        Ok(true) => renewed.store(at, Ordering::Relaxed),
                        Ok(false) => {
                            // Lost: whoever holds it now goes on.
                            lost.store(true, Ordering::Relaxed);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, lease = %name, "renewing a lease failed; retrying"),
                    }
                }
            })
        };
        Ok(Some(Lease {
            b: b.clone(),
            id: id.clone(),
            name: name.to_owned(),
            holder,
            renewer: Some(renewer),
            background: hash.background.clone(),
            changed: hash.changed.clone(),
            lost,
            renewed,
        }))
    }

    /// Whether a renewal found the lease held by another (this holder
    /// stalled past its time): what it did under the lease may have raced.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
            || now_ms() - self.renewed.load(Ordering::Relaxed) >= LEASE_TTL.as_millis() as i64
    }

    /// Who holds it (for saves made under it).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Gives the lease back now.
    pub async fn release(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if let Err(e) = self.b.release_lease(&self.id, &self.name, &self.holder).await {
            tracing::warn!(error = %e, lease = %self.name, "releasing a lease failed; it expires by itself");
        }
        self.changed.notify_waiters();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
            // Dropped without release (an error or a cancelled request):
            // give it back in the background rather than let it run out.
            let (b, id, name, holder) =
                (self.b.clone(), self.id.clone(), std::mem::take(&mut self.name), std::mem::take(&mut self.holder));
            let changed = self.changed.clone();
            self.background.spawn(async move {
                let _ = b.release_lease(&id, &name, &holder).await;
                changed.notify_waiters();
            });
        }
    }
}

/// The running hash of uploads: their chunk state and staged bytes.
#[derive(Clone)]
pub(crate) struct RunningHash {
    /// Leases and the saved progress.
    pub(crate) leases: Arc<dyn HashLeases>,
    /// Where each received segment is staged.
    pub(crate) segments: Arc<dyn SegmentMap>,
    pub(crate) staging: Store,
    /// Where its background work (advancing, lease renewals) runs.
    pub(crate) background: Background,
    /// Chunk sends this process is receiving now. While there are any,
    /// hashing keeps to one thread (the CPU is the requests'); once there are
    /// none (after `complete`, in a worker) the two digests run on two threads.
    pub(crate) sends: Arc<AtomicUsize>,
    /// Told whenever a lease of this process is given back or its progress
    /// saved: what a merge in this process waits on.
    pub(crate) changed: Arc<Notify>,
    /// Chunks this process received that the hash has not taken yet.
    landed: Arc<std::sync::Mutex<Landed>>,
    /// What keeping them may cost in memory.
    keep_budget: KeepBudget,
}

impl RunningHash {
    /// The running hash of uploads on these stores, with its background work in `background`.
    pub(crate) fn new(
        leases: Arc<dyn HashLeases>,
        segments: Arc<dyn SegmentMap>,
        staging: Store,
        background: Background,
    ) -> Self {
        RunningHash {
            leases,
            segments,
            staging,
            background,
            sends: Default::default(),
            changed: Default::default(),
            landed: Default::default(),
            keep_budget: KeepBudget::new(KEEP_BUDGET),
        }
    }

    /// Keeps a segment's bytes in memory for the hash: call it once the
    /// segment is marked under `key`, while its lease is still held, so the
    /// hash (which takes that lease to read a segment) finds the bytes the
    /// mark names.
    pub fn landed(&self, id: &UploadId, start: u64, key: &str, pieces: KeptPieces) {
        self.landed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keep(id, start, key, pieces);
    }

    /// The budget a chunk's send may keep its bytes under, once the chunks
    /// kept too long have given theirs back.
    pub fn keep_budget(&self) -> &KeepBudget {
        self.landed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).expire();
        &self.keep_budget
    }

    /// The segment at `start` of `id` as kept when it was marked under
    /// `key`, if it was.
    fn take_landed(&self, id: &UploadId, start: u64, key: &str) -> Option<Vec<Bytes>> {
        let (kept_key, pieces) =
            self.landed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(id, start)?;
        (kept_key == key).then(|| pieces.into_pieces())
    }

    /// Takes the lease `name` of upload `id`; `None` when another holder has it.
    pub async fn lease(&self, id: &UploadId, name: &str) -> Result<Option<Lease>> {
        Lease::take(self, id, name).await
    }

    /// Takes the segment lease `name` of upload `id` for a send, waiting up
    /// to [`SEND_PATIENCE`] while another holds it: the holder is most often
    /// the running hash reading bytes just received, which is quick. `None`
    /// when it is still held then (another send of the same bytes).
    pub async fn lease_for_send(&self, id: &UploadId, name: &str) -> Result<Option<Lease>> {
        let deadline = tokio::time::Instant::now() + SEND_PATIENCE;
        let mut step = WAIT_FIRST;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(lease) = self.lease(id, name).await? {
                return Ok(Some(lease));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                _ = pause(changed, &mut step) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Counts a chunk send as in flight until the guard is dropped.
    pub fn send_begins(&self) -> SendInFlight {
        self.sends.fetch_add(1, Ordering::Relaxed);
        SendInFlight(self.sends.clone())
    }

    /// Advances `session`'s running hash in the background (owned by the
    /// process's tracker); a failure is logged (the merge hashes the rest).
    pub fn advance_in_background(&self, session: UploadSession) {
        let hash = self.clone();
        self.background.spawn(async move {
            if let Err(e) = hash.advance(&session).await {
                tracing::warn!(upload = %session.id, error = %e, "advancing the running hash failed; the merge hashes the rest");
            }
        });
    }

    /// Advances `session`'s running hash as far as the received segments
    /// allow. Returns at once when another process is advancing it (that one
    /// picks up what arrives meanwhile). Errors leave the saved progress
    /// where it was.
    #[tracing::instrument(name = "advance hash", skip_all, fields(upload = %session.id))]
    pub async fn advance(&self, session: &UploadSession) -> Result<()> {
        let id = &session.id;
        loop {
            let Some(lease) = self.lease(id, HASH_LEASE).await? else { return Ok(()) };
            let outcome = self.advance_under(session, &lease).await;
            lease.release().await;
            let stopped_at = outcome?;
            // A segment marked while we held the lease found it taken and left
            // the work to us; a writer still holding the segment we stopped at
            // will call us again once it is through.
            let Some(next) = stopped_at else { return Ok(()) };
            let Some(staged) = self.segments.segment_at(id, next).await? else { return Ok(()) };
            if self.leases.leases_held(id, &segment_lease(staged.segment), now_ms()).await? > 0 {
                return Ok(());
            }
        }
    }

    /// Hashes segments from the saved progress on while they are present
    /// and free; returns the offset it stopped at (`None` when all is hashed
    /// or the lease was lost).
    async fn advance_under(&self, session: &UploadSession, lease: &Lease) -> Result<Option<u64>> {
        let id = &session.id;
        let mut progress = self.leases.hash_progress(id).await?;
        let mut hasher = restore(&progress)?;
        // A size learned since the session was read only lets it go on.
        while session.size.is_none_or(|size| progress.next < size) {
            if self.background.stopping() {
                // Shutting down: what is saved stays; the merge hashes the rest.
                tracing::info!(next = progress.next, "shutting down: the running hash stops here");
                return Ok(None);
            }
            let at = progress.next;
            let Some(seen) = self.segments.segment_at(id, at).await? else { return Ok(Some(at)) };
            let Some(held) = self.lease(id, &segment_lease(seen.segment)).await? else { return Ok(Some(at)) };
            // Under its lease, as it is now (a send again may have replaced
            // it): the bytes kept when it was marked under that key are the
            // staged ones; anything else is read back.
            let staged = match self.segments.segment_at(id, at).await {
                Ok(Some(staged)) if staged.segment == seen.segment => staged,
                other => {
                    held.release().await;
                    other?;
                    return Ok(Some(at));
                }
            };
            // The segment's lease is held until the progress past it is
            // saved: a send of the same bytes that got the lease in between
            // would read the old progress and replace bytes already hashed.
            let step = async {
                let hashed = match self.hash_segment(hasher.clone(), id, &staged).await? {
                    Ok(hasher) => hasher,
                    Err(missing) => {
                        return Err(Error::internal("hashing a segment", format!("{missing} is not staged")));
                    }
                };
                let next = HashProgress { next: staged.segment.end(), state: hashed.save() };
                let saved = self.leases.save_hash_progress(id, lease.holder(), &next, now_ms()).await?;
                Ok((hashed, next, saved))
            }
            .await;
            held.release().await;
            let saved;
            (hasher, progress, saved) = step?;
            if !saved {
                tracing::info!("hash lease lost; another process goes on");
                return Ok(None);
            }
            self.changed.notify_waiters();
        }
        Ok(None)
    }

    /// Feeds the bytes of `staged` to `hasher`: from memory when they were
    /// kept when it was marked, else read back. `Ok(Err(what))` when they are
    /// no longer staged.
    async fn hash_segment(
        &self,
        hasher: ContentHasher,
        id: &UploadId,
        staged: &Staged,
    ) -> Result<std::result::Result<ContentHasher, String>> {
        let Staged { segment, key } = staged;
        let (stream, batch) = match self.take_landed(id, segment.start, key) {
            Some(pieces) => in_memory(pieces),
            None => match self.staging.read_segment(&Path::from(key.as_str()), *segment).await? {
                Some(stream) => (stream, HASH_BATCH),
                None => return Ok(Err(describe(*segment))),
            },
        };
        Ok(Ok(hash_stream(hasher, stream, segment.len, batch, &self.sends).await?))
    }

    /// Waits until no byte of upload `id` is being written: the merge starts
    /// only once every send that began before `complete` is through (a writer
    /// that died stops counting when its lease runs out).
    pub async fn wait_for_writers(&self, id: &UploadId) -> Result<()> {
        let mut step = WAIT_FIRST;
        loop {
            // Listening before looking: a lease given back in between still wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.leases.leases_held(id, SEGMENT_LEASE_PREFIX, now_ms()).await? == 0 {
                return Ok(());
            }
            pause(changed, &mut step).await;
        }
    }

    /// The running hash's progress once no advancer is at work: waits while
    /// one holds the lease and keeps saving progress (it finishes sooner than
    /// starting over would); takes what was saved once it is done, or once it
    /// has saved nothing for [`ADVANCER_WAIT`] (stalled, or died holding it).
    pub async fn settled_progress(&self, id: &UploadId) -> Result<HashProgress> {
        let mut progress = self.leases.hash_progress(id).await?;
        let mut moved = tokio::time::Instant::now();
        let mut step = WAIT_FIRST;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.leases.leases_held(id, HASH_LEASE, now_ms()).await? == 0 || moved.elapsed() >= ADVANCER_WAIT {
                break;
            }
            pause(changed, &mut step).await;
            let now = self.leases.hash_progress(id).await?;
            if now.next != progress.next {
                moved = tokio::time::Instant::now();
            }
            progress = now;
        }
        self.leases.hash_progress(id).await
    }

    /// The digests of a fully received upload `id` from its segments
    /// `staged` (in order, covering it), going on from `progress`: only the
    /// segments from `progress.next` on are read, from where they are
    /// staged. `Ok(Err(what))` when some bytes are no longer staged.
    pub async fn finish_hash(
        &self,
        id: &UploadId,
        staged: &[Staged],
        progress: &HashProgress,
    ) -> Result<std::result::Result<Digests, String>> {
        let mut hasher = restore(progress)?;
        for s in staged.iter().filter(|s| s.segment.end() > progress.next) {
            // No sends are left (the merge waited for them): kept bytes are the marked ones.
            hasher = match self.hash_segment(hasher, id, s).await? {
                Ok(hasher) => hasher,
                Err(missing) => return Ok(Err(missing)),
            };
        }
        Ok(Ok(hasher.finish()))
    }
}

/// How the hash names bytes it cannot find.
fn describe(segment: Segment) -> String {
    crate::upload::receive::describe(segment, None)
}

/// Waits for `changed` (a change in this process) or `step` (one in another
/// process), whichever comes first; the next step is twice as long, up to
/// [`WAIT_MAX`].
async fn pause(changed: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>, step: &mut Duration) {
    tokio::select! {
        _ = changed => {}
        _ = tokio::time::sleep(*step) => {}
    }
    *step = (*step * 2).min(WAIT_MAX);
}

/// The hasher a saved progress holds.
pub fn restore(progress: &HashProgress) -> Result<ContentHasher> {
    if progress.next == 0 {
        return Ok(ContentHasher::new());
    }
    ContentHasher::restore(&progress.state)
        .ok_or_else(|| Error::internal("resuming a running hash", "the saved hasher state is corrupt"))
}

/// Kept pieces as a stream, hashed in one blocking call (they are all here).
fn in_memory(pieces: Vec<Bytes>) -> (crate::stores::objects::ByteStream, usize) {
    (futures::stream::iter(pieces.into_iter().map(Ok)).boxed(), usize::MAX)
}

/// Feeds `stream` (exactly `len` bytes) to `hasher`, `batch` bytes per call
/// on the blocking pool, reading the next batch meanwhile.
async fn hash_stream(
    hasher: ContentHasher,
    mut stream: crate::stores::objects::ByteStream,
    len: u64,
    batch_size: usize,
    sends: &Arc<AtomicUsize>,
) -> Result<ContentHasher> {
    let join = |r: std::result::Result<ContentHasher, tokio::task::JoinError>| {
        r.map_err(|e| Error::internal("hashing a chunk", e))
    };
    let mut idle = Some(hasher);
    let mut hashing: Option<tokio::task::JoinHandle<ContentHasher>> = None;
    let mut batch: Vec<Bytes> = Vec::new();
    let (mut batched, mut got) = (0usize, 0u64);
    loop {
        let piece = stream.next().await.transpose()?;
        let end = piece.is_none();
        if let Some(p) = piece {
            got += p.len() as u64;
            batched += p.len();
            batch.push(p);
        }
        if (end && !batch.is_empty()) || batched >= batch_size {
            let pieces = std::mem::take(&mut batch);
            batched = 0;
            let mut hasher = match hashing.take() {
                Some(h) => join(h.await)?,
                None => idle.take().expect("a hasher is idle when none is at work"),
            };
            let sends = sends.clone();
            hashing = Some(tokio::task::spawn_blocking(move || {
                if sends.load(Ordering::Relaxed) == 0 {
                    hasher.update_on_two_threads(&pieces);
                } else {
                    pieces.iter().for_each(|p| hasher.update(p));
                }
                hasher
            }));
        }
        if end {
            break;
        }
    }
    let hasher = match hashing {
        Some(h) => join(h.await)?,
        None => idle.expect("a hasher is idle when none is at work"),
    };
    if got != len {
        return Err(Error::internal("hashing a chunk", format!("{got} bytes staged, {len} expected")));
    }
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(budget: &KeepBudget, bytes: &'static [u8]) -> KeptPieces {
        let mut pieces = KeptPieces::new(budget);
        assert!(pieces.push(&Bytes::from_static(bytes)));
        pieces
    }

    /// A kept chunk is taken once, by its upload and index; a send again
    /// replaces it; its bytes count against the budget until they are used.
    #[test]
    fn landed_chunks_are_taken_once_and_replaced_by_a_send_again() {
        let budget = KeepBudget::new(10);
        let (a, b) = (UploadId::generate(), UploadId::generate());
        let mut landed = Landed::default();
        landed.keep(&a, 0, "k0", kept(&budget, b"abc"));
        landed.keep(&b, 0, "k0", kept(&budget, b"de"));
        assert_eq!(budget.held(), 5);
        landed.keep(&a, 0, "k1", kept(&budget, b"xyz!"));
        assert_eq!(budget.held(), 6, "the earlier send's bytes are given back");
        let (key, pieces) = landed.take(&a, 0).unwrap();
        assert_eq!((key.as_str(), pieces.into_pieces().concat()), ("k1", b"xyz!".to_vec()));
        assert!(landed.take(&a, 0).is_none());
        assert_eq!(budget.held(), 2);
        // Past the budget nothing more is kept.
        let mut big = KeptPieces::new(&budget);
        assert!(big.push(&Bytes::from_static(b"12345678")));
        assert!(!big.push(&Bytes::from_static(b"9")));
        drop(big);
        drop(landed);
        assert_eq!(budget.held(), 0);
    }
}
