//! Users: `/usr/signup`, `/usr/signin`, `/usr/signout`, `/usr/info`, password
//! change, sessions, signing out everywhere and app passwords.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::accounts::{Profile, SignedIn};

use super::Tag;
use crate::auth::{BearerAuth, bearer_token};

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
    /// A name for the device this session is for (`laptop`, `pan CLI on
    /// nas`), shown by `GET /usr/tokens`.
    #[oai(nullable, validator(max_length = 255))]
    pub device: Option<Text>,
}

/// A password change.
#[derive(Debug, Object)]
pub struct PasswordChange {
    /// The current password.
    #[oai(validator(max_length = 4096))]
    pub current: Text,
    /// The new one: 8-1024 characters, no NUL.
    #[oai(validator(min_length = 8, max_length = 1024, pattern = r"^[^\x00]*$"))]
    pub new: Text,
}

/// One signin session of the caller.
#[derive(Debug, Object)]
pub struct SessionInfo {
    /// Its id (16 hex characters).
    pub id: String,
    /// The device named at signin.
    #[oai(skip_serializing_if_is_none)]
    pub device: Option<String>,
    /// When it began (Unix seconds).
    pub created_at: i64,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
    /// Whether it is the session of this request's token.
    pub current: bool,
}

/// The caller's live sessions, newest first.
#[derive(Debug, Object)]
pub struct SessionList {
    /// The sessions.
    pub entries: Vec<SessionInfo>,
}

/// A new app password's name.
#[derive(Debug, Object)]
pub struct NewAppPassword {
    /// What it is for (`rclone on nas`, `Finder`): 1-64 characters.
    #[oai(validator(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"))]
    pub name: Text,
}

/// An app password, as listed (never its secret).
#[derive(Debug, Object)]
pub struct AppPasswordInfo {
    /// Its id (32 hex characters).
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it last let a client in (to the minute; absent: never).
    #[oai(skip_serializing_if_is_none)]
    pub last_used_at: Option<i64>,
}

/// A new app password, with its secret: shown this once.
#[derive(Debug, Object)]
pub struct CreatedAppPassword {
    /// Its id (32 hex characters).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The secret (64 hex characters): give it to a WebDAV or tus client
    /// with your username. pan keeps only its SHA-256.
    pub password: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

/// The caller's app passwords, oldest first.
#[derive(Debug, Object)]
pub struct AppPasswordList {
    /// The app passwords.
    pub entries: Vec<AppPasswordInfo>,
}

/// Answers that carry nothing.
#[derive(ApiResponse)]
pub enum DoneResponse {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// App password creation answers.
#[derive(ApiResponse)]
pub enum AppPasswordCreated {
    /// Made; its secret is in this answer only.
    #[oai(status = 201)]
    Created(Json<CreatedAppPassword>),
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
    /// Earlier contents of your files kept as versions.
    pub version_count: u64,
    /// The bytes versions add to your usage: the contents only versions
    /// hold (a content one of your files also has counts once, there).
    pub version_bytes: u64,
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
crate::operation_errors!(
    /// Errors of a password change.
    PasswordErrors {
        BadRequest = 400,
        Unauthorized = 401,
        Forbidden = 403,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        TooManyRequests = 429,
    }
);
crate::operation_errors!(
    /// Errors of making an app password.
    AppPasswordErrors { BadRequest = 400, Unauthorized = 401, PayloadTooLarge = 413, UnsupportedMediaType = 415 }
);
crate::operation_errors!(
    /// Errors of revoking an app password.
    RevokeErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404 }
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
        state.rate_limits.signup(req).await?;
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
        state.rate_limits.signin(req, &body.username).await?;
        let body = body.0;
        let device = body.device.as_deref();
        let signed_in = state.services.accounts.signin(&body.username, body.password.0, device).await?;
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
        if let Some(token) = bearer_token(req) {
            state.services.accounts.signout(token).await?;
        }
        Ok(SignoutResponse::SignedOut)
    }

