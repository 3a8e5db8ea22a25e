//! Accounts: signup, signin and tokens, profiles, quotas, and the
//! operator's commands. Every front door that creates an account, checks a
//! token or adds bytes for a user goes through here.
//!
//! Layout:
//! - [`password`]: Argon2id hashing on a bounded pool.
//! - [`operator`]: `api admin`'s account commands, which need only the database.

pub mod limits;
pub mod operator;
pub mod password;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::{Password, User, UserName};
use crate::runtime::config::{Limit, Settings, SignupPolicy};
use crate::stores::meta::{AppPassword, Hold, Limits, MetaRepo, Refusal, Session};
pub use password::HashingPool;

/// SHA-256 of a bearer token or an invite code, as stored: the secret
/// itself never is.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The account rules in effect, from the settings.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    /// Who may sign up (`PAN_SIGNUP`).
    pub signup: SignupPolicy,
    /// Seconds a signin token works (`PAN_TOKEN_TTL`).
    pub token_ttl: u64,
    /// The default byte quota (`PAN_QUOTA_BYTES`).
    pub quota_bytes: Limit,
    /// The default file-count quota (`PAN_QUOTA_FILES`).
    pub quota_files: Limit,
    /// Most unfinished uploads one user may hold (`PAN_MAX_OPEN_UPLOADS`).
    pub max_open_uploads: u64,
    /// Files and folders one user may have (`PAN_QUOTA_ENTRIES`).
    pub quota_entries: Limit,
}

impl AccountPolicy {
    pub(crate) fn from_settings(s: &Settings) -> Self {
        AccountPolicy {
            signup: s.signup_policy(),
            token_ttl: s.token_ttl,
            quota_bytes: s.default_quota_bytes(),
            quota_files: s.default_quota_files(),
            max_open_uploads: s.max_open_uploads,
            quota_entries: s.quota_entries,
        }
    }

    /// A user's limits in effect: their own (a negative value stored means
    /// unlimited) or the installation's default.
    pub fn quotas(&self, user: &User) -> (Option<u64>, Option<u64>) {
        let effective = |own: Option<i64>, default: Limit| match own {
            Some(n) if n < 0 => None,
            Some(n) => Some(n as u64),
            None => default.0,
        };
        (effective(user.quota_bytes, self.quota_bytes), effective(user.quota_files, self.quota_files))
    }
}

/// A bearer token given out at signin.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// 256 random bits, hex: send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
}

/// What a user stores and may store.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Live file entries and their bytes; the same for the trash.
    pub usage: crate::stores::meta::Usage,
    /// Their byte and file limits in effect (`None`: unlimited).
    pub quota_bytes: Option<u64>,
    /// See `quota_bytes`.
    pub quota_files: Option<u64>,
    /// Unfinished uploads and the bytes they reserve.
    pub open_uploads: u64,
    /// See `open_uploads`.
    pub bytes_reserved: u64,
    /// Versions: how many, and the bytes of the contents only they hold.
    pub versions: (u64, u64),
}

/// The account use cases.
#[derive(Clone)]
pub struct Accounts {
    pub(crate) repo: Arc<dyn MetaRepo>,
    pub(crate) policy: Arc<AccountPolicy>,
    pub(crate) hashing: HashingPool,
}

impl Accounts {
    /// The rules in effect.
    pub fn policy(&self) -> &AccountPolicy {
        &self.policy
    }

    /// Registers a user under the signup policy: closed (403
    /// `SIGNUP_CLOSED`), by invite (403 `INVITE_REQUIRED` / `INVITE_INVALID`),
    /// or open. The policy is checked before the name and password, so a
    /// closed server says only that.
    #[tracing::instrument(name = "sign up", skip_all)]
    pub async fn signup(&self, username: &str, password: &str, invite: Option<&str>) -> Result<User> {
        let invite = match (self.policy.signup, invite) {
            (SignupPolicy::Open, _) => None,
            (SignupPolicy::Closed, _) => {
                let closed = "signup is closed on this server; ask its operator for an account";
                return Err(Error::Forbidden { code: ErrorCode::SignupClosed, message: closed.into() });
            }
            (SignupPolicy::Invite, None) => {
                let needed = "signup on this server needs an invite code (`invite`)";
                return Err(Error::Forbidden { code: ErrorCode::InviteRequired, message: needed.into() });
            }
            (SignupPolicy::Invite, Some(code)) => Some(token_hash(code.trim())),
        };
        let name = UserName::parse(username)?;
        let password = Password::parse(password)?;
        let hash = self.hashing.hash(password.expose().to_owned()).await?;
        let user = self.repo.create_user(&name, &hash, crate::now(), invite.as_deref()).await?;
        tracing::info!(username = %user.username, "user signed up");
        Ok(user)
    }

