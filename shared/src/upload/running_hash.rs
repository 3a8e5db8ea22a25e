//! The running hash: an upload's SHA-1 and SHA-256 follow its chunks in.
//!
//! Whenever chunk k is received and chunks 0..k-1 are hashed, some process
//! (the api that received it, any other api process, or the merge) advances
//! the hash over k and every following chunk already present, and saves the
//! hasher's state with the chunk state. Two kinds of lease keep this safe
//! across processes:
//! - the [`HASH_LEASE`]: one advancer per upload; its progress is saved only
//!   while the lease is held, so a process that lost it (stalled, killed)
//!   cannot overwrite a newer state;
//! - a [`chunk_lease`] per index: one writer of a chunk at a time (a second
//!   send is refused with `CHUNK_BUSY`), and the advancer takes it too while
//!   it reads the chunk, so it never hashes bytes being replaced.
//!
//! Chunks below the saved `next` never change again: a later send of one
//! is compared with the stored bytes and refused (`CHUNK_CONFLICT`) when it
//! differs. A crash loses at most the chunk being hashed; at `complete` the
//! merge hashes only what is left.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;

use crate::domain::error::{Error, Result};
use crate::domain::hashing::{ContentHasher, Digests};
use crate::domain::{UploadId, UploadSession};
use std::sync::Arc;

use crate::stores::objects::Store;
use crate::stores::uploads::{ChunkMap, HashLeases};
use crate::stores::uploads::{HASH_LEASE, HashProgress, chunk_lease};

/// How long a lease lasts unless renewed: a process that dies holding one
/// blocks its chunk (or the hash) this long at most.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often a held lease is renewed.
const LEASE_RENEW: Duration = Duration::from_secs(5);
/// How often the merge looks again for writers or an advancer to finish.
const WAIT_STEP: Duration = Duration::from_millis(20);
/// How long the merge waits for an advancer that saves no progress before
/// hashing what is left itself.
const ADVANCER_WAIT: Duration = Duration::from_secs(3);
/// Bytes hashed per blocking call.
const HASH_BATCH: usize = 1 << 20;

/// Chunk sends this process is receiving now. While there are any, hashing
/// keeps to one thread (the CPU is the requests'); once there are none
/// (after `complete`, in a worker) the two digests run on two threads.
static SENDS_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a chunk send as in flight until dropped.
pub struct SendInFlight(());

impl SendInFlight {
    /// A send begins.
    pub fn begin() -> Self {
        SENDS_IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SendInFlight(())
    }
}

impl Drop for SendInFlight {
    fn drop(&mut self) {
        SENDS_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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
}

impl Lease {
    /// Takes the lease `name` of upload `id`; `None` when another holder has it.
    pub async fn take(b: &Arc<dyn HashLeases>, id: &UploadId, name: &str) -> Result<Option<Lease>> {
        let holder = crate::random_hex(12);
        if !b.acquire_lease(id, name, &holder, now_ms(), LEASE_TTL.as_millis() as i64).await? {
            return Ok(None);
        }
        let renewer = {
            let (b, id, name, holder) = (b.clone(), id.clone(), name.to_owned(), holder.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    let ttl = LEASE_TTL.as_millis() as i64;
                    match b.acquire_lease(&id, &name, &holder, now_ms(), ttl).await {
                        Ok(true) => {}
                        Ok(false) => return, // lost: whoever holds it now goes on
                        Err(e) => tracing::warn!(error = %e, lease = %name, "renewing a lease failed; retrying"),
                    }
                }
            })
        };
        Ok(Some(Lease { b: b.clone(), id: id.clone(), name: name.to_owned(), holder, renewer: Some(renewer) }))
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
            tokio::spawn(async move {
                let _ = b.release_lease(&id, &name, &holder).await;
            });
        }
    }
}

/// The running hash of uploads: their chunk state and staged bytes.
#[derive(Clone)]
pub(crate) struct RunningHash {
    /// Leases and the saved progress.
    pub(crate) leases: Arc<dyn HashLeases>,
    /// Where each received chunk is staged.
    pub(crate) chunks: Arc<dyn ChunkMap>,
    pub(crate) staging: Store,
}

impl RunningHash {
    /// Advances `session`'s running hash as far as the received chunks allow.
    /// Returns at once when another process is advancing it (that one picks up
    /// what arrives meanwhile). Errors leave the saved progress where it was.
    #[tracing::instrument(name = "advance hash", skip_all, fields(upload = %session.id))]
    pub async fn advance(&self, session: &UploadSession) -> Result<()> {
        let id = &session.id;
        loop {
            let Some(lease) = Lease::take(&self.leases, id, HASH_LEASE).await? else { return Ok(()) };
            let outcome = self.advance_under(session, &lease).await;
            lease.release().await;
            let stopped_at = outcome?;
            // A chunk marked while we held the lease found it taken and left
            // the work to us; a writer still holding the chunk we stopped at
            // will call us again once it is through.
            let Some(next) = stopped_at else { return Ok(()) };
            if self.chunks.chunk(id, next).await?.is_none()
                || self.leases.leases_held(id, &chunk_lease(next), now_ms()).await? > 0
            {
                return Ok(());
            }
        }
    }

