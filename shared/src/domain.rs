//! Validated domain types, parsed once where input enters (the api edge) so the
//! rest of the code cannot hold an invalid one.

mod codes;
pub mod error;
pub mod hashing;
mod names;
mod plan;
pub mod versions;

pub use codes::ErrorCode;
pub use names::{EntryId, FileName, FolderId, Password, Sha1Hex, Sha256Hex, UploadId, UserName, name_key};
pub use plan::{ChunkPlan, Segment, covered_ranges};

use serde::{Deserialize, Serialize};

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    /// Server-made numeric id; the key of everything the user owns.
    pub id: i64,
    /// The name the user signed up with.
    pub username: String,
    /// When the account was created (Unix seconds).
    pub created_at: i64,
    /// The user's own storage quota in bytes; `None`: the installation's default.
    pub quota_bytes: Option<i64>,
    /// The user's own limit on files; `None`: the installation's default.
    pub quota_files: Option<i64>,
    /// Who acts for the user in this request (the session's device, the
    /// app password): the author of the versions its changes make.
    pub author: Author,
}

/// Who made a change: the kind of credential and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// How they signed in.
    pub kind: AuthorKind,
    /// The session's device name (else the username), or the app password's name.
    pub name: String,
}

/// How an [`Author`] signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorKind {
    /// A session token (the page, the CLI, the API).
    Session,
    /// An app password (WebDAV, tus).
    AppPassword,
    /// The server itself, for the user (an operator's command).
    Server,
}

impl AuthorKind {
    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorKind::Session => "session",
            AuthorKind::AppPassword => "app_password",
            AuthorKind::Server => "server",
        }
    }

    /// The kind a stored spelling names (an unknown one reads as `server`).
    pub fn parse(s: &str) -> Self {
        match s {
            "session" => AuthorKind::Session,
            "app_password" => AuthorKind::AppPassword,
            _ => AuthorKind::Server,
        }
    }
}

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Chunks are arriving.
    Uploading,
    /// Every chunk is in; a merge job assembles and verifies the file.
    Merging,
    /// The file is stored and listed for its owner.
    Done,
    /// The merge found a problem (e.g. a hash mismatch); `reason` says which.
    Failed,
}

impl UploadState {
    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Uploading => "uploading",
            UploadState::Merging => "merging",
            UploadState::Done => "done",
            UploadState::Failed => "failed",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uploading" => UploadState::Uploading,
            "merging" => UploadState::Merging,
            "done" => UploadState::Done,
            "failed" => UploadState::Failed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for UploadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a merge ended an upload `failed`, as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// Chunks were missing when the merge ran (final).
    ChunksMissing,
    /// The bytes do not hash to the declared SHA-1 (final).
    Sha1Mismatch,
    /// The bytes do not hash to the declared SHA-256 (final).
    Sha256Mismatch,
    /// The file could not be assembled (local I/O, a full disk): the chunks
    /// are kept and `complete` retries.
    AssemblyFailed,
    /// The file could not be stored: the chunks are kept and `complete` retries.
    StoreFailed,
    /// The file the upload was to replace has other content than its
    /// `if_match` named: the chunks are kept (abort, or `complete` again).
    ContentChanged,
}

impl FailureCode {
    /// Every code, for documentation and parsing.
    pub const ALL: [FailureCode; 6] = [
        FailureCode::ChunksMissing,
        FailureCode::Sha1Mismatch,
        FailureCode::Sha256Mismatch,
        FailureCode::AssemblyFailed,
        FailureCode::StoreFailed,
        FailureCode::ContentChanged,
    ];

    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::ChunksMissing => "CHUNKS_MISSING",
            FailureCode::Sha1Mismatch => "SHA1_MISMATCH",
            FailureCode::Sha256Mismatch => "SHA256_MISMATCH",
            FailureCode::AssemblyFailed => "ASSEMBLY_FAILED",
            FailureCode::StoreFailed => "STORE_FAILED",
            FailureCode::ContentChanged => "CONTENT_CHANGED",
        }
    }

    /// Parses the storage spelling (`None` for anything else, e.g. empty).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether calling `complete` again retries the merge (the chunks are kept).
    pub fn retryable(self) -> bool {
        matches!(self, FailureCode::AssemblyFailed | FailureCode::StoreFailed | FailureCode::ContentChanged)
    }
}

