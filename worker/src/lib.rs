//! pan's background jobs, run by the `worker` binary (fleet) or inside the
//! `api` process (embedded).
//!
//! A thin adapter, like the api: each job handler calls one use case of
//! [`shared::Services`] (the merge, the backup, the clean-up) and maps its
//! answer to apalis's retry or done.
//!
//! Layout:
//! - [`jobs`]: the three handlers: MergeJob, BackupJob, the cron tick.
//! - [`run`]: the apalis worker pools on whichever queues the deployment uses.

pub mod jobs;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::*;
use apalis_cron::CronScheduler;
use shared::Services;
use shared::runtime::config::Settings;
use shared::stores::queue::Queue;

/// How often an idle worker asks the queue for work.
const POLL: Duration = Duration::from_millis(50);
/// How long a queue worker whose backend failed waits before it starts again.
const RESTART_PAUSE: Duration = Duration::from_millis(500);

/// Wakes an idle worker every `POLL`. apalis-core 1.0's `IntervalStrategy`
/// arms its next delay without polling it, so no wake-up is registered and
/// an idle worker only looks again at its next heartbeat (up to 2 s later,
/// measured as 0.25–1.7 s pickups); this one polls each new delay at once.
struct Ticker {
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Ticker {
    fn new() -> Self {
        Ticker { sleep: None }
    }
}

impl apalis_core::backend::ext::poll_strategy::PollStrategy for Ticker {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &apalis_core::backend::ext::poll_strategy::PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        use std::future::Future;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(POLL)));
        if sleep.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        let mut next = Box::pin(tokio::time::sleep(POLL));
        // Registers the waker for the next tick (Pending: fine).
        let _ = next.as_mut().poll(cx);
        self.sleep = Some(next);
        std::task::Poll::Ready(Some(()))
    }
}

/// The worker pool stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("workers: {0}")]
pub struct RunError(String);

/// Registers a queue worker on whichever backend `$queue` is. Its jobs run
/// as tasks of their own (`parallelize(tokio::spawn)`); they need no tracker
/// of ours: the worker counts them (`WorkerContext::task_count`) and its
/// future ends on shutdown only once none is left, and the monitor waits
/// for every worker's future (`shutdown_timeout`), so [`run`] returns after
/// the last job.
macro_rules! register_queue {
    ($monitor:expr, $queue:expr, $name:expr, $ctx:expr, $jobs:expr, $handler:path) => {{
        let (name, ctx, jobs) = ($name, $ctx.clone(), $jobs);
        match $queue.clone() {
            Queue::Sqlite(storage) => $monitor.register(move |restarts| {
                WorkerBuilder::new(format!("{name}-{restarts}"))
                    .backend(storage.clone().poll_with_strategy(Ticker::new()).before_start(restart_pause(restarts)))
                    .data(ctx.clone())
                    .concurrency(jobs)
                    .retry(retry_policy())
                    .catch_panic()
                    .enable_tracing()
                    .parallelize(tokio::spawn)
                    .build($handler)
            }),
            Queue::Redis(storage) => $monitor.register(move |restarts| {
                WorkerBuilder::new(format!("{name}-{restarts}"))
                    .backend(storage.clone().poll_with_strategy(Ticker::new()).before_start(restart_pause(restarts)))
                    .data(ctx.clone())
                    .concurrency(jobs)
                    .retry(retry_policy())
                    .catch_panic()
                    .enable_tracing()
                    .parallelize(tokio::spawn)
                    .build($handler)
            }),
        }
    }};
}

/// Runs the merge workers (`settings.worker_jobs` at a time), the backup
/// worker and the scheduled clean-up until `stop` resolves; jobs in flight
/// finish first. `name` is made unique per process.
pub async fn run(
    services: Arc<Services>,
    settings: Arc<Settings>,
    name: &str,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let base = format!("{name}-{}-{}", hostname(), std::process::id());
    let ctx = services.clone();
    let (merges, backups) = services.job_sources();
    let schedule =
        cron::Schedule::from_str(&settings.sweep_schedule).map_err(|e| RunError(format!("PAN_SWEEP_SCHEDULE: {e}")))?;
    tracing::info!(worker = %base, jobs = settings.worker_jobs, "workers starting");

    let monitor = Monitor::new();
    let monitor =
        register_queue!(monitor, merges, format!("{base}-merge"), ctx, settings.worker_jobs as usize, jobs::merge);
    let monitor = register_queue!(monitor, backups, format!("{base}-backup"), ctx, 2, jobs::backup);
    let sweep_ctx = ctx.clone();
    let sweep_name = format!("{base}-sweep");
    let monitor = monitor.register(move |restarts| {
        WorkerBuilder::new(format!("{sweep_name}-{restarts}"))
            .backend(CronScheduler::new(schedule.clone()))
            .data(sweep_ctx.clone())
            .enable_tracing()
            .build(jobs::clean_up)
    });
    monitor
        // A queue worker whose backend failed (Redis restarted under it: a
        // broken pipe ends apalis's poll stream) is started again instead of
        // leaving the process alive with no one taking jobs. apalis asks this
        // callback synchronously from the monitor's poll, so it only decides;
        // the pause that keeps a backend which stays down from turning
        // restarts into a busy loop is the rebuilt worker's own
        // (`restart_pause`, an async sleep before its backend starts).
        .should_restart(|worker, error| {
            tracing::warn!(worker = worker.name(), error = %error, restarts = worker.restarts(), "restarting a worker");
            true
        })
        .shutdown_timeout(Duration::from_secs(600))
        .run_with_signal(async move {
            stop.await;
            Ok(())
        })
        .await
        .map_err(|e| RunError(e.to_string()))
}

/// The hook a queue worker's backend runs before it starts: nothing for the
/// first run, an asynchronous `RESTART_PAUSE` for each restart (the
/// monitor's other workers, and the thread, stay free meanwhile).
fn restart_pause<B, E>(
    restarts: usize,
) -> impl Fn(&mut B) -> std::pin::Pin<Box<dyn Future<Output = Result<(), E>> + Send>>
where
    E: Send + 'static,
{
    let pause = if restarts == 0 { Duration::ZERO } else { RESTART_PAUSE };
    move |_| {
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            Ok(())
        })
    }
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
