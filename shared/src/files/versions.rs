//! Versions, as their owner sees them: list, download, restore, delete and
//! pin a file's earlier contents; and the expiry that thins them out.

use crate::accounts::refused;
use crate::domain::error::{Error, Result};
use crate::domain::versions::Version;
use crate::domain::versions::{Keep, MAX_UNPINNED, expired};
use crate::domain::{User, UserFile};
use crate::files::Files;
use crate::stores::meta::Refusal;

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
    /// user's unpinned versions go first, oldest first, as many as it takes
    /// (those whose content nothing else of the user's holds: the ones
    /// whose going frees room). When even all of them would not make room,
    /// none goes and the answer is `QUOTA_EXCEEDED`.
    pub(crate) async fn reserve_replacing(&self, user: &User, hold: &str, bytes: u64, upload: bool) -> Result<()> {
        let Some(refusal) = self.accounts.try_reserve(user, hold, bytes, upload).await? else { return Ok(()) };
        let Refusal::Bytes { used, held, quota } = refusal else { return Err(refused(refusal, bytes)) };
        let short = used.saturating_add(held).saturating_add(bytes).saturating_sub(quota);
        let candidates = self.repo.oldest_unpinned_versions(user.id, 10_000).await?;
        let mut contents = std::collections::HashMap::new();
        for (_, file_id, size) in &candidates {
            contents.insert(*file_id, (*size).max(0) as u64);
        }
        if contents.values().sum::<u64>() < short {
            return Err(refused(refusal, bytes));
        }
        for (version, _, _) in candidates {
            tracing::info!(user = user.id, "over quota for a replacement: its oldest unpinned version goes");
            let orphans = self.repo.expire_versions(std::slice::from_ref(&version)).await?;
            self.tree.delete_contents(&orphans).await;
            match self.accounts.try_reserve(user, hold, bytes, upload).await? {
                None => return Ok(()),
                Some(Refusal::Bytes { .. }) => continue,
                Some(other) => return Err(refused(other, bytes)),
            }
        }
        Err(refused(refusal, bytes))
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
