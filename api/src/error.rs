//! The one mapping from domain errors to HTTP: a status and a JSON body
//! `{code, message}` with a stable UPPER_SNAKE code. Errors poem produces by
//! itself (unknown route, wrong method, unparsable JSON or query, missing
//! token) are rewritten into the same shape by [`json_errors`].

use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use shared::Error;

/// Every error code pan answers with: the code, its usual status, and what
/// it means. The spec's description lists them (a test keeps this list and
/// the code in step), so a client knows every code it may meet.
pub const ERROR_CODES: &[(&str, u16, &str)] = &[
    ("INVALID_REQUEST", 400, "The request does not match the spec: a malformed body, query or header."),
    ("INVALID_USERNAME", 400, "The username breaks the rule (1-64 of A-Z a-z 0-9 . _ -)."),
    ("INVALID_PASSWORD", 400, "The password breaks the rule (8-1024 characters, no NUL)."),
    (
        "INVALID_FILENAME",
        400,
        "The name is empty, over 255 bytes, holds `/` or `\\`, control, bidirectional or invisible characters (U+200E, U+200F, U+061C, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF, tags), or is `.` or `..`.",
    ),
    ("INVALID_PATH", 400, "The path does not start with `/`, holds `.` or `..`, or a name in it breaks the name rule."),
    ("INVALID_CURSOR", 400, "The cursor is not of the form this listing's cursors have."),
    ("INVALID_NAME", 400, "An app password's name must be 1-64 characters without control characters."),
    ("INVALID_FILEHASH", 400, "`filehash` is not a SHA-1 (40 hex characters)."),
    ("INVALID_SHA256", 400, "`sha256` is not a SHA-256 (64 hex characters)."),
    ("INVALID_FILESIZE", 400, "`filesize` is negative."),
    ("FILEHASH_REQUIRED", 400, "`sha256` came without `filehash`: give both, or neither and declare them later."),
    ("INVALID_CHUNK_INDEX", 400, "`chkidx` is outside the upload's chunks."),
    ("INVALID_CHECKSUM_HEADER", 400, "`Upload-Checksum` is not `sha1 <base64 of 20 bytes>`."),
    ("UNSUPPORTED_CHECKSUM", 400, "`Upload-Checksum` names an algorithm other than sha1."),
    ("CHUNK_SIZE_MISMATCH", 400, "The chunk is shorter than its exact length."),
    ("CHUNK_CHECKSUM_MISMATCH", 400, "The chunk's bytes do not match its `Upload-Checksum`."),
    ("CHUNK_TOO_SLOW", 400, "The chunk arrived slower than the server's floor after 30 s."),
    ("BODY_TIMEOUT", 400, "No bytes of the body arrived for 60 s."),
    ("BODY_READ_FAILED", 400, "The body could not be read (the client went away)."),
    ("UNAUTHENTICATED", 401, "Missing, malformed, unknown or expired token."),
    ("BAD_CREDENTIALS", 401, "Wrong username or password (the same for every failed signin)."),
    ("SHARE_PASSWORD_REQUIRED", 401, "The share link has a password: unlock it and pass the `access` it gives."),
    ("FORBIDDEN", 403, "Not allowed."),
    ("URL_INVALID", 403, "The signed URL is malformed or tampered with."),
    ("URL_EXPIRED", 403, "The signed URL has expired."),
    ("SHARE_PASSWORD_WRONG", 403, "Wrong password for this share link (attempts are rate-limited)."),
    ("SIGNUP_CLOSED", 403, "Signup is closed on this server."),
    ("INVITE_REQUIRED", 403, "Signup on this server needs an invite code."),
    ("INVITE_INVALID", 403, "The invite code is unknown or used."),
    ("PASSWORD_WRONG", 403, "The current password given to change it is wrong."),
    ("NOT_FOUND", 404, "No such route."),
    ("UPLOAD_NOT_FOUND", 404, "No such upload of yours (unknown, expired, aborted or forgotten): start it again."),
    ("FILE_NOT_FOUND", 404, "No such file of yours (or nothing at that path)."),
    ("FOLDER_NOT_FOUND", 404, "No such folder of yours (unknown, in the trash, or not a folder)."),
    ("TRASH_ITEM_NOT_FOUND", 404, "Nothing in your trash has that id."),
    ("SHARE_NOT_FOUND", 404, "No such share link (unknown, revoked, or what it shared was deleted)."),
    ("USER_NOT_FOUND", 404, "No such user (operator commands)."),
    ("APP_PASSWORD_NOT_FOUND", 404, "None of your app passwords has that id."),
    ("METHOD_NOT_ALLOWED", 405, "The route does not take this method (`Allow` lists those it does)."),
    ("CONFLICT", 409, "The resource is not in a state that allows this."),
    ("USERNAME_TAKEN", 409, "The username is registered already."),
    ("UPLOAD_NOT_UPLOADING", 409, "The upload is past the state this needs (merging, done or failed)."),
    ("CHUNK_CONFLICT", 409, "The chunk was received and hashed already with other bytes; hashed chunks never change."),
    (
        "HASH_ALREADY_DECLARED",
        409,
        "The upload's hashes were declared already, with other values: abort it and start again.",
    ),
    ("HASH_NOT_DECLARED", 409, "`complete` on an upload begun without hashes: declare them first."),
    ("CHUNKS_MISSING", 409, "`complete` before every chunk arrived; `missing` lists them."),
    ("FILEHASH_AMBIGUOUS", 409, "`filehash` names several of your files; `ids` lists them."),
    ("PATH_AMBIGUOUS", 409, "The path names several entries (names that clashed before folders); `ids` lists them."),
    ("NAME_TAKEN", 409, "The name is taken in that folder and `on_conflict` is `refuse`."),
    ("MOVE_INTO_ITSELF", 409, "A folder cannot move into itself or one of its subfolders."),
    ("FOLDER_TOO_DEEP", 409, "The folder would be deeper than the tree may go (`PAN_MAX_DEPTH`, 64 by default)."),
    ("SHARE_EXPIRED", 410, "The share link has expired."),
    ("SHARE_EXHAUSTED", 410, "The share link has no downloads left."),
    ("LENGTH_REQUIRED", 411, "The body needs a `Content-Length`."),
    ("PAYLOAD_TOO_LARGE", 413, "The body is larger than allowed."),
    ("FILE_TOO_LARGE", 413, "The file is larger than the server takes."),
    ("CHUNK_TOO_LARGE", 413, "The chunk is longer than its exact length."),
    ("ZIP_TOO_MANY_ENTRIES", 413, "The folder holds more entries than one zip may (`PAN_ZIP_MAX_ENTRIES`)."),
    ("UNSUPPORTED_MEDIA_TYPE", 415, "The body's media type is not one this operation takes."),
    ("RANGE_NOT_SATISFIABLE", 416, "The byte range lies outside the file (`Content-Range: bytes */size`)."),
    ("TOO_MANY_REQUESTS", 429, "A limit was reached; `Retry-After` says when to try again."),
    ("RATE_LIMITED", 429, "Too many signins or signups from this address (or for this name); see `Retry-After`."),
    ("TOO_MANY_UPLOADS", 429, "Too many unfinished uploads open; complete or abort one."),
    ("TOO_MANY_CHUNKS", 429, "Too many chunks being received at once; see `Retry-After`."),
    ("INTERNAL", 500, "A bug or a broken backend; the server log has the details."),
    ("BACKEND_UNAVAILABLE", 503, "A backend (database, Redis, object store, job queue) is away; see `Retry-After`."),
    ("CHUNK_BUSY", 503, "Another request is sending this chunk right now; see `Retry-After`."),
    ("BUSY", 503, "This server is at capacity for this work; see `Retry-After`."),
    ("SERVER_DISK_FULL", 507, "The server's disk is full (not your quota); see `Retry-After`."),
    ("QUOTA_EXCEEDED", 507, "This would take you past your storage quota (bytes, files, or files and folders)."),
];