/// One upload in progress (or just finished): who, what, and its geometry.
#[derive(Debug, Clone)]
pub struct UploadSession {
    /// Server-made, unguessable id.
    pub id: UploadId,
    /// The owner's user id.
    pub owner: i64,
    /// The name the client gave; metadata only.
    pub filename: String,
    /// Declared SHA-1 of the whole file: given at init, or declared while
    /// the chunks flow (`None` until then; `complete` needs it).
    pub filehash: Option<Sha1Hex>,
    /// Declared SHA-256 of the whole file, when the client sent one: checked
    /// by the merge, and needed for resume and instant upload.
    pub sha256: Option<Sha256Hex>,
    /// The client's own opaque token for the local file (e.g. a hash of its
    /// path, size and mtime), by which an init that names no hash finds
    /// this upload to resume it.
    pub fingerprint: Option<String>,
    /// Nobody vouches for the content's hashes: the server's running hash
    /// is its identity (WebDAV, tus). Instant upload is never offered to it,
    /// and `complete` needs no declaration (one given is still checked).
    pub server_hashed: bool,
    /// The file's size in bytes; `None` while it is unknown (an upload that
    /// appends until its end, which then says the size).
    pub size: Option<u64>,
    /// The size of every chunk but the last, in the fixed-size chunk
    /// protocol (see [`UploadSession::plan`]).
    pub chunk_size: u64,
    /// Bytes received: the sum of its segments' lengths (they never
    /// overlap, so the upload is whole when this is its size).
    pub received: u64,
    /// Current state.
    pub state: UploadState,
    /// Why the upload failed, once it has.
    pub reason: Option<String>,
    /// The same as a stable code, once it has.
    pub reason_code: Option<FailureCode>,
    /// The entry the upload produced, once `done`.
    pub entry_id: Option<String>,
    /// The folder the file goes into (`None`: the root; also the root when
    /// that folder is gone by the time the upload finishes).
    pub folder: Option<FolderId>,
    /// The file's modification time the client declared at init (Unix
    /// seconds); the entry gets it (`None`: the time the upload finishes).
    pub mtime: Option<i64>,
    /// Whether the upload replaces the content of a file of its name (see
    /// [`NameRule::Replace`]); otherwise a taken name gets a number.
    pub replace: bool,
    /// With `replace`: the content it expects to replace.
    pub if_match: Option<Sha256Hex>,
    /// Who sends it (the author of the version a replacement makes).
    pub author: Author,
    /// The upload link it came through (`None`: its owner's own): only
    /// that link's holders may touch it, and its bytes go back to that
    /// link when it ends without a file.
    pub via_link: Option<String>,
    /// When its current (or last) merge started (Unix seconds).
    pub merge_started_at: Option<i64>,
    /// How many bytes, from the first, the running hash has passed (always
    /// a segment's end): they are in the upload's hash and never change again.
    pub hashed: u64,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last activity (Unix seconds); idle sessions expire after the TTL.
    pub updated_at: i64,
}

impl UploadSession {
    /// How the file is cut into chunks, once its size is known.
    pub fn plan(&self) -> Option<ChunkPlan> {
        self.size.map(|size| ChunkPlan::with_chunk_size(size, self.chunk_size))
    }
}

/// A user's entry for a stored file.
#[derive(Debug, Clone)]
pub struct UserFile {
    /// The entry's opaque id ([`EntryId`]).
    pub id: String,
    /// SHA-1 of the content.
    pub filehash: String,
    /// SHA-256 of the content (absent for content stored before pan recorded it).
    pub sha256: Option<String>,
    /// Size in bytes.
    pub filesize: i64,
    /// The user's name for it.
    pub filename: String,
    /// The folder it is in (`""`: the root).
    pub folder: String,
    /// When the user got it (Unix seconds).
    pub uploaded_at: i64,
    /// Last rename (Unix seconds).
    pub updated_at: i64,
    /// The file's own modification time (Unix seconds), as the uploader
    /// declared it ([`Mtime`]), else the upload time.
    pub mtime: i64,
}

