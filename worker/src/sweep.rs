//! The scheduled clean-up (apalis-cron, `PAN_SWEEP_SCHEDULE`). Every step is
//! idempotent, so several worker processes may run it at once:
//! - uploads idle past the TTL lose their session and staged chunks;
//! - staged chunks that no live upload owns are deleted (Redis expires
//!   sessions by itself; this is where their chunks go);
//! - temporary merge files older than a day (left by killed workers) go,
//!   and so do multipart uploads older than a day that were never
//!   finished (their parts are bytes an S3 store keeps but lists nowhere);
//! - backups still `pending` or `failed` are enqueued again;
//! - uploads left `merging` without a heartbeat (their job was lost) get
//!   their merge enqueued again;
//! - trash items older than `PAN_TRASH_DAYS` are deleted for good;
//! - stored files nothing refers to (left by a killed merge) are scrubbed;
//! - expired tokens and old finished job records are dropped.

use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use shared::domain::error::Result;
use shared::domain::{UploadId, UploadState};
use shared::stores::objects::{self, ByteStore};
use shared::stores::queue::BackupJob;

use crate::MergeContext;

/// The apalis-cron handler.
pub async fn handle(_tick: Tick, ctx: Data<MergeContext>) -> Result<(), BoxDynError> {
    sweep(&ctx).await.map_err(|e| {
        tracing::warn!(error = %e, "clean-up failed; it runs again at the next tick");
        Box::new(e) as BoxDynError
    })
}

/// Runs every clean-up step once.
#[tracing::instrument(name = "clean up", skip(ctx), fields(expired, orphans, stale_uploads, restarted, backups, trash))]
pub async fn sweep(ctx: &MergeContext) -> Result<()> {
    let b = &ctx.backends;
    let now = shared::now();
    let span = tracing::Span::current();

    let idle = b.uploads.idle_since(now - ctx.settings.upload_ttl as i64, 1000).await?;
    for id in &idle {
        // A `complete` may have restarted it since it was listed.
        if b.uploads.delete_unless_merging(id).await? {
            b.staging.delete_prefix(&objects::upload_prefix(id)).await?;
        }
    }
    span.record("expired", idle.len());

    let mut orphans = 0;
    for prefix in b.staging.list_prefixes().await? {
        let name = prefix.as_ref().to_owned();
        let Ok(id) = UploadId::parse(&name) else { continue };
        let live = matches!(b.uploads.get(&id).await?, Some(s) if s.state != UploadState::Done);
        if live {
            continue;
        }
        // No live session: a chunk still in flight for it will be refused
        // when it is recorded, and removes its own object then.
        orphans += b.staging.delete_prefix(&prefix).await?;
    }
    span.record("orphans", orphans);

    for dir in [b.files.scratch_dir(), b.staging.scratch_dir(), &ctx.settings.data_dir.join("tmp")] {
        remove_old_files(dir, Duration::from_secs(86_400));
    }
    // Multipart uploads a killed process left unfinished: a day is more
    // than any chunk, merge or copy takes. A store away now is tried again
    // at the next tick; the rest of the clean-up goes on.
    let mut stale = 0;
    for store in [&b.staging, &b.files].into_iter().chain(b.backup.as_ref()) {
        match store.abort_stale_uploads(Duration::from_secs(86_400)).await {
            Ok(n) => stale += n,
            Err(e) => tracing::warn!(error = %e, "aborting unfinished multipart uploads failed"),
        }
    }
    span.record("stale_uploads", stale);

    // A merge whose heartbeat stopped has no job running: enqueue it again.
    // Touching it first keeps the next sweeps from enqueueing it once more
    // while the new job waits in the queue; merges are idempotent anyway.
    let mut restarted = 0;
    for id in b.uploads.stale_merges(now - ctx.settings.merge_stall_secs as i64, 1000).await? {
        if b.uploads.touch_merge(&id, now).await? {
            tracing::warn!(upload = %id, "merge without a heartbeat: enqueueing it again");
            b.jobs.merges.push(shared::stores::queue::MergeJob { upload_id: id.to_string() }).await?;
            restarted += 1;
        }
    }
    span.record("restarted", restarted);

    let mut requeued = 0;
    if b.backup.is_some() {
        // Give a backup in flight a minute before calling it lost.
        for file_id in b.repo.backups_due(now - 60, 1000).await? {
            b.jobs.backups.push(BackupJob { file_id }).await?;
            requeued += 1;
        }
    }
    span.record("backups", requeued);

    let trash = shared::tree::empty_expired(b, ctx.settings.trash_days * 86_400, 1000).await?;
    span.record("trash", trash);

    let scrubbed = scrub(ctx).await?;

    b.repo.delete_expired_tokens(now).await?;
    b.jobs.vacuum(Duration::from_secs(7 * 86_400)).await;
    tracing::info!(expired = idle.len(), orphans, backups = requeued, trash, scrubbed, "clean-up done");
    Ok(())
}

/// Deletes stored files that no `files` row points at and that are older
/// than a day (a merge killed between storing and recording its file leaves
/// one; the day keeps clear of merges still on their way to the commit).
/// It lists the whole store, so it runs only in the hour after 03:00 UTC,
/// unless `PAN_SCRUB_ALWAYS` asks for every sweep.
async fn scrub(ctx: &MergeContext) -> Result<usize> {
    let hour = (shared::now() / 3600) % 24;
    if hour != 3 && !ctx.settings.scrub_always {
        return Ok(0);
    }
    let b = &ctx.backends;
    let mut removed = scrub_store(&*b.files, |key| async move { b.repo.is_referenced(&key).await }).await?;
    // Backup objects of files deleted while their copy ran, or before the
    // key was recorded.
    if let Some(backup) = &b.backup {
        removed += scrub_store(&**backup, |key| async move { b.repo.is_backup_referenced(&key).await }).await?;
    }
    Ok(removed)
}

/// Deletes the objects of `store` older than a day that `referenced` says
/// no row points at.
async fn scrub_store<F, Fut>(store: &dyn ByteStore, referenced: F) -> Result<usize>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    use futures::TryStreamExt;
    let cutoff = shared::now() - 86_400;
    let mut listing = store.list(None);
    let mut removed = 0;
    while let Some(meta) = listing.try_next().await? {
        let key = meta.key.as_ref();
        if meta.last_modified > cutoff || referenced(key.to_owned()).await? {
            continue;
        }
        store.delete(&meta.key).await?;
        removed += 1;
        tracing::warn!(key, "deleted an unreferenced object");
    }
    Ok(removed)
}

/// Removes files older than `age` from a directory (not recursive).
fn remove_old_files(dir: &std::path::Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|d| d > age);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