/// The error codes as a Markdown table, for the spec's description.
pub fn error_code_table() -> String {
    let mut out = String::from("| code | status | meaning |\n|---|---|---|\n");
    for (code, status, meaning) in ERROR_CODES {
        out.push_str(&format!("| `{code}` | {status} | {meaning} |\n"));
    }
    out
}

/// The body of every error response.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `UPLOAD_NOT_FOUND`; every code is
    /// listed in the API description.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// For `CHUNKS_MISSING`: the first (at most 100) missing chunk indexes.
    #[oai(skip_serializing_if_is_none)]
    pub missing: Option<Vec<u64>>,
    /// For `CHUNKS_MISSING`: how many chunks are missing in all.
    #[oai(skip_serializing_if_is_none)]
    pub missing_count: Option<u64>,
    /// For `FILEHASH_AMBIGUOUS` and `PATH_AMBIGUOUS`: the ids of the entries
    /// the request could mean.
    #[oai(skip_serializing_if_is_none)]
    pub ids: Option<Vec<String>>,
    /// For 429 and 503: seconds to wait before retrying (also sent as the
    /// `Retry-After` header).
    #[oai(skip_serializing_if_is_none)]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    /// A body with just a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.into(),
            message: message.into(),
            missing: None,
            missing_count: None,
            ids: None,
            retry_after: None,
        }
    }
}

