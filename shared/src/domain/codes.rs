//! The one registry of error codes: every `{code, message}` pan answers with
//! names one of these. The spec's table of codes, its `ErrorCode` schema and
//! the README's table are written from this list, and an error's HTTP status
//! is the status its code has here.

macro_rules! error_codes {
    ($($variant:ident = ($wire:literal, $status:literal, $meaning:literal),)*) => {
        /// A stable, machine-readable error code (`UPPER_SNAKE` on the wire).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order the documentation lists them.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }

            /// The HTTP status an answer with this code has.
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }

            /// What the code means, for the documentation.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }

            /// The variant's name, for the registry's own test.
            #[cfg(test)]
            const fn variant_name(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

#[rustfmt::skip]
error_codes! {
    InvalidRequest = ("INVALID_REQUEST", 400, "The request does not match the spec: a malformed body, query or header."),
    InvalidUsername = ("INVALID_USERNAME", 400, "The username breaks the rule (1-64 of A-Z a-z 0-9 . _ -)."),
    InvalidPassword = ("INVALID_PASSWORD", 400, "The password breaks the rule (8-1024 characters, no NUL)."),
    InvalidFilename = ("INVALID_FILENAME", 400, "The name is empty, over 255 bytes, holds `/` or `\\`, control, bidirectional or invisible characters (U+200E, U+200F, U+061C, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF, tags), or is `.` or `..`."),
    InvalidPath = ("INVALID_PATH", 400, "The path does not start with `/`, holds `.` or `..`, or a name in it breaks the name rule."),
    InvalidCursor = ("INVALID_CURSOR", 400, "The cursor is not of the form this listing's cursors have."),
    InvalidName = ("INVALID_NAME", 400, "An app password's name must be 1-64 characters without control characters."),
    InvalidFilehash = ("INVALID_FILEHASH", 400, "`filehash` is not a SHA-1 (40 hex characters)."),
    InvalidSha256 = ("INVALID_SHA256", 400, "`sha256` is not a SHA-256 (64 hex characters)."),
    InvalidFilesize = ("INVALID_FILESIZE", 400, "`filesize` is negative."),
    InvalidMtime = ("INVALID_MTIME", 400, "`mtime` is not Unix seconds from 0 to 253402300799 (the end of year 9999)."),
    FilehashRequired = ("FILEHASH_REQUIRED", 400, "`sha256` came without `filehash`: give both, or neither and declare them later."),
    InvalidChunkIndex = ("INVALID_CHUNK_INDEX", 400, "`chkidx` is outside the upload's chunks."),
    InvalidChecksumHeader = ("INVALID_CHECKSUM_HEADER", 400, "`Upload-Checksum` is not `sha1 <base64 of 20 bytes>` (on tus, or `sha256 <base64 of 32 bytes>`)."),
    UnsupportedChecksum = ("UNSUPPORTED_CHECKSUM", 400, "`Upload-Checksum` names an algorithm other than sha1 (tus also takes sha256)."),
    ChunkSizeMismatch = ("CHUNK_SIZE_MISMATCH", 400, "The chunk is shorter than its exact length."),
    ChunkChecksumMismatch = ("CHUNK_CHECKSUM_MISMATCH", 400, "The chunk's bytes do not match its `Upload-Checksum`."),
    ChunkTooSlow = ("CHUNK_TOO_SLOW", 400, "The chunk arrived slower than the server's floor after 30 s."),
    BodyTimeout = ("BODY_TIMEOUT", 400, "No bytes of the body arrived for 60 s."),
    BodyReadFailed = ("BODY_READ_FAILED", 400, "The body could not be read (the client went away)."),
    Unauthenticated = ("UNAUTHENTICATED", 401, "Missing, malformed, unknown or expired token."),
    BadCredentials = ("BAD_CREDENTIALS", 401, "Wrong username or password (the same for every failed signin)."),
    SharePasswordRequired = ("SHARE_PASSWORD_REQUIRED", 401, "The share link has a password: unlock it and pass the `access` it gives."),
    Forbidden = ("FORBIDDEN", 403, "Not allowed."),
    UrlInvalid = ("URL_INVALID", 403, "The signed URL is malformed or tampered with."),
    UrlExpired = ("URL_EXPIRED", 403, "The signed URL has expired."),
    SharePasswordWrong = ("SHARE_PASSWORD_WRONG", 403, "Wrong password for this share link (attempts are rate-limited)."),
    SignupClosed = ("SIGNUP_CLOSED", 403, "Signup is closed on this server."),
    InviteRequired = ("INVITE_REQUIRED", 403, "Signup on this server needs an invite code."),
    InviteInvalid = ("INVITE_INVALID", 403, "The invite code is unknown or used."),
    PasswordWrong = ("PASSWORD_WRONG", 403, "The current password given to change it is wrong."),
    NotFound = ("NOT_FOUND", 404, "No such route."),
    UploadNotFound = ("UPLOAD_NOT_FOUND", 404, "No such upload of yours (unknown, expired, aborted or forgotten): start it again."),
    FileNotFound = ("FILE_NOT_FOUND", 404, "No such file of yours (or nothing at that path)."),
    FolderNotFound = ("FOLDER_NOT_FOUND", 404, "No such folder of yours (unknown, in the trash, or not a folder)."),
    TrashItemNotFound = ("TRASH_ITEM_NOT_FOUND", 404, "Nothing in your trash has that id."),
    ShareNotFound = ("SHARE_NOT_FOUND", 404, "No such share link (unknown, revoked, or what it shared was deleted)."),
    UserNotFound = ("USER_NOT_FOUND", 404, "No such user (operator commands)."),
    AppPasswordNotFound = ("APP_PASSWORD_NOT_FOUND", 404, "None of your app passwords has that id."),
    VersionNotFound = ("VERSION_NOT_FOUND", 404, "No such version of that file of yours (expired, deleted, or never made)."),
    MethodNotAllowed = ("METHOD_NOT_ALLOWED", 405, "The route does not take this method (`Allow` lists those it does)."),
    Conflict = ("CONFLICT", 409, "The resource is not in a state that allows this."),
    UsernameTaken = ("USERNAME_TAKEN", 409, "The username is registered already."),
    UploadNotUploading = ("UPLOAD_NOT_UPLOADING", 409, "The upload is past the state this needs (merging, done or failed)."),
    ChunkConflict = ("CHUNK_CONFLICT", 409, "The chunk was received and hashed already with other bytes; hashed chunks never change."),
    RangeOverlap = ("RANGE_OVERLAP", 409, "The bytes overlap bytes received already in other bounds: send a received range again whole, or only bytes not received yet."),
    TooManySegments = ("TOO_MANY_SEGMENTS", 409, "The upload holds the most byte ranges one upload may (`PAN_MAX_CHUNKS`): send larger ranges, or start again."),
    SizeConflict = ("SIZE_CONFLICT", 409, "The upload's size is known already with another value, or bytes were received past the size given."),
    OffsetMismatch = ("OFFSET_MISMATCH", 409, "A tus `PATCH` names another `Upload-Offset` than the upload's: `HEAD` it and go on from there."),
    HashAlreadyDeclared = ("HASH_ALREADY_DECLARED", 409, "The upload's hashes were declared already, with other values: abort it and start again."),
    HashNotDeclared = ("HASH_NOT_DECLARED", 409, "`complete` on an upload begun without hashes: declare them first."),
    ChunksMissing = ("CHUNKS_MISSING", 409, "`complete` before every chunk arrived; `missing` lists them."),
    FilehashAmbiguous = ("FILEHASH_AMBIGUOUS", 409, "`filehash` names several of your files; `ids` lists them."),
    PathAmbiguous = ("PATH_AMBIGUOUS", 409, "The path names several entries (names that clashed before folders); `ids` lists them."),
    NameTaken = ("NAME_TAKEN", 409, "The name is taken in that folder and `on_conflict` is `refuse`."),
    MoveIntoItself = ("MOVE_INTO_ITSELF", 409, "A folder cannot move into itself or one of its subfolders."),
    FolderTooDeep = ("FOLDER_TOO_DEEP", 409, "The folder would be deeper than the tree may go (`PAN_MAX_DEPTH`, 64 by default)."),
    ShareExpired = ("SHARE_EXPIRED", 410, "The share link has expired."),
    ShareExhausted = ("SHARE_EXHAUSTED", 410, "The share link has no downloads left."),
    LengthRequired = ("LENGTH_REQUIRED", 411, "The body needs a `Content-Length`."),
    ContentChanged = ("CONTENT_CHANGED", 412, "The file's content is not the one `if_match` names: it changed meanwhile (an upload's bytes are kept)."),
    TusVersionUnsupported = ("TUS_VERSION_UNSUPPORTED", 412, "A tus request without `Tus-Resumable: 1.0.0` (the one version served; `OPTIONS /tus/` says so)."),
    PayloadTooLarge = ("PAYLOAD_TOO_LARGE", 413, "The body is larger than allowed."),
    FileTooLarge = ("FILE_TOO_LARGE", 413, "The file is larger than the server takes."),
    ChunkTooLarge = ("CHUNK_TOO_LARGE", 413, "The chunk is longer than its exact length."),
    ZipTooManyEntries = ("ZIP_TOO_MANY_ENTRIES", 413, "The folder holds more entries than one zip may (`PAN_ZIP_MAX_ENTRIES`)."),
    UnsupportedMediaType = ("UNSUPPORTED_MEDIA_TYPE", 415, "The body's media type is not one this operation takes."),
    RangeNotSatisfiable = ("RANGE_NOT_SATISFIABLE", 416, "The byte range lies outside the file (`Content-Range: bytes */size`)."),
    UploadLocked = ("UPLOAD_LOCKED", 423, "Another tus `PATCH` is sending to this upload and did not let go within 10 s; retry (a newer `PATCH` makes an older one stop at its next durable boundary)."),
    TooManyRequests = ("TOO_MANY_REQUESTS", 429, "A limit was reached; `Retry-After` says when to try again."),
    RateLimited = ("RATE_LIMITED", 429, "Too many signins or signups from this address (or for this name); see `Retry-After`."),
    TooManyUploads = ("TOO_MANY_UPLOADS", 429, "Too many unfinished uploads open; complete or abort one."),
    TooManyChunks = ("TOO_MANY_CHUNKS", 429, "Too many chunks being received at once; see `Retry-After`."),
    ChecksumMismatch = ("CHECKSUM_MISMATCH", 460, "A tus `PATCH` body does not match its `Upload-Checksum`: none of it was kept."),
    Internal = ("INTERNAL", 500, "A bug or a broken backend; the server log has the details."),
    BackendUnavailable = ("BACKEND_UNAVAILABLE", 503, "A backend (database, Redis, object store, job queue) is away; see `Retry-After`."),
    ChunkBusy = ("CHUNK_BUSY", 503, "Another request is sending this chunk right now; see `Retry-After`."),
    Busy = ("BUSY", 503, "This server is at capacity for this work; see `Retry-After`."),
    ServerDiskFull = ("SERVER_DISK_FULL", 507, "The server's disk is full (not your quota); see `Retry-After`."),
    QuotaExceeded = ("QUOTA_EXCEEDED", 507, "This would take you past your storage quota (bytes, files, or files and folders)."),}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s).ok_or(())
    }
}

impl ErrorCode {
    /// The codes as a Markdown table (code, status, meaning), for the spec's
    /// description and the README.
    pub fn markdown_table() -> String {
        let mut out = String::from("| code | status | meaning |\n|---|---|---|\n");
        for code in ErrorCode::ALL {
            out.push_str(&format!("| `{code}` | {} | {} |\n", code.status(), code.meaning()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// A code's wire name is its variant's name in UPPER_SNAKE, so the two
    /// cannot drift apart; no code is listed twice; statuses are errors.
    #[test]
    fn wire_names_follow_the_variants_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let mut snake = String::new();
            for (i, ch) in code.variant_name().chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(ch.to_ascii_uppercase());
            }
            assert_eq!(code.as_str(), snake);
            assert!(seen.insert(code.as_str()), "{code} is listed twice");
            assert!((400..600).contains(&code.status()), "{code}: {}", code.status());
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
    }
}
