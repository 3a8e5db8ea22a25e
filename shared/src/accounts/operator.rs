//! The operator's account commands (`api admin …`). They need only the
//! database, so they work while Redis or the object stores are away.

use std::sync::Arc;

use super::{AccountPolicy, token_hash};
use crate::domain::error::Result;
use crate::domain::{Password, User, UserName};
use crate::runtime::config::Settings;
use crate::stores::meta::{Account, MetaRepo};
use crate::stores::open::{OpenError, fail};

/// The account commands an operator runs.
pub struct Operator {
    repo: Arc<dyn MetaRepo>,
    policy: AccountPolicy,
}

impl Operator {
    /// Opens the database the settings name, and nothing else.
    pub async fn open(settings: &Settings) -> Result<Self, OpenError> {
        let repo = crate::stores::meta::open(&settings.database_url()).await.map_err(fail("DATABASE_URL"))?;
        Ok(Operator { repo: Arc::new(repo), policy: AccountPolicy::from_settings(settings) })
    }

    /// The rules in effect (default quotas among them).
    pub fn policy(&self) -> &AccountPolicy {
        &self.policy
    }

    /// Creates an account whatever the signup policy says.
    pub async fn create_user(&self, name: &UserName, password: &Password) -> Result<User> {
        let hash = super::password::hash_password(password.expose())?;
        self.repo.create_user(name, &hash, crate::now(), None).await
    }

    /// Every account with what it stores.
    pub async fn accounts(&self) -> Result<Vec<Account>> {
        self.repo.accounts().await
    }

    /// Sets a user's own quotas (`None`: the default; negative: unlimited).
    pub async fn set_quota(&self, name: &str, bytes: Option<i64>, files: Option<i64>) -> Result<()> {
        self.repo.set_quota(name, bytes, files).await
    }

    /// Sets a user's password (there is no e-mail: this is the recovery
    /// path); every token of theirs is revoked, app passwords stay.
    pub async fn set_password(&self, name: &str, password: &Password) -> Result<()> {
        let id = self.repo.user_id_by_name(name).await?.ok_or(crate::domain::error::Error::UserNotFound)?;
        let hash = super::password::hash_password(password.expose())?;
        self.repo.set_password(id, &hash, None).await
    }

    /// Locks a user out (revoking their tokens and app passwords) or lets
    /// them back in.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        self.repo.set_disabled(name, disabled).await
    }

    /// Makes a one-time invite code; only its hash is stored.
    pub async fn invite(&self) -> Result<String> {
        let code = crate::random_hex(16);
        self.repo.add_invite(&token_hash(&code), crate::now()).await?;
        Ok(code)
    }
}
