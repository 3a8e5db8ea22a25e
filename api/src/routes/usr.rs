//! Users: `/usr/signup`, `/usr/signin`, `/usr/signout`, `/usr/info`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::LazyLock;

use argon2::Argon2;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::domain::error::ResultExt;
use shared::domain::{Password, UserName};
use shared::runtime::config::SignupPolicy;

use super::Tag;
use crate::auth::{BearerAuth, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::limits::json_body_limit;
use crate::state::AppState;
use crate::text::Text;

/// A new account's username and password.
#[derive(Debug, Object)]
pub struct NewAccount {
    /// 1-64 characters from A-Z, a-z, 0-9, '.', '_' and '-' (case-sensitive).
    #[oai(validator(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    pub username: Text,
    /// 8-1024 characters, no NUL.
    #[oai(validator(min_length = 8, max_length = 1024, pattern = r"^[^\x00]*$"))]
    pub password: Text,
    /// A one-time invite code from the operator (`api admin invite`); needed
    /// when the server's signup policy is `invite`, ignored when `open`.
    #[oai(validator(max_length = 128))]
    pub invite: Option<Text>,
}

/// A username and a password to sign in with. Only their length is checked
/// here: any pair that names no account, however malformed, gets the same
/// 401 as a wrong password, so the answer tells nothing about the rules.
#[derive(Debug, Object)]
pub struct Credentials {
    /// The username.
    #[oai(validator(max_length = 1024))]
    pub username: Text,
    /// The password.
    #[oai(validator(max_length = 4096))]
    pub password: Text,
}

/// A newly registered user.
#[derive(Debug, Object)]
pub struct SignupResult {
    /// The username.
    pub username: String,
    /// When the account was created (Unix seconds).
    pub created_at: i64,
}

/// A bearer token for the `Authorization` header.
#[derive(Debug, Object)]
pub struct SigninResult {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When the token stops working (Unix seconds).
    pub expires_at: i64,
}

/// The caller's profile.
#[derive(Debug, Object)]
pub struct UserInfo {
    /// The username.
    pub username: String,
    /// When the account was created (Unix seconds).
    pub created_at: i64,
    /// How many files the user has (not counting the trash).
    pub file_count: i64,
    /// Total size of those files in bytes.
    pub bytes_used: i64,
    /// Files in the user's trash (those in trashed folders included).
    pub trash_count: i64,
    /// Total size of those in bytes.
    pub trash_bytes: i64,
    /// Your storage quota in bytes (absent: unlimited). Stored files, the
    /// trash and what open uploads reserve count against it.
    #[oai(skip_serializing_if_is_none)]
    pub quota_bytes: Option<u64>,
    /// Your limit on files (absent: unlimited).
    #[oai(skip_serializing_if_is_none)]
    pub quota_files: Option<u64>,
    /// Unfinished uploads you have open.
    pub open_uploads: u64,
    /// Bytes your open uploads reserve (their declared sizes).
    pub bytes_reserved: u64,
}

/// Signup answers.
#[derive(ApiResponse)]
pub enum SignupResponse {
    /// The account exists now; sign in to get a token.
    #[oai(status = 201)]
    Created(Json<SignupResult>),
}

/// Signout answers.
#[derive(ApiResponse)]
pub enum SignoutResponse {
    /// The token no longer works.
    #[oai(status = 204)]
    SignedOut,
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes): memory-hard.
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// A hash of a random password nobody knows, verified when the user does not
/// exist so that "unknown user" costs as much time as "wrong password".
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| hash_password(&shared::random_hex(16)).unwrap_or_default());

/// Argon2id PHC string of `password` with a fresh 128-bit salt.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    hasher().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches an Argon2id PHC string.
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
}

/// Most password hashes waiting for a slot; past this, 503 `BUSY`.
const HASH_QUEUE: usize = 64;

/// Runs a password hash off the async runtime. At most two per core at once:
/// each takes 19 MiB, so a burst of signins queues instead of eating memory;
/// and the queue is bounded, so a flood gets 503 `BUSY` at once instead of
/// piling up requests without end.
pub(crate) async fn spawn_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HASHING: LazyLock<tokio::sync::Semaphore> =
        LazyLock::new(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get() * 2)));
    static WAITING: AtomicUsize = AtomicUsize::new(0);
    /// Counts a waiter for as long as it lives (also when its request is dropped).
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            WAITING.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if WAITING.fetch_add(1, Ordering::Relaxed) >= HASH_QUEUE {
        WAITING.fetch_sub(1, Ordering::Relaxed);
        let busy = shared::Error::Busy { message: "too many signins at once; retry shortly".into(), retry_after: 1 };
        return Err(busy.into());
    }
    let waiting = Waiting;
    let _permit = HASHING.acquire().await.context("password hashing slots").map_err(ApiError::from)?;
    drop(waiting);
    tokio::task::spawn_blocking(f).await.context("password hashing task").map_err(ApiError::from)
}

crate::operation_errors!(
    /// Errors of signup.
    SignupErrors {
        BadRequest = 400,
        Forbidden = 403,
        Conflict = 409,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        TooManyRequests = 429,
    }
);
crate::operation_errors!(
    /// Errors of signin.
    SigninErrors {
        BadRequest = 400,
        Unauthorized = 401,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        TooManyRequests = 429,
    }
);
crate::operation_errors!(
    /// Errors of operations that only need a valid token.
    AuthedErrors { Unauthorized = 401 }
);

