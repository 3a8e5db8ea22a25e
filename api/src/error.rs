//! The one mapping from domain errors to HTTP: a status and a JSON body
//! `{code, message}` with a stable UPPER_SNAKE code. Errors poem produces by
//! itself (unknown route, wrong method, unparsable JSON or query, missing
//! token) are rewritten into the same shape by [`json_errors`].

use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use shared::{Error, ErrorCode};

/// The body of every error response.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `UPLOAD_NOT_FOUND`: one of the
    /// `ErrorCode` schema's values, each explained in the API description.
    /// (A string, not that enum, so a client built today still reads an
    /// error whose code a later server adds.) Private: only
    /// [`ErrorBody::new`] sets it, from the registry.
    code: String,
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
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.as_str().to_owned(),
            message: message.into(),
            missing: None,
            missing_count: None,
            ids: None,
            retry_after: None,
        }
    }
}

/// Adds the `ErrorCode` schema to a spec poem-openapi wrote: every code, as
/// a string enum, so a generated client has a type to compare codes with.
/// No field has that type (`ErrorBody::code` is a string, see there), and
/// poem-openapi drops the schemas no operation refers to, so it goes in
/// here, first among the schemas.
pub fn with_error_code_schema(spec: &str) -> String {
    const SCHEMAS: &str = "\n    \"schemas\": {\n";
    let schema = serde_json::json!({
        "type": "string",
        "description": "Every code an error body's `code` may hold; the API description says what each means.",
        "enum": ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
    });
    let pretty = serde_json::to_string_pretty(&schema).expect("a JSON value prints");
    let entry = format!("      \"ErrorCode\": {},\n", pretty.replace('\n', "\n      "));
    match spec.find(SCHEMAS) {
        Some(at) => {
            let at = at + SCHEMAS.len();
            format!("{}{entry}{}", &spec[..at], &spec[at..])
        }
        None => spec.to_owned(),
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
    /// The content to be replaced is not the one expected.
    #[oai(status = 412)]
    PreconditionFailed(Json<ErrorBody>),
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
    /// An answer with `code`, at the status the registry gives it.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_body(ErrorBody::new(code, message))
    }

    /// An answer with this body, at the status its code has.
    fn with_body(body: ErrorBody) -> Self {
        let status = body.code.parse::<ErrorCode>().map_or(500, ErrorCode::status);
        let wrap: fn(Json<ErrorBody>) -> ApiError = match status {
            400 => ApiError::BadRequest,
            401 => ApiError::Unauthorized,
            403 => ApiError::Forbidden,
            404 => ApiError::NotFound,
            409 => ApiError::Conflict,
            410 => ApiError::Gone,
            412 => ApiError::PreconditionFailed,
            413 => ApiError::PayloadTooLarge,
            415 => ApiError::UnsupportedMediaType,
            416 => ApiError::RangeNotSatisfiable,
            429 => ApiError::TooManyRequests,
            503 => ApiError::Unavailable,
            507 => ApiError::InsufficientStorage,
            _ => ApiError::Internal,
        };
        wrap(Json(body))
    }

    /// A 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// A status and body for errors poem raised before a handler ran.
    fn from_status(status: u16, message: String) -> Self {
        let code = match status {
            401 => ErrorCode::Unauthenticated,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            416 => ErrorCode::RangeNotSatisfiable,
            429 => ErrorCode::TooManyRequests,
            507 => ErrorCode::QuotaExceeded,
            503 => ErrorCode::BackendUnavailable,
            s if s >= 500 => ErrorCode::Internal,
            _ => ErrorCode::InvalidRequest,
        };
        Self::new(code, message)
    }
}

impl From<Error> for ApiError {
    /// The code is the error's own; the status is the code's; the message
    /// is the error's text, except where that would tell a client about the
    /// server's insides (those are logged instead).
    fn from(e: Error) -> Self {
        let code = e.code();
        let mut body = ErrorBody::new(code, e.to_string());
        match &e {
            Error::AmbiguousPath { ids, .. } | Error::AmbiguousFilehash { ids } => body.ids = Some(ids.clone()),
            Error::ChunksMissing { missing, count } => {
                body.missing = Some(missing.clone());
                body.missing_count = Some(*count);
            }
            Error::TooMany { retry_after, .. } | Error::Busy { retry_after, .. } => {
                body.retry_after = Some(*retry_after)
            }
            Error::ChunkBusy { .. } => body.retry_after = Some(1),
            Error::DiskFull { .. } => {
                tracing::error!(error = %e, "disk full");
                body.message = "the server's disk is full; retry later".into();
                body.retry_after = Some(60);
            }
            Error::Unavailable { what, .. } => {
                tracing::warn!(error = %e, "backend unavailable");
                body.message = format!("{what} is unavailable, retry later");
                body.retry_after = Some(5);
            }
            Error::Internal { .. } | Error::BadSetting { .. } => {
                tracing::error!(error = ?e, "internal error");
                body.message = "internal error; see the server log".into();
            }
            _ => {}
        }
        Self::with_body(body)
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
        405 => Some(ErrorCode::MethodNotAllowed),
        411 => Some(ErrorCode::LengthRequired),
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
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [$($v:ident)*] PreconditionFailed = $status:literal, $($rest:tt)*) => {
        $crate::operation_errors!(@build [$($meta)*] $name
            [$($acc)* #[doc = "`CONTENT_CHANGED`: the file to be replaced does not have the content `if_match` names (it changed meanwhile)."] #[oai(status = $status)] PreconditionFailed(poem_openapi::payload::Json<$crate::error::ErrorBody>),]
            [$($v)* PreconditionFailed] $($rest)*);
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
                            shared::ErrorCode::Internal,
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