    /// A new token for the user whose password this is. A wrong password
    /// and an unknown (or malformed) name cost the same and get the same
    /// [`Error::BadCredentials`].
    #[tracing::instrument(name = "sign in", skip_all)]
    pub async fn signin(&self, username: &str, password: String, device: Option<&str>) -> Result<SignedIn> {
        let found = if UserName::parse(username).is_ok() { self.repo.user_with_hash(username).await? } else { None };
        let (user, stored) = match found {
            Some((u, h)) => (Some(u), h),
            None => (None, password::DECOY_HASH.clone()),
        };
        let verified = self.hashing.verify(password, stored).await?;
        let Some(user) = user.filter(|_| verified) else {
            return Err(Error::BadCredentials);
        };
        let token = crate::random_hex(32);
        let now = crate::now();
        let expires_at = now + self.policy.token_ttl as i64;
        let device = device.map(str::trim).filter(|d| !d.is_empty());
        self.repo.insert_session(&token_hash(&token), user.id, device, now, expires_at).await?;
        Ok(SignedIn { token, expires_at })
    }

    /// The user's live sessions, newest first; `current` (the caller's
    /// token) is marked.
    pub async fn sessions(&self, user: &User, current: &str) -> Result<Vec<(Session, bool)>> {
        let mine = token_hash(current);
        let sessions = self.repo.sessions(user.id, crate::now()).await?;
        Ok(sessions
            .into_iter()
            .map(|s| {
                let is_current = mine.starts_with(&s.id);
                (s, is_current)
            })
            .collect())
    }

    /// Signs the user out everywhere: every token (the caller's too) and
    /// every app password stop working.
    pub async fn sign_out_everywhere(&self, user: &User) -> Result<u64> {
        let revoked = self.repo.revoke_sessions(user.id, None, true).await?;
        tracing::info!(username = %user.username, revoked, "signed out everywhere");
        Ok(revoked)
    }

    /// Changes the caller's password: the current one must be right
    /// ([`Error::Forbidden`] `PASSWORD_WRONG` otherwise); every other token
    /// stops working (the caller's stays); app passwords stay.
    #[tracing::instrument(name = "change password", skip_all)]
    pub async fn change_password(&self, user: &User, current_token: &str, current: String, new: &str) -> Result<()> {
        let new = Password::parse(new)?;
        let stored = match self.repo.user_with_hash(&user.username).await? {
            Some((_, h)) => h,
            None => return Err(Error::BadCredentials),
        };
        if !self.hashing.verify(current, stored).await? {
            return Err(Error::Forbidden {
                code: ErrorCode::PasswordWrong,
                message: "the current password is wrong".into(),
            });
        }
        let hash = self.hashing.hash(new.expose().to_owned()).await?;
        self.repo.set_password(user.id, &hash, Some(&token_hash(current_token))).await?;
        tracing::info!(username = %user.username, "password changed; other sessions signed out");
        Ok(())
    }