/// User accounts.
pub struct UsrApi;

#[OpenApi(prefix_path = "/usr", tag = "Tag::Users")]
impl UsrApi {
    /// Create an account.
    ///
    /// Usernames are 1-64 characters from A-Z, a-z, 0-9, '.', '_' and '-' and
    /// compare exactly (case-sensitive); passwords are 8-1024 characters.
    /// The server's policy may close signup (403 `SIGNUP_CLOSED`) or ask for
    /// an invite code (403 `INVITE_REQUIRED`, `INVITE_INVALID`). Signups per
    /// client address are rate-limited (429 with `Retry-After`).
    #[oai(path = "/signup", method = "post", operation_id = "signup", transform = "json_body_limit")]
    async fn signup(
        &self,
        state: Data<&AppState>,
        body: Json<NewAccount>,
        req: &poem::Request,
    ) -> Result<SignupResponse, SignupErrors> {
        state.rate_limits.signup(state.rate_limits.client_ip(req))?;
        let invite = match (state.settings.signup, body.invite.as_deref()) {
            (SignupPolicy::Open, _) => None,
            (SignupPolicy::Closed, _) => {
                let closed = "signup is closed on this server; ask its operator for an account";
                return Err(shared::Error::Forbidden { code: "SIGNUP_CLOSED", message: closed.into() }.into());
            }
            (SignupPolicy::Invite, None) => {
                let needed = "signup on this server needs an invite code (`invite`)";
                return Err(shared::Error::Forbidden { code: "INVITE_REQUIRED", message: needed.into() }.into());
            }
            (SignupPolicy::Invite, Some(code)) => Some(token_hash(code.trim())),
        };
        let name = UserName::parse(&body.username)?;
        let password = Password::parse(&body.password)?;
        let hash = spawn_blocking(move || hash_password(password.expose())).await?.context("hashing password")?;
        let user = state.backends.repo.create_user(&name, &hash, shared::now(), invite.as_deref()).await?;
        tracing::info!(username = %user.username, "user signed up");
        Ok(SignupResponse::Created(Json(SignupResult { username: user.username, created_at: user.created_at })))
    }

    /// Sign in and get a bearer token.
    ///
    /// A wrong password and an unknown user get the same 401. Attempts, right
    /// or wrong, are rate-limited per client address and per username and
    /// client address (429 with `Retry-After`).
    #[oai(path = "/signin", method = "post", operation_id = "signin", transform = "json_body_limit")]
    async fn signin(
        &self,
        state: Data<&AppState>,
        body: Json<Credentials>,
        req: &poem::Request,
    ) -> Result<Json<SigninResult>, SigninErrors> {
        state.rate_limits.signin(state.rate_limits.client_ip(req), &body.username)?;
        let repo = &state.backends.repo;
        let found =
            if UserName::parse(&body.username).is_ok() { repo.user_with_hash(&body.username).await? } else { None };
        let (user, stored) = match found {
            Some((u, h)) => (Some(u), h),
            None => (None, DECOY_HASH.clone()),
        };
        let password = body.0.password;
        let verified = spawn_blocking(move || verify_password(&password, &stored)).await?;
        let Some(user) = user.filter(|_| verified) else {
            return Err(shared::Error::BadCredentials.into());
        };
        let token = shared::random_hex(32);
        let now = shared::now();
        let expires_at = now + state.settings.token_ttl as i64;
        repo.insert_token(&token_hash(&token), user.id, now, expires_at).await?;
        Ok(Json(SigninResult { token, token_type: "Bearer".into(), expires_at }))
    }

    /// Revoke the token this request carries.
    #[oai(path = "/signout", method = "post", operation_id = "signout")]
    async fn signout(
        &self,
        state: Data<&AppState>,
        _auth: BearerAuth,
        req: &poem::Request,
    ) -> Result<SignoutResponse, AuthedErrors> {
        // The scheme is case-insensitive, as the checker that let us in read it.
        let token = req
            .header("authorization")
            .and_then(|h| h.trim().split_once(' '))
            .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()));
        if let Some(token) = token {
            state.backends.repo.delete_token(&token_hash(token)).await?;
        }
        Ok(SignoutResponse::SignedOut)
    }

    /// The caller's profile: name, creation time, file count and bytes used.
    #[oai(path = "/info", method = "get", operation_id = "user_info")]
    async fn info(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<UserInfo>, AuthedErrors> {
        let usage = state.backends.repo.usage(auth.0.id).await?;
        let (open_uploads, bytes_reserved) = state.backends.uploads.open_uploads(auth.0.id).await?;
        let (quota_bytes, quota_files) = shared::upload::quotas(&state.settings, &auth.0);
        Ok(Json(UserInfo {
            username: auth.0.username,
            created_at: auth.0.created_at,
            file_count: usage.files,
            bytes_used: usage.bytes,
            trash_count: usage.trash_files,
            trash_bytes: usage.trash_bytes,
            quota_bytes,
            quota_files,
            open_uploads,
            bytes_reserved,
        }))
    }
}
