//! The domain error. Backends translate their own failures (sqlx, redis,
//! object_store, I/O) into these variants at their boundary, so nothing outside
//! `shared` matches on a driver's error. The api crate owns the one mapping
//! from a variant to an HTTP status and `{code, message}`.

use std::fmt::Display;

pub use super::codes::ErrorCode;

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in the domain's words.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong; `code` names the rule it broke.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    /// Wrong username or password (the same answer for both, on purpose).
    #[error("wrong username or password")]
    BadCredentials,
    /// Not allowed, whoever asks (signup closed, a bad invite); `code` says why.
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    /// No user with that name (operator commands).
    #[error("no such user")]
    UserNotFound,
    /// None of the caller's app passwords has that id.
    #[error("no such app password of yours")]
    AppPasswordNotFound,
    /// The username is already registered.
    #[error("username is already taken")]
    UsernameTaken,
    /// No upload with that id belongs to the caller (or it expired or was aborted).
    #[error("no such upload (unknown, expired, aborted, or not yours)")]
    UploadNotFound,
    /// No file with that hash belongs to the caller.
    #[error("no such file")]
    FileNotFound,
    /// No such share link (unknown, revoked, or what it shared is gone).
    #[error("no such share link")]
    ShareNotFound,
    /// The share link has expired or used up its downloads; `code` says which.
    #[error("{message}")]
    ShareGone { code: ErrorCode, message: String },
    /// The share link has a password and the request carries no valid access.
    #[error("this link needs its password: unlock it first")]
    SharePasswordRequired,
    /// A wrong password for a share link.
    #[error("wrong password for this link")]
    SharePasswordWrong,
    /// No live folder with that id or path belongs to the caller.
    #[error("no such folder")]
    FolderNotFound,
    /// Nothing in the caller's trash has that id.
    #[error("no such item in your trash")]
    TrashItemNotFound,
    /// The name is taken in the destination folder (and the request asked
    /// not to pick another).
    #[error("{name:?} is taken in that folder")]
    NameTaken { name: String },
    /// A replacement expected other content than the file has now (its
    /// `if_match`): someone changed it meanwhile.
    #[error("the file's content is not the one expected: it changed meanwhile")]
    ContentChanged,
    /// No such version of the caller's file.
    #[error("no such version of this file")]
    VersionNotFound,
    /// A folder cannot move into itself or below itself.
    #[error("a folder cannot move into itself or one of its subfolders")]
    MoveIntoItself,
    /// A new folder, a move or a restore would put a folder deeper than
    /// the tree may go.
    #[error("folders may be at most {max} levels deep")]
    FolderTooDeep { max: u32 },
    /// A path names several entries (names that clashed before folders
    /// existed); the request must name one by its id.
    #[error("{path:?} names {} entries; name one by its id", ids.len())]
    AmbiguousPath { path: String, ids: Vec<String> },
    /// A `filehash` names several of the caller's entries (contents whose
    /// SHA-1 collide); the request must name one by its entry id.
    #[error("filehash names {} of your files; name one by its id", ids.len())]
    AmbiguousFilehash { ids: Vec<String> },
    /// The upload is past the state the operation needs.
    #[error("upload is {state}, not uploading")]
    NotUploading { state: String },
    /// The upload's whole-file hashes were declared already, with other
    /// values (the file changed while it was read?).
    #[error("this upload's hashes were declared already, with other values; abort it and start again")]
    HashAlreadyDeclared,
    /// `complete` on an upload whose hashes were never declared.
    #[error("declare the file's hashes (POST /file/mupload/declare) before complete")]
    HashNotDeclared,
    /// Another send of the same bytes (`what`: "chunk 3", "bytes 0-1023")
    /// is being received; retry shortly.
    #[error("{what} is being received by another request; retry in a moment")]
    ChunkBusy { what: String },
    /// The bytes were received and hashed already, and this send's differ
    /// from those: hashed bytes never change.
    #[error("{what} was received and verified already, with other bytes; hashed bytes cannot be replaced")]
    ChunkConflict { what: String },
    /// A send's bytes overlap received bytes sent in other bounds: a range
    /// is sent again whole, or not at all.
    #[error(
        "{what} overlap bytes received already in other bounds; send a received range again whole, or only bytes not received yet"
    )]
    RangeOverlap { what: String },
    /// A new segment would take the upload past the most segments one
    /// upload may have.
    #[error("the upload holds {max} segments, the most one may: send larger ranges")]
    TooManySegments { max: u64 },
    /// The upload's size is known already (with another value), or bytes
    /// were received past the size given.
    #[error("{message}")]
    SizeConflict { message: String },
    /// `complete` was called before every chunk arrived.
    #[error("{count} chunk(s) missing")]
    ChunksMissing { missing: Vec<u64>, count: u64 },
    /// A body was larger than allowed.
    #[error("{message}")]
    TooLarge { code: ErrorCode, message: String },
    /// Too many requests or open resources for this caller; retry after
    /// `retry_after` seconds. `code` names the limit.
    #[error("{message}")]
    TooMany { code: ErrorCode, message: String, retry_after: u64 },
    /// Accepting this would take the caller past their storage quota.
    #[error("{message}")]
    QuotaExceeded { message: String },
    /// This process is at capacity for this kind of work; retry after
    /// `retry_after` seconds.
    #[error("{message}")]
    Busy { message: String, retry_after: u64 },
    /// The server's own disk is full (staging a chunk, assembling a file):
    /// nothing the client did, and retrying later may succeed.
    #[error("{what}: the server's disk is full ({source})")]
    DiskFull {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A byte range outside the file.
    #[error("range not satisfiable for a file of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// A backend could not be reached or timed out; retrying may help.
    #[error("{what} is unavailable: {source}")]
    Unavailable {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A setting names something pan cannot use (a store URL of an unknown
    /// scheme, a directory it cannot create): found at start-up, where the
    /// process exits 2 with the message.
    #[error("{message}")]
    BadSetting { message: String },
    /// Anything else: a bug or a broken backend. Logged with its cause chain.
    #[error("{context}: {source}")]
    Internal {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// A 400-class validation error with a stable code.
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Invalid { code, message: message.into() }
    }

    /// The code a client is told, which also sets the answer's status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid { code, .. }
            | Error::Forbidden { code, .. }
            | Error::ShareGone { code, .. }
            | Error::TooLarge { code, .. }
            | Error::TooMany { code, .. } => *code,
            Error::BadCredentials => ErrorCode::BadCredentials,
            Error::UserNotFound => ErrorCode::UserNotFound,
            Error::AppPasswordNotFound => ErrorCode::AppPasswordNotFound,
            Error::UsernameTaken => ErrorCode::UsernameTaken,
            Error::UploadNotFound => ErrorCode::UploadNotFound,
            Error::FileNotFound => ErrorCode::FileNotFound,
            Error::ShareNotFound => ErrorCode::ShareNotFound,
            Error::SharePasswordRequired => ErrorCode::SharePasswordRequired,
            Error::SharePasswordWrong => ErrorCode::SharePasswordWrong,
            Error::FolderNotFound => ErrorCode::FolderNotFound,
            Error::TrashItemNotFound => ErrorCode::TrashItemNotFound,
            Error::NameTaken { .. } => ErrorCode::NameTaken,
            Error::ContentChanged => ErrorCode::ContentChanged,
            Error::VersionNotFound => ErrorCode::VersionNotFound,
            Error::MoveIntoItself => ErrorCode::MoveIntoItself,
            Error::FolderTooDeep { .. } => ErrorCode::FolderTooDeep,
            Error::AmbiguousPath { .. } => ErrorCode::PathAmbiguous,
            Error::AmbiguousFilehash { .. } => ErrorCode::FilehashAmbiguous,
            Error::NotUploading { .. } => ErrorCode::UploadNotUploading,
            Error::HashAlreadyDeclared => ErrorCode::HashAlreadyDeclared,
            Error::HashNotDeclared => ErrorCode::HashNotDeclared,
            Error::ChunkBusy { .. } => ErrorCode::ChunkBusy,
            Error::ChunkConflict { .. } => ErrorCode::ChunkConflict,
            Error::RangeOverlap { .. } => ErrorCode::RangeOverlap,
            Error::TooManySegments { .. } => ErrorCode::TooManySegments,
            Error::SizeConflict { .. } => ErrorCode::SizeConflict,
            Error::ChunksMissing { .. } => ErrorCode::ChunksMissing,
            Error::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            Error::Busy { .. } => ErrorCode::Busy,
            Error::DiskFull { .. } => ErrorCode::ServerDiskFull,
            Error::RangeNotSatisfiable { .. } => ErrorCode::RangeNotSatisfiable,
            Error::Unavailable { .. } => ErrorCode::BackendUnavailable,
            Error::BadSetting { .. } | Error::Internal { .. } => ErrorCode::Internal,
        }
    }

    /// Whether a backend was away (a retry later may succeed), as opposed to
    /// a refusal or local trouble.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// An unexpected failure with what we were doing.
    pub fn internal(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal { context: context.into(), source: source.into() }
    }
}