/// Every error status an operation may answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed or breaks a rule (code says which).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed, unknown or expired credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Not allowed (e.g. an expired or tampered signed URL).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource belongs to the caller.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource is not in a state that allows this (or already exists).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The share link has expired or used up its downloads.
    #[oai(status = 410)]
    Gone(Json<ErrorBody>),
    /// The body is larger than allowed.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body has a media type this operation does not take.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The requested byte range lies outside the file.
    #[oai(status = 416)]
    RangeNotSatisfiable(Json<ErrorBody>),
    /// A rate or concurrency limit; `Retry-After` says when to try again.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>),
    /// A bug or a broken backend; details are in the server log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The caller's storage quota would be exceeded.
    #[oai(status = 507)]
    InsufficientStorage(Json<ErrorBody>),
    /// A backend is unreachable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// Handlers return this.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A 400 with a code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(Json(ErrorBody::new(code, message)))
    }

    /// A 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized(Json(ErrorBody::new("UNAUTHENTICATED", message)))
    }

    /// A status and body for errors poem raised before a handler ran.
    fn from_status(status: u16, message: String) -> Self {
        let (code, wrap): (&str, fn(Json<ErrorBody>) -> ApiError) = match status {
            401 => ("UNAUTHENTICATED", ApiError::Unauthorized),
            403 => ("FORBIDDEN", ApiError::Forbidden),
            404 => ("NOT_FOUND", ApiError::NotFound),
            409 => ("CONFLICT", ApiError::Conflict),
            413 => ("PAYLOAD_TOO_LARGE", ApiError::PayloadTooLarge),
            415 => ("UNSUPPORTED_MEDIA_TYPE", ApiError::UnsupportedMediaType),
            416 => ("RANGE_NOT_SATISFIABLE", ApiError::RangeNotSatisfiable),
            429 => ("TOO_MANY_REQUESTS", ApiError::TooManyRequests),
            507 => ("QUOTA_EXCEEDED", ApiError::InsufficientStorage),
            503 => ("BACKEND_UNAVAILABLE", ApiError::Unavailable),
            s if s >= 500 => ("INTERNAL", ApiError::Internal),
            _ => ("INVALID_REQUEST", ApiError::BadRequest),
        };
        wrap(Json(ErrorBody::new(code, message)))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let body = |code: &str| Json(ErrorBody::new(code, e.to_string()));
        match &e {
            Error::Invalid { code, .. } => ApiError::BadRequest(body(code)),
            Error::BadCredentials => ApiError::Unauthorized(body("BAD_CREDENTIALS")),
            Error::UsernameTaken => ApiError::Conflict(body("USERNAME_TAKEN")),
            Error::Forbidden { code, .. } => ApiError::Forbidden(body(code)),
            Error::UserNotFound => ApiError::NotFound(body("USER_NOT_FOUND")),
            Error::UploadNotFound => ApiError::NotFound(body("UPLOAD_NOT_FOUND")),
            Error::FileNotFound => ApiError::NotFound(body("FILE_NOT_FOUND")),
            Error::FolderNotFound => ApiError::NotFound(body("FOLDER_NOT_FOUND")),
            Error::ShareNotFound => ApiError::NotFound(body("SHARE_NOT_FOUND")),
            Error::ShareGone { code, .. } => ApiError::Gone(body(code)),
            Error::SharePasswordRequired => ApiError::Unauthorized(body("SHARE_PASSWORD_REQUIRED")),
            Error::SharePasswordWrong => ApiError::Forbidden(body("SHARE_PASSWORD_WRONG")),
            Error::TrashItemNotFound => ApiError::NotFound(body("TRASH_ITEM_NOT_FOUND")),
            Error::AppPasswordNotFound => ApiError::NotFound(body("APP_PASSWORD_NOT_FOUND")),
            Error::NameTaken { .. } => ApiError::Conflict(body("NAME_TAKEN")),
            Error::MoveIntoItself => ApiError::Conflict(body("MOVE_INTO_ITSELF")),
            Error::FolderTooDeep { .. } => ApiError::Conflict(body("FOLDER_TOO_DEEP")),
            Error::AmbiguousPath { ids, .. } => ApiError::Conflict(Json(ErrorBody {
                ids: Some(ids.clone()),
                ..ErrorBody::new("PATH_AMBIGUOUS", e.to_string())
            })),
            Error::NotUploading { .. } => ApiError::Conflict(body("UPLOAD_NOT_UPLOADING")),
            Error::ChunksMissing { missing, count } => ApiError::Conflict(Json(ErrorBody {
                missing: Some(missing.clone()),
                missing_count: Some(*count),
                ..ErrorBody::new("CHUNKS_MISSING", e.to_string())
            })),
            Error::AmbiguousFilehash { ids } => ApiError::Conflict(Json(ErrorBody {
                ids: Some(ids.clone()),
                ..ErrorBody::new("FILEHASH_AMBIGUOUS", e.to_string())
            })),
            Error::TooLarge { code, .. } => ApiError::PayloadTooLarge(body(code)),
            Error::RangeNotSatisfiable { .. } => ApiError::RangeNotSatisfiable(body("RANGE_NOT_SATISFIABLE")),
            Error::TooMany { code, retry_after, .. } => ApiError::TooManyRequests(Json(ErrorBody {
                retry_after: Some(*retry_after),
                ..ErrorBody::new(*code, e.to_string())
            })),
            Error::QuotaExceeded { .. } => ApiError::InsufficientStorage(body("QUOTA_EXCEEDED")),
            Error::DiskFull { .. } => {
                tracing::error!(error = %e, "disk full");
                ApiError::InsufficientStorage(Json(ErrorBody {
                    retry_after: Some(60),
                    ..ErrorBody::new("SERVER_DISK_FULL", "the server's disk is full; retry later")
                }))
            }
            Error::ChunkConflict { .. } => ApiError::Conflict(body("CHUNK_CONFLICT")),
            Error::HashAlreadyDeclared => ApiError::Conflict(body("HASH_ALREADY_DECLARED")),
            Error::HashNotDeclared => ApiError::Conflict(body("HASH_NOT_DECLARED")),
            Error::ChunkBusy { .. } => ApiError::Unavailable(Json(ErrorBody {
                retry_after: Some(1),
                ..ErrorBody::new("CHUNK_BUSY", e.to_string())
            })),
            Error::Busy { retry_after, .. } => ApiError::Unavailable(Json(ErrorBody {
                retry_after: Some(*retry_after),
                ..ErrorBody::new("BUSY", e.to_string())
            })),
            Error::Unavailable { what, .. } => {
                tracing::warn!(error = %e, "backend unavailable");
                ApiError::Unavailable(Json(ErrorBody {
                    retry_after: Some(5),
                    ..ErrorBody::new("BACKEND_UNAVAILABLE", format!("{what} is unavailable, retry later"))
                }))
            }
            Error::Internal { .. } => {
                tracing::error!(error = ?e, "internal error");
                ApiError::Internal(Json(ErrorBody::new("INTERNAL", "internal error; see the server log")))
            }
        }
    }
}