    /// Makes a new app password named `name` (1-64 characters): the secret
    /// is in the answer only. App passwords let clients that send a
    /// password on every request in (WebDAV, tus), never this API.
    pub async fn create_app_password(&self, user: &User, name: &str) -> Result<(AppPassword, String)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                ErrorCode::InvalidName,
                "an app password's name is 1-64 characters, no control characters",
            ));
        }
        let secret = crate::random_hex(32);
        let app = AppPassword {
            id: crate::random_hex(16),
            name: name.to_owned(),
            created_at: crate::now(),
            last_used_at: None,
        };
        self.repo.add_app_password(user.id, &app, &token_hash(&secret)).await?;
        tracing::info!(username = %user.username, app = %app.id, "app password created");
        Ok((app, secret))
    }

    /// The user's app passwords (never their secrets).
    pub async fn app_passwords(&self, user: &User) -> Result<Vec<AppPassword>> {
        self.repo.app_passwords(user.id).await
    }

    /// Revokes one of the user's app passwords
    /// ([`Error::AppPasswordNotFound`] when they have none with that id).
    pub async fn revoke_app_password(&self, user: &User, id: &str) -> Result<()> {
        if self.repo.revoke_app_password(user.id, id).await? { Ok(()) } else { Err(Error::AppPasswordNotFound) }
    }

    /// The enabled user `username` when `password` is one of their app
    /// passwords: the way in for WebDAV and tus, which send it on every
    /// request (a SHA-256 lookup, no Argon2). Its last use is written at
    /// most once a minute.
    pub async fn authenticate_app_password(&self, username: &str, password: &str) -> Result<Option<User>> {
        let password = password.trim();
        if password.len() != 64 || !password.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some((user, id, last_used)) =
            self.repo.user_by_app_password(username, &token_hash(&password.to_ascii_lowercase())).await?
        else {
            return Ok(None);
        };
        let now = crate::now();
        if last_used.is_none_or(|t| now - t >= 60) {
            self.repo.touch_app_password(&id, now).await?;
        }
        Ok(Some(user))
    }

    /// Revokes a token.
    pub async fn signout(&self, token: &str) -> Result<()> {
        self.repo.delete_token(&token_hash(token)).await
    }

    /// The enabled user a live token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>> {
        self.repo.user_by_token(&token_hash(token), crate::now()).await
    }

    /// What the user stores, may store, and has reserved.
    pub async fn profile(&self, user: &User) -> Result<Profile> {
        let usage = self.repo.usage(user.id).await?;
        let (open_uploads, bytes_reserved) = self.repo.holds(user.id).await?;
        let (quota_bytes, quota_files) = self.policy.quotas(user);
        let versions = self.repo.version_usage(user.id).await?;
        Ok(Profile { usage, quota_bytes, quota_files, open_uploads, bytes_reserved, versions })
    }

    /// Reserves room in `user`'s quota for content on its way in: `bytes`
    /// and one file, held under `hold_id` (an upload's id, or one made for
    /// the content) until the entry that uses it is recorded (see
    /// [`crate::stores::meta::NewUserFile::hold`]) or [`Accounts::release`]
    /// gives it back. With `upload`, it also counts against the cap on open
    /// uploads. Checked and recorded in one transaction under the user's
    /// turn: concurrent reservations, from any process, never overshoot.
    /// Every path that adds content for a user goes through here.
    pub(crate) async fn reserve(&self, user: &User, hold_id: &str, bytes: u64, upload: bool) -> Result<()> {
        match self.try_reserve(user, hold_id, bytes, upload).await? {
            None => Ok(()),
            Some(refusal) => Err(refused(refusal, bytes)),
        }
    }

    /// Grows the hold of an upload whose size is not known yet to `want`
    /// bytes, or, when the quota has less room, to as much as it has, if
    /// that is at least `at_least`: the bytes now held.
    pub(crate) async fn reserve_growth(&self, user: &User, hold_id: &str, want: u64, at_least: u64) -> Result<u64> {
        let refusal = match self.try_reserve(user, hold_id, want, true).await? {
            None => return Ok(want),
            Some(refusal) => refusal,
        };
        let Refusal::Bytes { used, held, quota } = refusal else { return Err(refused(refusal, want)) };
        let room = quota.saturating_sub(used).saturating_sub(held);
        if room < at_least {
            return Err(refused(refusal, at_least));
        }
        match self.try_reserve(user, hold_id, room, true).await? {
            None => Ok(room),
            // Someone else took the room meanwhile.
            Some(refusal) => Err(refused(refusal, at_least)),
        }
    }

    /// [`Accounts::reserve`], a refusal told rather than answered.
    pub(crate) async fn try_reserve(
        &self,
        user: &User,
        hold_id: &str,
        bytes: u64,
        upload: bool,
    ) -> Result<Option<Refusal>> {
        let (quota_bytes, quota_files) = self.policy.quotas(user);
        let limits = Limits {
            bytes: quota_bytes,
            files: quota_files,
            uploads: Some(self.policy.max_open_uploads),
            entries: self.policy.quota_entries.0,
        };
        let hold = Hold { id: hold_id, user_id: user.id, bytes, upload, now: crate::now() };
        self.repo.reserve(&hold, &limits).await
    }

    /// Gives a hold's room back: the content it was for will not come.
    pub(crate) async fn release(&self, hold_id: &str) -> Result<()> {
        self.repo.release(hold_id).await
    }

    /// [`Accounts::release`] on a path that already failed: a failure here is
    /// logged; the clean-up releases holds whose content is not on its way.
    pub(crate) async fn release_quietly(&self, hold_id: &str) {
        if let Err(e) = self.release(hold_id).await {
            tracing::warn!(hold = hold_id, error = %e, "could not release a quota hold; the clean-up will");
        }
    }

    /// Drops tokens that expired (the clean-up).
    pub(crate) async fn drop_expired_tokens(&self) -> Result<u64> {
        self.repo.delete_expired_tokens(crate::now()).await
    }
}

/// The error a refused reservation of `bytes` answers.
pub(crate) fn refused(refusal: Refusal, bytes: u64) -> Error {
    match refusal {
        Refusal::Uploads { open } => Error::TooMany {
            code: ErrorCode::TooManyUploads,
            message: format!("you have {open} unfinished uploads, the most allowed; complete or abort one first"),
            retry_after: 60,
        },
        Refusal::Bytes { used, held, quota } => Error::QuotaExceeded {
            message: format!(
                "{bytes} more bytes would exceed your quota of {quota}: {used} stored, {held} reserved by open uploads"
            ),
        },
        Refusal::Files { files, held, quota } => Error::QuotaExceeded {
            message: format!("one more file would exceed your limit of {quota}: {files} stored, {held} uploading"),
        },
        Refusal::Entries { entries, quota } => Error::QuotaExceeded {
            message: format!(
                "one more file would exceed your limit of {quota} files and folders (live and in the trash): \
                 you have {entries}"
            ),
        },
    }
}