/// A file's modification time as a client declares it: Unix seconds from 0
/// (1970) to the end of year 9999, the range every client's clock type
/// (JavaScript's `Date`, a 64-bit `time_t`, `SystemTime`) can show and set.
/// A time in the future is accepted (clocks drift; the file says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mtime(i64);

impl Mtime {
    /// The latest accepted: 9999-12-31T23:59:59Z.
    pub const MAX: i64 = 253_402_300_799;

    /// Validates Unix seconds: [`ErrorCode::InvalidMtime`] outside `0..=MAX`.
    pub fn parse(secs: i64) -> error::Result<Self> {
        if (0..=Self::MAX).contains(&secs) {
            Ok(Mtime(secs))
        } else {
            Err(error::Error::invalid(
                ErrorCode::InvalidMtime,
                format!("mtime {secs} is not Unix seconds from 0 to {} (the end of year 9999)", Self::MAX),
            ))
        }
    }

    /// The seconds.
    pub fn secs(self) -> i64 {
        self.0
    }
}

/// A stored blob, shared by every user who has the same content.
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// The content's row id.
    pub id: i64,
    /// SHA-1 of the content.
    pub filehash: String,
    /// SHA-256 of the content (absent for content stored before pan recorded it).
    pub sha256: Option<String>,
    /// Size in bytes.
    pub filesize: i64,
    /// Key in the file store (server-made; see [`crate::stores::objects::file_key`]).
    pub storage_key: String,
    /// Where the backup copy is, once one was made.
    pub backup_key: Option<String>,
    /// Where its backup copy is in its life.
    pub backup_state: BackupState,
}

/// Where a content's backup copy is in its life (column `files.backup_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupState {
    /// No copy asked for: stored while no backup store was configured.
    None,
    /// A copy is queued or running.
    Pending,
    /// The backup store holds a copy (at `backup_key`).
    Done,
    /// The last copy failed; the clean-up job queues it again.
    Failed,
}

impl BackupState {
    /// The storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::None => "none",
            BackupState::Pending => "pending",
            BackupState::Done => "done",
            BackupState::Failed => "failed",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => BackupState::None,
            "pending" => BackupState::Pending,
            "done" => BackupState::Done,
            "failed" => BackupState::Failed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for BackupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of a user's folders.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The folder's opaque id ([`FolderId`]).
    pub id: String,
    /// Its name in its parent.
    pub name: String,
    /// The folder it is in (`""`: the root).
    pub parent: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// Last rename or move (Unix seconds).
    pub updated_at: i64,
}

/// What to do when a name is taken in the destination folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameRule {
    /// Give the new entry the first free `name (n).ext` (the default).
    #[default]
    Rename,
    /// Refuse with `NAME_TAKEN`.
    Refuse,
    /// Give the file of that name this content, keeping the content it had
    /// as a version (a folder of that name is still refused: `NAME_TAKEN`).
    /// For files only: creating or moving a folder takes the other rules.
    Replace,
    /// Put whatever holds the name (a file, or a folder with everything in
    /// it) into the trash and take the name, in the same transaction as the
    /// move or copy: WebDAV's `Overwrite: T` where a file does not simply
    /// get new content (a folder over anything, a file over a folder).
    /// Offered by moves and file copies only; elsewhere it refuses.
    Supersede,
}

/// Where a new file goes: a folder (`None`: the root) and the rule for a
/// taken name.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The destination folder.
    pub folder: Option<FolderId>,
    /// What to do when the name is taken there.
    pub rule: NameRule,
    /// With [`NameRule::Replace`]: the content (SHA-256) the caller expects
    /// to replace; another there is `CONTENT_CHANGED`.
    pub if_match: Option<Sha256Hex>,
}

/// How a folder listing is ordered (folders always come first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// By name, byte order.
    #[default]
    Name,
    /// By size (folders by name).
    Size,
    /// By time: a file's modification time ([`UserFile::mtime`]), a
    /// folder's creation time.
    Time,
}