/// Rewrites any error response poem made by itself into `{code, message}`.
/// Errors our handlers built (already JSON) pass through untouched.
pub async fn json_errors(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let message = match status.as_u16() {
        404 => "no such route".to_owned(),
        405 => "method not allowed on this route".to_owned(),
        401 => "missing or malformed bearer token".to_owned(),
        _ => err.to_string(),
    };
    // Statuses no operation declares (they come from routing and framing).
    let undeclared = match status.as_u16() {
        405 => Some("METHOD_NOT_ALLOWED"),
        411 => Some("LENGTH_REQUIRED"),
        _ => None,
    };
    match undeclared {
        Some(code) => Json(ErrorBody::new(code, message)).with_status(status).into_response(),
        None => ApiError::from_status(status.as_u16(), message).into_response(),
    }
}

/// Copies an error body's `retry_after` into the `Retry-After` header of 429
/// and 503 answers (RFC 9110 §10.2.3), where clients and proxies look for it.
pub fn retry_after_header(ep: impl poem::Endpoint + 'static) -> impl poem::Endpoint {
    use poem::EndpointExt;
    use poem::http::{HeaderValue, StatusCode, header};
    ep.around(|ep, req: poem::Request| async move {
        let resp = ep.call(req).await.map(IntoResponse::into_response).unwrap_or_else(|e| e.into_response());
        let limited = matches!(resp.status(), StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
        if !limited || resp.headers().contains_key(header::RETRY_AFTER) {
            return Ok::<_, poem::Error>(resp);
        }
        // Error bodies are small JSON objects: read, look, rebuild.
        let (mut parts, body) = resp.into_parts();
        let bytes = body.into_bytes().await.unwrap_or_default();
        let secs = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["retry_after"].as_u64())
            .unwrap_or(1);
        parts.headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        Ok(poem::Response::from_parts(parts, poem::Body::from(bytes)))
    })
}