    /// The caller's profile: name, creation time, file count and bytes used.
    #[oai(path = "/info", method = "get", operation_id = "user_info")]
    async fn info(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<UserInfo>, AuthedErrors> {
        let Profile {
            usage,
            quota_bytes,
            quota_files,
            open_uploads,
            bytes_reserved,
            versions: (version_count, version_bytes),
        } = state.services.accounts.profile(&auth.0).await?;
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
            version_count,
            version_bytes,
        }))
    }

    /// Change your password.
    ///
    /// Needs the current password (403 `PASSWORD_WRONG` otherwise; attempts
    /// count against the signin limits). Every other session is signed out;
    /// this request's token and your app passwords keep working.
    #[oai(path = "/password", method = "post", operation_id = "password_change", transform = "json_body_limit")]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<PasswordChange>,
        req: &poem::Request,
    ) -> Result<DoneResponse, PasswordErrors> {
        state.rate_limits.signin(req, &auth.0.username).await?;
        let token = bearer_token(req).unwrap_or_default();
        let body = body.0;
        state.services.accounts.change_password(&auth.0, token, body.current.0, &body.new).await?;
        Ok(DoneResponse::Done)
    }

    /// Sign out everywhere.
    ///
    /// Every session (this one too) and every app password stop working.
    #[oai(path = "/signout/everywhere", method = "post", operation_id = "signout_everywhere")]
    async fn signout_everywhere(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<DoneResponse, AuthedErrors> {
        state.services.accounts.sign_out_everywhere(&auth.0).await?;
        Ok(DoneResponse::Done)
    }

    /// Your signin sessions, newest first, with the device each was given to.
    #[oai(path = "/tokens", method = "get", operation_id = "user_tokens")]
    async fn tokens(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        req: &poem::Request,
    ) -> Result<Json<SessionList>, AuthedErrors> {
        let token = bearer_token(req).unwrap_or_default();
        let sessions = state.services.accounts.sessions(&auth.0, token).await?;
        let entries = sessions
            .into_iter()
            .map(|(s, current)| SessionInfo {
                id: s.id,
                device: s.device,
                created_at: s.created_at,
                expires_at: s.expires_at,
                current,
            })
            .collect();
        Ok(Json(SessionList { entries }))
    }

    /// Make an app password.
    ///
    /// For clients that send a password on every request (WebDAV, tus): give
    /// them your username and this secret, never your password. It is shown
    /// in this answer only (pan keeps its SHA-256); it never signs in to
    /// this API, changes your password or manages app passwords. Signing out
    /// everywhere revokes every app password; a password change does not.
    #[oai(
        path = "/apppassword/create",
        method = "post",
        operation_id = "app_password_create",
        transform = "json_body_limit"
    )]
    async fn create_app_password(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<NewAppPassword>,
    ) -> Result<AppPasswordCreated, AppPasswordErrors> {
        let (app, password) = state.services.accounts.create_app_password(&auth.0, &body.name).await?;
        Ok(AppPasswordCreated::Created(Json(CreatedAppPassword {
            id: app.id,
            name: app.name,
            password,
            created_at: app.created_at,
        })))
    }

    /// Your app passwords, oldest first (never their secrets).
    #[oai(path = "/apppassword/list", method = "get", operation_id = "app_password_list")]
    async fn list_app_passwords(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<AppPasswordList>, AuthedErrors> {
        let apps = state.services.accounts.app_passwords(&auth.0).await?;
        let entries = apps
            .into_iter()
            .map(|a| AppPasswordInfo { id: a.id, name: a.name, created_at: a.created_at, last_used_at: a.last_used_at })
            .collect();
        Ok(Json(AppPasswordList { entries }))
    }

    /// Revoke one of your app passwords.
    #[oai(path = "/apppassword/revoke", method = "delete", operation_id = "app_password_revoke")]
    async fn revoke_app_password(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The app password's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: poem_openapi::param::Query<String>,
    ) -> Result<DoneResponse, RevokeErrors> {
        state.services.accounts.revoke_app_password(&auth.0, &id.0).await?;
        Ok(DoneResponse::Done)
    }
}