/// A file or a folder, as listings show them.
#[derive(Debug, Clone)]
pub enum TreeItem {
    /// A folder.
    Folder(Folder),
    /// A file.
    File(UserFile),
}

impl TreeItem {
    /// Its name in its folder.
    pub fn name(&self) -> &str {
        match self {
            TreeItem::Folder(d) => &d.name,
            TreeItem::File(f) => &f.filename,
        }
    }
}

/// Something the user deleted, waiting in the trash.
#[derive(Debug, Clone)]
pub struct TrashItem {
    /// The file or folder as it was.
    pub item: TreeItem,
    /// When it was deleted (Unix seconds).
    pub trashed_at: i64,
}

/// A share link: anyone holding it may read one file or folder of its owner.
#[derive(Debug, Clone)]
pub struct Share {
    /// The link's opaque id (22 URL-safe characters, 128 random bits).
    pub link: String,
    /// The owner's user id.
    pub owner: i64,
    /// What it shares: a file entry or a folder (by their ids).
    pub target: ShareTarget,
    /// The Argon2id hash of its password, when it has one.
    pub password_hash: Option<String>,
    /// When it stops working (Unix seconds); `None`: never.
    pub expires_at: Option<i64>,
    /// How many downloads it allows; `None`: any number. A download is
    /// counted in bytes: the link sends at most `max_downloads` x
    /// [`Share::unit`] bytes of content, however they are asked for.
    pub max_downloads: Option<i64>,
    /// The size of what it shares, taken when it was made (a folder: the
    /// total size of the files below it). `None` only on links made before
    /// downloads were counted in bytes, until they are next opened.
    pub size: Option<i64>,
    /// Bytes of content it has sent (reserved before the first byte goes).
    pub bytes_sent: i64,
    /// Downloads counted one per GET from byte 0 by older versions; only
    /// read while `size` is unknown.
    pub legacy_downloads: i64,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

/// An upload link (a file drop): anyone holding it may upload into the
/// owner's folder, counted against the owner's quota, and sees nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLink {
    /// The link's opaque id (22 URL-safe characters, 128 random bits).
    pub link: String,
    /// The owner's user id.
    pub owner: i64,
    /// The folder uploads land in (`""`: the root).
    pub folder: String,
    /// The Argon2id hash of its password, when it has one.
    pub password_hash: Option<String>,
    /// When it stops working (Unix seconds); `None`: never.
    pub expires_at: Option<i64>,
    /// The most bytes it takes in all; `None`: no limit but the quota.
    pub max_bytes: Option<i64>,
    /// Bytes taken so far (reserved as each upload begins).
    pub bytes_used: i64,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

impl Share {
    /// What one download is, in bytes: the size, at least 1 (so that a link
    /// to nothing, or to empty files, still counts its downloads).
    pub fn unit(&self) -> i64 {
        self.size.unwrap_or(0).max(1)
    }

    /// The bytes it may send in all; `None`: no limit.
    pub fn budget(&self) -> Option<i64> {
        self.max_downloads.map(|m| m.saturating_mul(self.unit()))
    }

    /// Downloads so far: the bytes sent over the size, rounded up.
    pub fn downloads(&self) -> i64 {
        match self.size {
            Some(_) => self.bytes_sent.div_euclid(self.unit()) + i64::from(self.bytes_sent.rem_euclid(self.unit()) > 0),
            None => self.legacy_downloads,
        }
    }

    /// Whether it has nothing left to send.
    pub fn used_up(&self) -> bool {
        match (self.budget(), self.size) {
            (Some(budget), Some(_)) => self.bytes_sent >= budget,
            (Some(_), None) => self.max_downloads.is_some_and(|m| self.legacy_downloads >= m),
            (None, _) => false,
        }
    }
}

/// What a share link shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareTarget {
    /// A file entry, by id.
    File(String),
    /// A folder, by id.
    Folder(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_states_round_trip_through_their_storage_spelling() {
        for s in [BackupState::None, BackupState::Pending, BackupState::Done, BackupState::Failed] {
            assert_eq!(BackupState::parse(s.as_str()), Some(s));
        }
        assert_eq!(BackupState::parse("DONE"), None);
        assert_eq!(BackupState::parse(""), None);
    }
}