/// Adds the `Allow` header RFC 9110 requires on 405 answers, listing the
/// methods the API documents for the path (the spec's; a web view's HTML GET
/// is not part of the API contract).
pub fn allow_header(ep: impl poem::Endpoint + 'static) -> impl poem::Endpoint {
    use poem::EndpointExt;
    ep.around(|ep, req: poem::Request| async move {
        let path = req.uri().path().to_owned();
        let mut resp = ep.call(req).await.map(IntoResponse::into_response).unwrap_or_else(|e| e.into_response());
        if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
            && let Some(methods) = allowed_methods(&path)
            && let Ok(value) = poem::http::HeaderValue::from_str(&methods)
        {
            resp.headers_mut().insert(poem::http::header::ALLOW, value);
        }
        Ok::<_, poem::Error>(resp)
    })
}

fn allowed_methods(path: &str) -> Option<String> {
    use std::collections::{BTreeSet, HashMap};
    use std::sync::LazyLock;
    static METHODS: LazyLock<HashMap<String, BTreeSet<String>>> = LazyLock::new(|| {
        let spec: serde_json::Value = serde_json::from_str(&crate::spec_json()).unwrap_or_default();
        let mut map: HashMap<String, BTreeSet<String>> = HashMap::new();
        if let Some(paths) = spec["paths"].as_object() {
            for (p, ops) in paths {
                let set = map.entry(p.clone()).or_default();
                set.extend(ops.as_object().into_iter().flat_map(|o| o.keys().map(|m| m.to_uppercase())));
            }
        }
        for methods in map.values_mut() {
            if methods.contains("GET") {
                methods.insert("HEAD".into());
            }
        }
        map
    });
    METHODS.get(path).map(|m| m.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// Declares the error responses of one operation: the listed statuses plus
/// 500 and 503, which any operation can answer. Converting from [`ApiError`]
/// keeps the status when it is listed; anything else (a bug) becomes a 500,
/// so the spec never promises less than what comes back.
///
/// Each status's description is written into the variant as a literal doc
/// comment, one `@build` step per variant: poem-openapi reads doc attributes
/// as they are and would see a macro call there, not its text.
#[macro_export]
macro_rules! operation_errors {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $status:literal),* $(,)? }) => {
        $crate::operation_errors!(@build [$(#[$meta])*] $name [] [] $($variant = $status,)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] BadRequest = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "The request is malformed or breaks a rule; `code` says which."] #[oai(status = $status)] BadRequest(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* BadRequest] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] Unauthorized = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "Missing, malformed, unknown or expired credentials."] #[oai(status = $status)] Unauthorized(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* Unauthorized] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] Forbidden = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "Not allowed: a tampered or expired signed URL, closed signup, a bad invite; `code` says which."] #[oai(status = $status)] Forbidden(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* Forbidden] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] NotFound = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "No such resource belongs to the caller."] #[oai(status = $status)] NotFound(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* NotFound] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] Conflict = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "The resource is not in a state that allows this, or already exists; `code` says which."] #[oai(status = $status)] Conflict(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* Conflict] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] PayloadTooLarge = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "The body or the declared size is larger than allowed."] #[oai(status = $status)] PayloadTooLarge(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* PayloadTooLarge] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] UnsupportedMediaType = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "The body has a media type this operation does not take."] #[oai(status = $status)] UnsupportedMediaType(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* UnsupportedMediaType] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] Gone = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "The share link has expired (`SHARE_EXPIRED`) or has no downloads left (`SHARE_EXHAUSTED`)."] #[oai(status = $status)] Gone(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* Gone] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] RangeNotSatisfiable = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "The requested byte range lies outside the file."] #[oai(status = $status)] RangeNotSatisfiable(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* RangeNotSatisfiable] $($rest)*);
    };
    // hyper's own answer to a request line over 65,534 bytes, before pan
    // sees the request: empty, so the spec documents it without a body
    // (the one error that is not `{code, message}`). Never made by pan.
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] UriTooLong = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "The URI is over 65,534 bytes (hyper's limit; a path this long, percent-encoded, names nothing that can exist). Empty body."] #[oai(status = $status)] #[allow(dead_code)] UriTooLong,]
            [$($v)*] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] TooManyRequests = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "A rate or concurrency limit was reached; `Retry-After` (and `retry_after`) say when to try again."] #[oai(status = $status)] TooManyRequests(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* TooManyRequests] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] InsufficientStorage = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "`QUOTA_EXCEEDED`: this would take you past your storage quota (bytes, files, or files and folders)."] #[oai(status = $status)] InsufficientStorage(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* InsufficientStorage] $($rest)*);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*]) => {
        $($meta)*
        #[derive(Debug, poem_openapi::ApiResponse)]
        pub enum $name {
            $($acc)*
            /// A bug or a broken backend; details are in the server log.
            #[oai(status = 500)]
            Internal(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            /// A backend is unreachable or this server is busy; retry after `Retry-After`.
            #[oai(status = 503)]
            Unavailable(poem_openapi::payload::Json<$crate::error::ErrorBody>),
        }

        impl From<$crate::error::ApiError> for $name {
            fn from(e: $crate::error::ApiError) -> Self {
                use $crate::error::ApiError;
                match e {
                    $( ApiError::$v(body) => $name::$v(body), )*
                    ApiError::Unavailable(body) => $name::Unavailable(body),
                    ApiError::Internal(body) => $name::Internal(body),
                    other => {
                        tracing::error!(error = ?other, operation = stringify!($name), "undeclared error status");
                        $name::Internal(poem_openapi::payload::Json($crate::error::ErrorBody::new(
                            "INTERNAL",
                            "internal error; see the server log",
                        )))
                    }
                }
            }
        }

        impl From<shared::Error> for $name {
            fn from(e: shared::Error) -> Self {
                $crate::error::ApiError::from(e).into()
            }
        }
    };
}
