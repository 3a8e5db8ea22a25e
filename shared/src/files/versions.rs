//! Versions, as their owner sees them: list, download, restore, delete and
//! pin a file's earlier contents; and the expiry that thins them out.

use crate::domain::error::{Error, Result};
use crate::domain::versions::Version;
use crate::domain::versions::{Keep, MAX_UNPINNED, expired};
use crate::domain::{User, UserFile};
use crate::files::Files;

impl Files {
    /// The versions of the caller's file (live or in the trash), newest first.
    pub async fn versions(&self, user: &User, entry_id: &str) -> Result<Vec<Version>> {
        self.repo.versions(user.id, entry_id).await
    }

    /// One version of the caller's live file.
    pub async fn version(&self, user: &User, entry_id: &str, version_id: &str) -> Result<Version> {
        self.repo.version(user.id, entry_id, version_id).await?.ok_or(Error::VersionNotFound)
    }

    /// Makes a version the file's content again; the content it had becomes
    /// a version in turn.
    pub async fn restore_version(&self, user: &User, entry_id: &str, version_id: &str) -> Result<UserFile> {
        let placed = self.repo.restore_version(user.id, entry_id, version_id, &user.author, crate::now()).await?;
        self.tree.delete_contents(&placed.orphans).await;
        Ok(placed.entry)
    }

    /// Deletes a version (its bytes go once nothing else holds them).
    pub async fn delete_version(&self, user: &User, entry_id: &str, version_id: &str) -> Result<()> {
        let orphans = self.repo.delete_version(user.id, entry_id, version_id).await?;
        self.tree.delete_contents(&orphans).await;
        Ok(())
    }

    /// Pins (never expires) or unpins a version, with a label or none.
    pub async fn pin_version(
        &self,
        user: &User,
        entry_id: &str,
        version_id: &str,
        pinned: bool,
        label: Option<&str>,
    ) -> Result<Version> {
        self.repo.pin_version(user.id, entry_id, version_id, pinned, label).await
    }

    /// Reserves room for content that replaces a file's (see
    /// [`crate::accounts::Accounts::reserve`]): past the byte quota, the
    /// user's unpinned versions go first, oldest first, and only when none
    /// is left is the answer `QUOTA_EXCEEDED`.
    pub(crate) async fn reserve_replacing(&self, user: &User, hold: &str, bytes: u64, upload: bool) -> Result<()> {
        loop {
            match self.accounts.reserve(user, hold, bytes, upload).await {
                Err(e @ Error::QuotaExceeded { .. }) => {
                    let oldest = self.repo.oldest_unpinned_versions(user.id, 1).await?;
                    if oldest.is_empty() {
                        return Err(e);
                    }
                    tracing::info!(user = user.id, "over quota for a replacement: its oldest unpinned version goes");
                    let orphans = self.repo.expire_versions(&oldest).await?;
                    self.tree.delete_contents(&orphans).await;
                }
                other => return other,
            }
        }
    }

    /// The clean-up's part: thins every file's versions by the rule of
    /// [`crate::domain::versions::expired`] at `now`. Returns how many went.
    pub(crate) async fn expire_versions(&self, now: i64) -> Result<usize> {
        let keep = Keep { max_age: self.version_max_age, max_count: MAX_UNPINNED };
        let mut after = String::new();
        let mut gone = 0;
        loop {
            let entries = self.repo.entries_with_versions(&after, 500).await?;
            let Some(last) = entries.last() else { break };
            after = last.clone();
            for entry in &entries {
                let doomed = expired(now, &self.repo.aged_versions(entry).await?, keep);
                if doomed.is_empty() {
                    continue;
                }
                let orphans = self.repo.expire_versions(&doomed).await?;
                self.tree.delete_contents(&orphans).await;
                gone += doomed.len();
            }
        }
        Ok(gone)
    }
}
