//! The job handlers: each calls one use case and maps its answer to apalis.
//! An error is transient (a backend away) and retried: by the worker's
//! retry policy, then by the queue; the clean-up runs again at its next tick.

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use std::sync::Arc;

use shared::Services;
use shared::stores::queue::{BackupJob, MergeJob};

/// The MergeJob: turn a fully received upload into a stored, verified file.
pub async fn merge(job: MergeJob, services: Data<Arc<Services>>) -> Result<(), BoxDynError> {
    services.uploads.merge(&job).await.map_err(|e| {
        tracing::warn!(upload = %job.upload_id, error = %e, "merge attempt failed; it will be retried");
        Box::new(e) as BoxDynError
    })
}

/// The BackupJob: copy a stored file to the backup store.
pub async fn backup(job: BackupJob, services: Data<Arc<Services>>) -> Result<(), BoxDynError> {
    services.files.back_up(&job).await.map_err(|e| {
        tracing::warn!(file = job.file_id, error = %e, "backup attempt failed; it will be retried");
        Box::new(e) as BoxDynError
    })
}

/// The scheduled clean-up (apalis-cron, `PAN_SWEEP_SCHEDULE`).
pub async fn clean_up(_tick: Tick, services: Data<Arc<Services>>) -> Result<(), BoxDynError> {
    services.clean_up().await.map_err(|e| {
        tracing::warn!(error = %e, "clean-up failed; it runs again at the next tick");
        Box::new(e) as BoxDynError
    })
}
