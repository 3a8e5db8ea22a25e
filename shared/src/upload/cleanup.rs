//! The upload steps of the scheduled clean-up. Each is idempotent, so
//! several worker processes may run them at once.

use super::Uploads;
use crate::domain::error::Result;
use crate::domain::{UploadId, UploadState};
use crate::stores::objects;
use crate::stores::queue::MergeJob;

impl Uploads {
    /// Uploads idle past the TTL lose their session and staged chunks; how many.
    pub(crate) async fn expire_idle(&self) -> Result<usize> {
        let idle = self.sessions.idle_since(crate::now() - self.limits.upload_ttl as i64, 1000).await?;
        for id in &idle {
            let Some(session) = self.sessions.get(id).await? else { continue };
            // A `complete` may have restarted it since it was listed.
            if let Some(dropped) = self.sessions.delete_unless_merging(id).await? {
                self.accounts.release(id.as_str()).await?;
                self.give_back_to_link(&session, dropped).await;
                self.staging.delete_prefix(&objects::upload_prefix(id)).await?;
            }
        }
        Ok(idle.len())
    }

    /// Forgets challenges older than the window in which failures count.
    pub(crate) async fn forget_old_challenges(&self) -> Result<u64> {
        self.repo.forget_challenges(crate::now() - super::CHALLENGE_WINDOW).await
    }

    /// Quota holds older than an hour whose content is no longer on its way
    /// are released: an upload that expired by itself (Redis), was taken
    /// back by a crash before its session was made, or ended without its
    /// hold going; a single upload a crash cut off. How many.
    pub(crate) async fn release_stale_holds(&self) -> Result<usize> {
        let mut released = 0;
        for hold in self.repo.holds_before(crate::now() - 3600, 1000).await? {
            let live = match UploadId::parse(&hold) {
                Ok(id) => matches!(
                    self.sessions.get(&id).await?,
                    Some(s) if matches!(s.state, UploadState::Uploading | UploadState::Merging)
                ),
                Err(_) => false,
            };
            if !live {
                self.accounts.release(&hold).await?;
                released += 1;
            }
        }
        Ok(released)
    }

    /// Staged chunks that no live upload owns are deleted (Redis expires
    /// sessions by itself; this is where their chunks go); how many objects.
    pub(crate) async fn drop_orphan_chunks(&self) -> Result<usize> {
        let mut orphans = 0;
        for prefix in self.staging.list_prefixes().await? {
            let name = prefix.as_ref().to_owned();
            let Ok(id) = UploadId::parse(&name) else { continue };
            let live = matches!(self.sessions.get(&id).await?, Some(s) if s.state != UploadState::Done);
            if live {
                continue;
            }
            // No live session: a chunk still in flight for it will be refused
            // when it is recorded, and removes its own object then.
            orphans += self.staging.delete_prefix(&prefix).await?;
        }
        Ok(orphans)
    }

    /// A merge whose heartbeat stopped has no job running: enqueue it again.
    /// Touching it first keeps the next sweeps from enqueueing it once more
    /// while the new job waits in the queue; merges are idempotent anyway.
    pub(crate) async fn restart_stale_merges(&self) -> Result<usize> {
        let now = crate::now();
        let mut restarted = 0;
        for id in self.sessions.stale_merges(now - self.limits.merge_stall_secs as i64, 1000).await? {
            if self.sessions.touch_merge(&id, now).await? {
                tracing::warn!(upload = %id, "merge without a heartbeat: enqueueing it again");
                self.merges.push(MergeJob { upload_id: id.clone() }).await?;
                restarted += 1;
            }
        }
        Ok(restarted)
    }
}