    /// Hashes chunks from the saved progress on while they are present and
    /// free; returns the index it stopped at (`None` when all are hashed or
    /// the lease was lost).
    async fn advance_under(&self, session: &UploadSession, lease: &Lease) -> Result<Option<u64>> {
        let (id, plan) = (&session.id, &session.plan);
        let mut progress = self.leases.hash_progress(id).await?;
        let mut hasher = restore(&progress)?;
        while progress.next < plan.chunk_count {
            let k = progress.next;
            let Some(key) = self.chunks.chunk(id, k).await? else { return Ok(Some(k)) };
            let Some(chunk) = Lease::take(&self.leases, id, &chunk_lease(k)).await? else { return Ok(Some(k)) };
            let hashed = async {
                let stream = self
                    .staging
                    .read_chunk(&Path::from(key), plan, k)
                    .await?
                    .ok_or_else(|| Error::internal("hashing a chunk", format!("chunk {k} is not staged")))?;
                hash_stream(hasher.clone(), stream, plan.chunk_len(k)).await
            }
            .await;
            chunk.release().await;
            hasher = hashed?;
            progress = HashProgress { next: k + 1, state: hasher.save() };
            if !self.leases.save_hash_progress(id, lease.holder(), &progress, now_ms()).await? {
                tracing::info!("hash lease lost; another process goes on");
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// The hasher a saved progress holds.
    /// Feeds `stream` (which must hold exactly `len` bytes) to `hasher`, in
    /// batches hashed on the blocking pool while the next batch is read.
    /// Waits until no chunk of upload `id` is being written: the merge starts
    /// only once every send that began before `complete` is through (a writer
    /// that died stops counting when its lease runs out).
    pub async fn wait_for_writers(&self, id: &UploadId) -> Result<()> {
        while self.leases.leases_held(id, "chunk:", now_ms()).await? > 0 {
            tokio::time::sleep(WAIT_STEP).await;
        }
        Ok(())
    }

    /// The running hash's progress once no advancer is at work: waits while
    /// one holds the lease and keeps saving progress (it finishes sooner than
    /// starting over would); takes what was saved once it is done, or once it
    /// has saved nothing for [`ADVANCER_WAIT`] (stalled, or died holding it).
    pub async fn settled_progress(&self, id: &UploadId) -> Result<HashProgress> {
        let mut progress = self.leases.hash_progress(id).await?;
        let mut moved = tokio::time::Instant::now();
        while self.leases.leases_held(id, HASH_LEASE, now_ms()).await? > 0 && moved.elapsed() < ADVANCER_WAIT {
            tokio::time::sleep(WAIT_STEP).await;
            let now = self.leases.hash_progress(id).await?;
            if now.next != progress.next {
                moved = tokio::time::Instant::now();
            }
            progress = now;
        }
        self.leases.hash_progress(id).await
    }

    /// The digests of a fully received upload laid out by `plan`, going on
    /// from `progress`: only its chunks from `progress.next` on are read, from
    /// where they are staged (`keys`, one per index, in order). `Ok(Err(k))`
    /// when chunk `k` is no longer staged.
    pub async fn finish_hash(
        &self,
        plan: &crate::domain::ChunkPlan,
        keys: &[String],
        progress: &HashProgress,
    ) -> Result<std::result::Result<Digests, u64>> {
        let mut hasher = restore(progress)?;
        for (k, key) in keys.iter().enumerate().skip(progress.next as usize) {
            let k = k as u64;
            let Some(stream) = self.staging.read_chunk(&Path::from(key.as_str()), plan, k).await? else {
                return Ok(Err(k));
            };
            hasher = hash_stream(hasher, stream, plan.chunk_len(k)).await?;
        }
        Ok(Ok(hasher.finish()))
    }
}

pub fn restore(progress: &HashProgress) -> Result<ContentHasher> {
    if progress.next == 0 {
        return Ok(ContentHasher::new());
    }
    ContentHasher::restore(&progress.state)
        .ok_or_else(|| Error::internal("resuming a running hash", "the saved hasher state is corrupt"))
}

async fn hash_stream(
    hasher: ContentHasher,
    mut stream: crate::stores::objects::ByteStream,
    len: u64,
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
        if (end && !batch.is_empty()) || batched >= HASH_BATCH {
            let pieces = std::mem::take(&mut batch);
            batched = 0;
            let mut hasher = match hashing.take() {
                Some(h) => join(h.await)?,
                None => idle.take().expect("a hasher is idle when none is at work"),
            };
            hashing = Some(tokio::task::spawn_blocking(move || {
                if SENDS_IN_FLIGHT.load(std::sync::atomic::Ordering::Relaxed) == 0 {
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