/// `.context("doing X")` on fallible backend calls: turns any error into
/// [`Error::Internal`] unless it already is a domain error.
pub trait ResultExt<T> {
    /// Wraps the error with what was being done.
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E> ResultExt<T> for std::result::Result<T, E>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| {
            let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
            match boxed.downcast::<Error>() {
                Ok(domain) => *domain,
                Err(other) => Error::Internal { context: what.to_string(), source: other },
            }
        })
    }
}

// The conversions below run at a `?`: `track_caller` gives them that `?`'s
// place in the source, so the log names the query, command or object call
// that failed (a client only ever hears `INTERNAL`).

impl From<sqlx::Error> for Error {
    #[track_caller]
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Error::Unavailable { what: "database", source: Box::new(e) }
            }
            // SQLite busy or locked (past busy_timeout): retryable, not a bug.
            sqlx::Error::Database(ref d) if matches!(d.code().as_deref(), Some("5" | "6" | "261" | "262" | "517")) => {
                Error::Unavailable { what: "database", source: Box::new(e) }
            }
            other => Error::internal(format!("database query at {}", std::panic::Location::caller()), other),
        }
    }
}

impl From<redis::RedisError> for Error {
    #[track_caller]
    fn from(e: redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        // Away, or coming back: a server still loading its append-only file
        // (LOADING), a cluster between masters (TRYAGAIN, CLUSTERDOWN,
        // MASTERDOWN, a node not reached). The client may retry.
        let coming_back = matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
            ) | ErrorKind::ClusterConnectionNotFound
        );
        if coming_back || e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
            Error::Unavailable { what: "redis", source: Box::new(e) }
        } else {
            Error::internal(format!("redis command at {}", std::panic::Location::caller()), e)
        }
    }
}

