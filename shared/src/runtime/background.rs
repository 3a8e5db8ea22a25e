//! Owned background work: every task a use case starts beyond the request or
//! job that caused it (the running hash, a lease given back after an error,
//! a merge's heartbeat, a repair, a zip being written) belongs to one
//! [`Background`] tracker per process. At shutdown the front door (the api,
//! the worker) calls [`Background::finish`] once its requests and jobs have
//! drained: it closes the tracker and waits, bounded, for every task in it,
//! so no task is cut off half-way by the process's exit.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for background tasks before exiting anyway.
pub const GRACE: Duration = Duration::from_secs(30);

/// The tasks this process started in the background; cheap to clone (every
/// clone is the same tracker).
#[derive(Clone, Default)]
pub struct Background {
    tracker: TaskTracker,
}

impl Background {
    /// Runs `task` in the background, owned by this tracker.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Whether shutdown has begun: long work (the running hash) stops at its
    /// next safe point instead of starting more.
    pub fn stopping(&self) -> bool {
        self.tracker.is_closed()
    }

    /// Tasks not yet finished.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Closes the tracker and waits, at most `grace`, for every task in it
    /// (and any they start meanwhile). Logs either way; `false` when the
    /// grace ran out with tasks still running.
    pub async fn finish(&self, grace: Duration) -> bool {
        self.tracker.close();
        let running = self.tracker.len();
        let started = std::time::Instant::now();
        match tokio::time::timeout(grace, self.tracker.wait()).await {
            Ok(()) => {
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(waited_for = running, ms, "background tasks finished");
                true
            }
            Err(_) => {
                tracing::warn!(
                    still_running = self.tracker.len(),
                    grace_secs = grace.as_secs(),
                    "background tasks still running after the grace period; exiting without them"
                );
                false
            }
        }
    }
}
