//! The BackupJob: copy a stored file to the backup store (Aliyun OSS, S3,
//! Garage…) with bounded memory, and record the outcome on its row.
//!
//! Idempotent: the backup key is the file's content-addressed key, so a
//! repeated copy writes the same object. Failures are recorded (`failed`,
//! attempts + 1) and returned as errors so the queue retries with backoff; the
//! clean-up job also re-enqueues backups that stayed `pending` or `failed`.

use apalis::prelude::{BoxDynError, Data};
use object_store::path::Path;
use shared::domain::error::Result;
use shared::files;
use shared::stores::queue::BackupJob;

use crate::MergeContext;

/// The apalis handler.
pub async fn handle(job: BackupJob, ctx: Data<MergeContext>) -> Result<(), BoxDynError> {
    backup(&ctx, &job).await.map_err(|e| {
        tracing::warn!(file = job.file_id, error = %e, "backup attempt failed; it will be retried");
        Box::new(e) as BoxDynError
    })
}

/// Copies one file to the backup store.
#[tracing::instrument(name = "back up file", skip(ctx), fields(file = job.file_id, mb_s))]
pub async fn backup(ctx: &MergeContext, job: &BackupJob) -> Result<()> {
    let b = &ctx.backends;
    let Some(backup) = &b.backup else {
        tracing::info!("no backup store configured; nothing to do");
        return Ok(());
    };
    let Some(stored) = b.repo.stored_file_by_id(job.file_id).await? else {
        tracing::info!("file is gone; nothing to back up");
        return Ok(());
    };
    if stored.backup_state == "done" {
        return Ok(());
    }
    let key = Path::from(stored.storage_key.as_str());
    // The key is recorded before the copy starts, so a delete of the last
    // reference while the copy runs knows which backup object to remove.
    b.repo.set_backup(job.file_id, "pending", Some(key.as_ref()), shared::now()).await?;
    let started = std::time::Instant::now();
    match backup.copy_from(&*b.files, &key, &key).await {
        Ok(bytes) => {
            shared::runtime::crash::point("backup.after_copy");
            let secs = started.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { bytes as f64 / 1e6 / secs } else { 0.0 };
            tracing::Span::current().record("mb_s", rate.round());
            if b.repo.stored_file_by_id(job.file_id).await?.is_none() {
                // Deleted while we copied: the delete may have come before our
                // object existed, so remove what we wrote.
                files::delete_quietly(&**backup, &key).await;
                tracing::info!("file deleted during its backup; the copy is removed");
                return Ok(());
            }
            b.repo.set_backup(job.file_id, "done", Some(key.as_ref()), shared::now()).await?;
            shared::runtime::metrics::BACKUPS_DONE.inc();
            tracing::info!(bytes, seconds = secs, "backed up");
            Ok(())
        }
        Err(e) => {
            shared::runtime::metrics::BACKUPS_FAILED.inc();
            b.repo.set_backup(job.file_id, "failed", None, shared::now()).await?;
            Err(e)
        }
    }
}