impl From<object_store::Error> for Error {
    /// A store that does not answer, times out or fails on its side (what
    /// object_store reports as `Generic`, after its own retries) is away:
    /// the client may retry. The other kinds (a bad path, a permission or
    /// configuration problem, a missing object the caller did not expect)
    /// are pan's bugs or its operator's.
    #[track_caller]
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::Generic { .. } => Error::Unavailable { what: "object store", source: Box::new(e) },
            other => Error::internal(format!("object store call at {}", std::panic::Location::caller()), other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    fn failing_query() -> super::Result<()> {
        Err(sqlx::Error::RowNotFound)?
    }

    /// A backend failure converted at a `?` names that `?`'s place, so the
    /// log says which query failed; the client only hears the code.
    #[test]
    fn a_backend_failure_names_where_it_happened() {
        let line = line!() - 7;
        let Err(Error::Internal { context, .. }) = failing_query() else { panic!("not internal") };
        assert_eq!(context, format!("database query at {}:{line}:9", file!()));
        assert_eq!(failing_query().unwrap_err().code(), super::ErrorCode::Internal);
    }

    /// A Redis still loading its append-only file after a restart, or a
    /// cluster between masters, is away for a moment (503 with Retry-After),
    /// not a bug; a script error is.
    #[test]
    fn redis_coming_back_is_unavailable_and_a_script_error_is_internal() {
        use redis::{ErrorKind, RedisError, ServerErrorKind};
        for kind in [ServerErrorKind::BusyLoading, ServerErrorKind::TryAgain, ServerErrorKind::ClusterDown] {
            let e: Error = RedisError::from((ErrorKind::Server(kind), "away")).into();
            assert!(e.is_unavailable(), "{kind:?}: {e}");
        }
        let e: Error = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "bad script")).into();
        assert_eq!(e.code(), super::ErrorCode::Internal);
    }
}
