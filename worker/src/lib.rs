//! pan's background jobs, run by the `worker` binary (fleet) or inside the
//! `api` process (embedded).
//!
//! Layout:
//! - [`merge`]: the MergeJob handler: assemble the chunks into one file,
//!   verify its SHA-1, store it, record it, drop the chunks.
//! - [`assemble`]: the blocking part of a merge: preallocate, memory-map,
//!   copy chunks from several threads while hashing in order.
//! - [`run`]: the apalis worker pool on whichever queue the deployment uses.

pub mod assemble;
pub mod merge;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::*;
use shared::backends::Backends;
use shared::config::Settings;
use shared::jobs::MergeQueue;

/// What a merge job can reach.
#[derive(Clone)]
pub struct MergeContext {
    /// Every storage backend.
    pub backends: Backends,
    /// The settings in effect.
    pub settings: Arc<Settings>,
}

/// How often an idle worker asks the queue for work.
const POLL: Duration = Duration::from_millis(250);

/// The worker pool stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("merge workers: {0}")]
pub struct RunError(String);

/// Runs merge workers (`settings.worker_jobs` at a time) until `stop`
/// resolves; merges in flight finish first. `name` is made unique per process.
pub async fn run(
    backends: Backends,
    settings: Arc<Settings>,
    name: &str,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let base = format!("{name}-{}-{}", hostname(), std::process::id());
    let ctx = MergeContext { backends: backends.clone(), settings: settings.clone() };
    let jobs = settings.worker_jobs as usize;
    tracing::info!(worker = %base, jobs, "merge workers starting");
    let monitor = match backends.merges {
        MergeQueue::Sqlite(storage) => Monitor::new().register(move |restarts| {
            WorkerBuilder::new(format!("{base}-{restarts}"))
                .backend(storage.clone().poll_with_interval(POLL))
                .data(ctx.clone())
                .concurrency(jobs)
                .retry(retry_policy())
                .catch_panic()
                .enable_tracing()
                .parallelize(tokio::spawn)
                .build(merge::handle)
        }),
        MergeQueue::Redis(storage) => Monitor::new().register(move |restarts| {
            WorkerBuilder::new(format!("{base}-{restarts}"))
                .backend(storage.clone().poll_with_interval(POLL))
                .data(ctx.clone())
                .concurrency(jobs)
                .retry(retry_policy())
                .catch_panic()
                .enable_tracing()
                .parallelize(tokio::spawn)
                .build(merge::handle)
        }),
    };
    monitor
        .shutdown_timeout(Duration::from_secs(600))
        .run_with_signal(async move {
            stop.await;
            Ok(())
        })
        .await
        .map_err(|e| RunError(e.to_string()))
}

/// Transient failures (I/O, a backend away) are retried in-process with
/// exponential backoff before the queue's own retries take over.
fn retry_policy() -> BackoffRetryPolicy<apalis::layers::retry::backoff::ExponentialBackoff> {
    let backoff =
        ExponentialBackoffMaker::new(Duration::from_millis(500), Duration::from_secs(30), 0.5, HasherRng::default())
            .expect("valid backoff bounds")
            .make_backoff();
    RetryPolicy::retries(3).with_backoff(backoff)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into())
}
