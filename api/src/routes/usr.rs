//! Users: `/usr/signup`, `/usr/signin`, `/usr/signout`, `/usr/info`.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::accounts::{Profile, SignedIn};

use super::Tag;
use crate::auth::BearerAuth;

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
    #[oai(nullable, validator(max_length = 128))]
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
        let user = state.services.accounts.signup(&body.username, &body.password, body.invite.as_deref()).await?;
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
        let body = body.0;
        let signed_in = state.services.accounts.signin(&body.username, body.password.0).await?;
        let SignedIn { token, expires_at } = signed_in;
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
            state.services.accounts.signout(token).await?;
        }
        Ok(SignoutResponse::SignedOut)
    }

    /// The caller's profile: name, creation time, file count and bytes used.
    #[oai(path = "/info", method = "get", operation_id = "user_info")]
    async fn info(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<UserInfo>, AuthedErrors> {
        let Profile { usage, quota_bytes, quota_files, open_uploads, bytes_reserved } =
            state.services.accounts.profile(&auth.0).await?;
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
