//! The metadata repository: users and their tokens, stored files and the
//! users' entries for them.
//!
//! One SQL implementation ([`SqlRepo`]) serves both real systems; what differs
//! between them (connecting, migrations, transaction start) lives in
//! [`sqlite`] and [`mysql`], chosen once by [`open`] from the URL scheme.
//! Every statement is parameterised.

mod archive;
mod keys;
mod locks;
pub mod mysql;
mod props;
mod quota;
mod rows;
mod search;
mod sessions;
mod shares;
mod sql;
pub mod sqlite;
mod tree;
mod versions;

use async_trait::async_trait;

pub(crate) use archive::read_header;
pub use rows::SqlRepo;
pub(crate) use rows::is_unique_violation;

use crate::domain::error::{Error, Result};
use crate::domain::{
    Author, BackupState, Folder, NameRule, Share, SortKey, StoredFile, TrashItem, TreeItem, UploadLink, User, UserFile,
    UserName,
};

/// Users and signin tokens.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Registers a user; [`Error::UsernameTaken`] when the name exists. With
    /// `invite_hash`, the invite is spent in the same transaction
    /// ([`Error::Forbidden`] `INVITE_INVALID` when it is unknown or used).
    async fn create_user(
        &self,
        name: &UserName,
        password_hash: &str,
        now: i64,
        invite_hash: Option<&str>,
    ) -> Result<User>;
    /// The (enabled) user and their password hash, by name.
    async fn user_with_hash(&self, name: &str) -> Result<Option<(User, String)>>;
    /// An enabled user by id.
    async fn user_by_id(&self, id: i64) -> Result<Option<User>>;
    /// The enabled user a live token belongs to.
    async fn user_by_token(&self, token_hash: &str, now: i64) -> Result<Option<User>>;
    /// Revokes one token.
    async fn delete_token(&self, token_hash: &str) -> Result<()>;
    /// Drops tokens that expired before `now`.
    async fn delete_expired_tokens(&self, now: i64) -> Result<u64>;
    /// What a user stores, live and in the trash.
    async fn usage(&self, user_id: i64) -> Result<Usage>;
}

/// One signin session, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its public id: the first 16 hex characters of the token's SHA-256
    /// (the token itself is never stored).
    pub id: String,
    /// The device named at signin, if any.
    pub device: Option<String>,
    /// When it was given out and when it stops working (Unix seconds).
    pub created_at: i64,
    /// See `created_at`.
    pub expires_at: i64,
}

/// One app password, as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    /// Its public id (32 hex characters).
    pub id: String,
    /// Its owner's name for it.
    pub name: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it last let a client in (written at most once a minute).
    pub last_used_at: Option<i64>,
}

/// The log of proof-of-possession challenges on stored content, whoever
/// was asked: how a content whose challenges keep failing stops offering
/// cross-user instant uploads.
#[async_trait]
pub trait ChallengeLog: Send + Sync {
    /// Notes a challenge on content `file_id` for upload `upload_id`.
    async fn challenge_issued(&self, file_id: i64, upload_id: &str, now: i64) -> Result<()>;
    /// Notes the answer to upload `upload_id`'s challenge: a right one is
    /// forgotten, a wrong one counts as failed.
    async fn challenge_answered(&self, upload_id: &str, right: bool) -> Result<()>;
    /// Challenges on `file_id` issued since `since` that failed: answered
    /// wrong, or issued before `unanswered_before` and never answered.
    async fn failed_challenges(&self, file_id: i64, since: i64, unanswered_before: i64) -> Result<u64>;
    /// Forgets challenges issued before `before` (the clean-up).
    async fn forget_challenges(&self, before: i64) -> Result<u64>;
}

/// Sessions (signin tokens) and app passwords, beyond signing in and out.
#[async_trait]
pub trait SessionRepo: Send + Sync {
    /// Stores a token (by its hash) valid until `expires_at`, naming `device`.
    async fn insert_session(
        &self,
        token_hash: &str,
        user_id: i64,
        device: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The user's live sessions, newest first.
    async fn sessions(&self, user_id: i64, now: i64) -> Result<Vec<Session>>;
    /// Revokes every token of the user but `except` (a token's hash); with
    /// `app_passwords`, their app passwords too. Returns the tokens revoked.
    async fn revoke_sessions(&self, user_id: i64, except: Option<&str>, app_passwords: bool) -> Result<u64>;
    /// Replaces the user's password hash and revokes their tokens but
    /// `except`, in one transaction. [`Error::UserNotFound`] when there is
    /// no such user.
    async fn set_password(&self, user_id: i64, password_hash: &str, except: Option<&str>) -> Result<()>;
    /// The id of the user named `name` (enabled or not).
    async fn user_id_by_name(&self, name: &str) -> Result<Option<i64>>;
    /// Records a new app password (by its secret's SHA-256).
    async fn add_app_password(&self, user_id: i64, app: &AppPassword, secret_hash: &str) -> Result<()>;
    /// The user's app passwords, oldest first.
    async fn app_passwords(&self, user_id: i64) -> Result<Vec<AppPassword>>;
    /// Revokes one of the user's app passwords; false when they have none
    /// with that id.
    async fn revoke_app_password(&self, user_id: i64, id: &str) -> Result<bool>;
    /// The enabled user named `name` whose app password this is (by its
    /// secret's SHA-256), with the app password's id and last use.
    async fn user_by_app_password(&self, name: &str, secret_hash: &str) -> Result<Option<(User, String, Option<i64>)>>;
    /// Notes an app password's use.
    async fn touch_app_password(&self, id: &str, now: i64) -> Result<()>;
}

/// What a user stores: their live files and what waits in their trash
/// (both count against quotas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Live file entries.
    pub files: i64,
    /// Their bytes (an entry counts its content's size, shared or not).
    pub bytes: i64,
    /// File entries in the trash (folders' contents included).
    pub trash_files: i64,
    /// Their bytes.
    pub trash_bytes: i64,
}

/// A user as the operator sees them.
#[derive(Debug, Clone)]
pub struct Account {
    /// The user.
    pub user: User,
    /// Whether they are locked out.
    pub disabled: bool,
    /// How many files they have.
    pub files: i64,
    /// Bytes of those files.
    pub bytes: i64,
}

/// What an operator does to accounts (`api admin …`).
#[async_trait]
pub trait AccountRepo: Send + Sync {
    /// Sets a user's own quota (`None`: the installation's default).
    async fn set_quota(&self, name: &str, quota_bytes: Option<i64>, quota_files: Option<i64>) -> Result<()>;
    /// Disables (revoking every token and app password) or enables a user.
    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<()>;
    /// Records a new invite code (by its SHA-256).
    async fn add_invite(&self, code_hash: &str, now: i64) -> Result<()>;
    /// Every user with their usage, by name.
    async fn accounts(&self) -> Result<Vec<Account>>;
}

/// What a merge commits: the content and the entry its owner gets.
#[derive(Debug, Clone)]
pub struct NewUserFile<'a> {
    /// Owner.
    pub user_id: i64,
    /// SHA-1 of the content (verified).
    pub filehash: &'a str,
    /// SHA-256 of the content (verified): with the size, its identity.
    pub sha256: &'a str,
    /// Size in bytes.
    pub filesize: i64,
    /// The owner's name for it.
    pub filename: &'a str,
    /// The folder it goes into (`None`, or a folder that is gone: the root).
    pub folder: Option<&'a str>,
    /// What to do when the name is taken there. An entry of the same name
    /// and content already there is the answer either way (a repeated
    /// upload adds nothing).
    pub rule: NameRule,
    /// When (Unix seconds).
    pub now: i64,
    /// The file's modification time the uploader declared (`None`: `now`).
    /// An entry of the same name and content already there gets it too.
    pub mtime: Option<i64>,
    /// The quota hold that reserved room for this content: released in the
    /// transaction that records the entry (the room is used now).
    pub hold: Option<&'a str>,
    /// With [`NameRule::Replace`]: the content (SHA-256) the file of that
    /// name must have for it to be replaced ([`crate::Error::ContentChanged`]
    /// otherwise).
    pub if_match: Option<&'a str>,
    /// Who makes the change (the author of the version a replacement keeps).
    pub author: &'a Author,
}

/// An entry as a change left it, and the contents nothing references any
/// more (their rows are gone; their bytes are the caller's to delete).
#[derive(Debug, Clone)]
pub struct Placed {
    /// The entry.
    pub entry: UserFile,
    /// Contents left without a reference.
    pub orphans: Vec<StoredFile>,
}

/// Stored content and users' entries for it. Content is shared, identified by
/// (SHA-256, size): the `files` row counts the entries that reference it, and
/// the bytes go when it drops to zero (entries in the trash count). Entries
/// are named by their opaque entry id; a user may have several entries for
/// one content, in different folders or under different names. Every method
/// here sees live entries only (not in the trash) unless it says otherwise.
#[async_trait]
pub trait FileRepo: Send + Sync {
    /// The live stored content with this identity, if any.
    async fn stored_file(&self, sha256: &str, filesize: i64) -> Result<Option<StoredFile>>;
    /// Stored content by its row id (for the backup job).
    async fn stored_file_by_id(&self, id: i64) -> Result<Option<StoredFile>>;
    /// One of the user's entries for the content (SHA-256, size), if they
    /// have one (in the trash too: it holds the content all the same).
    async fn own_entry(&self, user_id: i64, sha256: &str, filesize: i64) -> Result<Option<UserFile>>;
    /// Gives the user an entry for content that is already stored ("instant"
    /// upload), matched by (SHA-256, size), in the folder `f` names.
    /// `None` when no such content is stored (anymore).
    async fn link_existing(&self, f: &NewUserFile<'_>) -> Result<Option<Placed>>;
    /// Records merged content stored under `storage_key` and the user's entry
    /// for it, in one transaction. When the same content (SHA-256 and size)
    /// is stored already, its row is referenced instead; the returned
    /// [`StoredFile`] says which key is in effect (the caller deletes its own
    /// copy if it lost).
    async fn commit_merged(&self, f: &NewUserFile<'_>, storage_key: &str) -> Result<(Placed, StoredFile)>;
    /// A page of the user's live entries, newest first, and how many there are.
    async fn list_files(&self, user_id: i64, limit: i64, offset: i64) -> Result<(Vec<UserFile>, i64)>;
    /// The user's entries whose content has this SHA-1 (one, unless the user
    /// holds colliding contents) with their content, oldest first.
    async fn entries_with_sha1(&self, user_id: i64, filehash: &str) -> Result<Vec<(UserFile, StoredFile)>>;
    /// The content behind each of the user's live entries `entry_ids`, by
    /// entry id (entries that are not live are left out).
    async fn contents_of(&self, user_id: i64, entry_ids: &[String]) -> Result<Vec<(String, StoredFile)>>;
    /// The user's entry with this id and the content behind it.
    async fn user_file(&self, user_id: i64, entry_id: &str) -> Result<Option<(UserFile, StoredFile)>>;
}

/// A page of a listing: at most `limit` items after `after` (a cursor the
/// previous page returned).
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Order of the items (folders first).
    pub sort: SortKey,
    /// Descending instead of ascending.
    pub desc: bool,
    /// Page size.
    pub limit: i64,
    /// Where the previous page ended.
    pub after: Option<ListCursor>,
}

/// Where a listing page ended: the last item's kind, sort key and row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    /// Whether the last item was a file (folders come first).
    pub in_files: bool,
    /// Its sort key (a name, or a number as text).
    pub key: String,
    /// Its row, the tie-breaker.
    pub row: i64,
}

/// Where things go in a move or a restore: a folder id (`""`: the root).
pub type ParentId<'a> = &'a str;

/// The users' trees: folders, moves, renames and the trash.
///
/// Every change to one user's tree takes that user's turn (a row lock), so
/// two concurrent changes cannot both take a name or build a cycle.
#[async_trait]
pub trait TreeRepo: Send + Sync {
    /// The user's live folder with this id.
    async fn folder(&self, user_id: i64, folder_id: &str) -> Result<Option<Folder>>;
    /// The live folders and files called `name` in `parent` (folders first;
    /// several only where names clashed before folders existed).
    async fn children_named(&self, user_id: i64, parent: ParentId<'_>, name: &str) -> Result<Vec<TreeItem>>;
    /// A page of `parent`'s live children, folders first, and the cursor of
    /// the next page (`None`: this was the last).
    async fn list_children(
        &self,
        user_id: i64,
        parent: ParentId<'_>,
        page: &PageRequest,
    ) -> Result<(Vec<TreeItem>, Option<ListCursor>)>;
    /// Makes a folder in `parent` (a live folder of the user, or the root).
    async fn create_folder(
        &self,
        user_id: i64,
        parent: ParentId<'_>,
        name: &str,
        rule: NameRule,
        bounds: &TreeBounds,
        now: i64,
    ) -> Result<Folder>;
    /// Renames and/or moves a live folder to `dest`. Refuses a move into
    /// itself or below itself, and one that would put a folder deeper than
    /// `max_depth`.
    async fn move_folder(
        &self,
        user_id: i64,
        folder_id: &str,
        dest: &Destination<'_>,
        max_depth: u32,
        now: i64,
    ) -> Result<Folder>;
    /// Renames and/or moves a live file entry, like [`TreeRepo::move_folder`].
    /// With [`NameRule::Replace`] onto a file: that file gets this entry's
    /// content, keeping its own as a version, and this entry's versions;
    /// this entry is gone.
    async fn move_file(&self, user_id: i64, entry_id: &str, dest: &Destination<'_>, now: i64) -> Result<Placed>;
    /// A new entry for a live file entry's content at `dest` (the same
    /// rules as a move; its versions stay with the original).
    async fn copy_file(&self, user_id: i64, entry_id: &str, dest: &Destination<'_>, now: i64) -> Result<Placed>;
    /// Moves a live file or folder (and everything below it) to the trash.
    /// [`crate::Error::FileNotFound`] when `id` names neither.
    async fn trash(&self, user_id: i64, id: &str, now: i64) -> Result<()>;
    /// A page of the user's trash, latest deleted first, and the cursor of
    /// the next page.
    async fn list_trash(
        &self,
        user_id: i64,
        limit: i64,
        after: Option<&(i64, String)>,
    ) -> Result<(Vec<TrashItem>, Option<(i64, String)>)>;
    /// Puts a trashed item back: in its old folder when that is live, else
    /// the root, with `rule` for a taken name.
    async fn restore(&self, user_id: i64, id: &str, rule: NameRule, max_depth: u32, now: i64) -> Result<TreeItem>;
    /// Deletes a trashed item and everything below it for good; returns the
    /// contents nobody references any more (their rows are gone and their
    /// bytes are the caller's to delete).
    async fn purge(&self, user_id: i64, id: &str) -> Result<Vec<StoredFile>>;
    /// The total size of the live files in the user's live folder
    /// `folder_id` and every live folder below it.
    async fn folder_bytes(&self, user_id: i64, folder_id: &str) -> Result<i64>;
    /// Trash items deleted before `before`, any user's: (user, id).
    async fn trash_expired(&self, before: i64, limit: i64) -> Result<Vec<(i64, String)>>;
    /// The user's live folders and files whose name contains `query`,
    /// ignoring case, by name; a page of `limit` after `after` (the previous
    /// page's last lowercased name and id), and where the next page starts.
    async fn search(
        &self,
        user_id: i64,
        query: &str,
        limit: i64,
        after: Option<&(String, String)>,
    ) -> Result<(Vec<TreeItem>, Option<(String, String)>)>;
}

/// Share links.
#[async_trait]
pub trait ShareRepo: Send + Sync {
    /// Records a new link.
    async fn create_share(&self, share: &Share) -> Result<()>;
    /// The link with this id, unless revoked.
    async fn share(&self, link: &str) -> Result<Option<Share>>;
    /// The user's links that are not revoked, newest first.
    async fn shares_of(&self, user_id: i64) -> Result<Vec<Share>>;
    /// Revokes the user's link; [`crate::Error::ShareNotFound`] when they have none by that id.
    async fn revoke_share(&self, user_id: i64, link: &str, now: i64) -> Result<()>;
    /// Records that the link (not revoked) will send `bytes` more, atomically
    /// and only if `bytes_sent + bytes` stays within `budget` (`None`: no
    /// limit); false (and nothing recorded) when it would not. Two api
    /// processes reserving at once never overshoot the budget together.
    async fn reserve_share_bytes(&self, link: &str, bytes: i64, budget: Option<i64>) -> Result<bool>;
    /// Gives a link made before downloads were counted in bytes its size and
    /// `bytes_sent`; a link that has a size already is left as it is.
    async fn set_share_size(&self, link: &str, size: i64, bytes_sent: i64) -> Result<()>;
    /// Records a new upload link.
    async fn create_upload_link(&self, link: &UploadLink) -> Result<()>;
    /// The upload link with this id, unless revoked.
    async fn upload_link(&self, link: &str) -> Result<Option<UploadLink>>;
    /// The user's upload links that are not revoked, newest first.
    async fn upload_links_of(&self, user_id: i64) -> Result<Vec<UploadLink>>;
    /// Revokes the user's upload link; [`crate::Error::ShareNotFound`] when
    /// they have none by that id.
    async fn revoke_upload_link(&self, user_id: i64, link: &str, now: i64) -> Result<()>;
    /// Counts `bytes` more against the upload link (not revoked), atomically
    /// and only if `bytes_used + bytes` stays within its `max_bytes`; false
    /// (nothing counted) when it would not.
    async fn reserve_upload_link_bytes(&self, link: &str, bytes: i64) -> Result<bool>;
    /// Gives `bytes` back to the upload link (an upload through it that
    /// was refused or aborted), never below 0.
    async fn release_upload_link_bytes(&self, link: &str, bytes: i64) -> Result<()>;
}

/// Backup bookkeeping for stored files, by content row id.
#[async_trait]
pub trait BackupRepo: Send + Sync {
    /// Records a backup attempt's outcome (`Pending`, `Done`, `Failed`);
    /// attempts count up on `Failed`.
    async fn set_backup(&self, file_id: i64, state: BackupState, key: Option<&str>, now: i64) -> Result<()>;
    /// Contents whose backup is `pending` or `failed` and was last tried
    /// before `before`: the clean-up job enqueues them again.
    async fn backups_due(&self, before: i64, limit: i64) -> Result<Vec<i64>>;
    /// Whether any stored content lives at `storage_key` (for the scrub).
    async fn is_referenced(&self, storage_key: &str) -> Result<bool>;
    /// Whether any stored content has its backup at `backup_key`.
    async fn is_backup_referenced(&self, backup_key: &str) -> Result<bool>;
}

/// Secrets the server makes for itself and every process shares.
#[async_trait]
pub trait SecretRepo: Send + Sync {
    /// The secret called `name`, created with `fresh` if it does not exist yet
    /// (whoever creates it first wins; every caller gets the same value).
    async fn secret(&self, name: &str, fresh: &str) -> Result<String>;
}

/// One signing key as stored: its purpose (`url`, `share`), id, secret
/// (hex) and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// What it signs: `url` or `share`.
    pub purpose: String,
    /// Its id, carried by everything it signs.
    pub kid: String,
    /// The secret, as hex.
    pub secret: String,
    /// When it was made (Unix seconds); the newest of a purpose signs.
    pub created_at: i64,
}

/// The signing keys every api process shares (rotated, so unlike
/// [`SecretRepo`] a purpose has several).
#[async_trait]
pub trait KeyRepo: Send + Sync {
    /// Every key, by purpose, oldest first (then by id).
    async fn signing_keys(&self) -> Result<Vec<StoredKey>>;
    /// Adds a key; `false` (and nothing changed) when its id is already
    /// taken in its purpose.
    async fn add_signing_key(&self, key: &StoredKey) -> Result<bool>;
    /// Forgets a key (nothing when it is already gone).
    async fn drop_signing_key(&self, purpose: &str, kid: &str) -> Result<()>;
}

/// What the consistency audit reads from the repository.
#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Every live stored content.
    async fn all_files(&self) -> Result<Vec<StoredFile>>;
    /// Ids of user entries whose content row is missing.
    async fn entries_without_content(&self) -> Result<Vec<String>>;
    /// Contents whose reference count differs from their entries: (id, refcount, entries).
    async fn refcount_mismatches(&self) -> Result<Vec<(i64, i64, i64)>>;
    /// Ids of live files and folders whose folder is neither the root nor a
    /// live folder of the same user.
    async fn entries_outside_tree(&self) -> Result<Vec<String>>;
    /// Items of the name index that are no folder or file entry.
    async fn stale_name_index(&self) -> Result<Vec<String>>;
    /// Every folder's and file entry's (id, name), live or trashed, for the
    /// audit's name check (names made before a rule was added).
    async fn entry_names(&self) -> Result<Vec<(String, String)>>;
    /// Live names of one folder that are one name in NFC but stored
    /// differently (made before names compared in NFC): one of each set.
    async fn nfc_twins(&self) -> Result<Vec<String>>;
}

/// Installation-wide totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Registered users.
    pub users: i64,
    /// Distinct stored contents.
    pub files: i64,
    /// Bytes of distinct stored contents.
    pub stored_bytes: i64,
    /// Users' entries (a content shared by two users counts twice).
    pub user_files: i64,
}

/// A reservation of room in a user's quota for content on its way in.
#[derive(Debug, Clone, Copy)]
pub struct Hold<'a> {
    /// Its id: an upload's id, or one made for a single upload.
    pub id: &'a str,
    /// Whose quota.
    pub user_id: i64,
    /// The bytes it reserves (with one file).
    pub bytes: u64,
    /// Whether it is an open upload (those are also capped in number).
    pub upload: bool,
    /// When (Unix seconds).
    pub now: i64,
}

/// Where a move or rename puts an item.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The new parent (`None`: where it is; `Some("")`: the root).
    pub to: Option<ParentId<'a>>,
    /// The new name (`None`: its name).
    pub name: Option<&'a str>,
    /// What to do when the name is taken there.
    pub rule: NameRule,
    /// With [`NameRule::Replace`]: the content the file there must have.
    pub if_match: Option<&'a str>,
    /// Who makes the change.
    pub author: &'a Author,
}

/// The bounds of a user's tree, checked in the transaction that adds a
/// folder or a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeBounds {
    /// The deepest a folder may be: a folder at the root is at depth 1
    /// (`PAN_MAX_DEPTH`).
    pub max_depth: u32,
    /// Files and folders a user may have, live and in the trash, quota
    /// holds included (`PAN_QUOTA_ENTRIES`; `None`: no limit).
    pub max_entries: Option<u64>,
}

/// The limits a reservation must stay within (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes stored (live and in the trash) plus bytes held.
    pub bytes: Option<u64>,
    /// Files stored (live and in the trash) plus holds.
    pub files: Option<u64>,
    /// Open uploads.
    pub uploads: Option<u64>,
    /// Files and folders, live and trashed, plus holds.
    pub entries: Option<u64>,
}

/// Why a reservation was refused, with what the user has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// As many open uploads as allowed.
    Uploads { open: u64 },
    /// The bytes would pass the quota.
    Bytes { used: u64, held: u64, quota: u64 },
    /// One more file would pass the limit.
    Files { files: u64, held: u64, quota: u64 },
    /// One more entry would pass the limit on files and folders.
    Entries { entries: u64, quota: u64 },
}

/// The quota ledger: reserve, then commit (by recording the entry with
/// [`NewUserFile::hold`]) or release. A reservation is checked and recorded
/// in one transaction holding the user's turn, the same one every change to
/// their entries takes, so concurrent reservations from any number of
/// processes never overshoot.
#[async_trait]
pub trait QuotaRepo: Send + Sync {
    /// Reserves `hold.bytes` and one file within `limits`; a hold of the
    /// same id is resized (its old size no longer counts). `Some` when
    /// refused (nothing recorded).
    async fn reserve(&self, hold: &Hold<'_>, limits: &Limits) -> Result<Option<Refusal>>;
    /// Gives a hold's room back (none: nothing to do).
    async fn release(&self, hold_id: &str) -> Result<()>;
    /// A user's open-upload holds, and the bytes all their holds reserve.
    async fn holds(&self, user_id: i64) -> Result<(u64, u64)>;
    /// The bytes every user's open uploads still reserve: what staging may
    /// yet have to hold.
    async fn upload_bytes_held(&self) -> Result<u64>;
    /// Ids of holds made before `before` (at most `limit`): the clean-up
    /// releases those whose content is no longer on its way.
    async fn holds_before(&self, before: i64, limit: i64) -> Result<Vec<String>>;
}

pub use crate::domain::versions::Version;

/// A file's earlier contents. A version holds one reference on its content,
/// as an entry does; versions follow their entry into the trash and back
/// and go when it is purged.
#[async_trait]
pub trait VersionRepo: Send + Sync {
    /// The versions of the user's entry (live or trashed), newest first.
    /// [`crate::Error::FileNotFound`] when the user has no such entry.
    async fn versions(&self, user_id: i64, entry_id: &str) -> Result<Vec<Version>>;
    /// One version of the user's live entry.
    async fn version(&self, user_id: i64, entry_id: &str, version_id: &str) -> Result<Option<Version>>;
    /// Makes a version the entry's content again; the current content
    /// becomes a version in turn (by `author`, at `now`).
    async fn restore_version(
        &self,
        user_id: i64,
        entry_id: &str,
        version_id: &str,
        author: &Author,
        now: i64,
    ) -> Result<Placed>;
    /// Deletes a version; returns the content nothing references any more.
    async fn delete_version(&self, user_id: i64, entry_id: &str, version_id: &str) -> Result<Vec<StoredFile>>;
    /// Pins or unpins a version, and sets (or clears) its label.
    async fn pin_version(
        &self,
        user_id: i64,
        entry_id: &str,
        version_id: &str,
        pinned: bool,
        label: Option<&str>,
    ) -> Result<Version>;
    /// Ids of entries (any user's) that have versions, in order, after
    /// `after` (paging; `""` to begin), at most `limit`: what the expiry
    /// walks.
    async fn entries_with_versions(&self, after: &str, limit: i64) -> Result<Vec<String>>;
    /// Every version of an entry, any user's, as the expiry sees them.
    async fn aged_versions(&self, entry_id: &str) -> Result<Vec<crate::domain::versions::Aged>>;
    /// Deletes versions by id (any user's); returns the contents nothing
    /// references any more.
    async fn expire_versions(&self, version_ids: &[String]) -> Result<Vec<StoredFile>>;
    /// How many versions the user has and the bytes of the contents only
    /// they hold (none of the user's entries holds the same content).
    async fn version_usage(&self, user_id: i64) -> Result<(u64, u64)>;
    /// The user's unpinned versions whose content none of their files and
    /// none of their pinned versions holds (what expiring them frees), at
    /// most `limit`, oldest first: (version id, content id, size).
    async fn oldest_unpinned_versions(&self, user_id: i64, limit: i64) -> Result<Vec<(String, i64, i64)>>;
}

/// What a metadata backup holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArchiveSummary {
    /// The schema its rows fit: the newest migration applied.
    pub schema: i64,
    /// Tables.
    pub tables: u64,
    /// Rows in all.
    pub rows: u64,
}

/// The first line of a metadata backup.
#[derive(Debug, Clone)]
pub struct ArchiveHeader {
    /// The schema its rows fit.
    pub schema: i64,
    /// The system it was taken from (`sqlite`, `mysql`).
    pub dialect: String,
    /// When it was taken (Unix seconds).
    pub taken_at: i64,
}

/// The metadata as one portable copy, and the schedule of tasks one process
/// of the fleet runs at a time.
#[async_trait]
pub trait MetaArchive: Send + Sync {
    /// Writes every table that outlives an upload, read in one consistent
    /// snapshot, to `out` (the format: `archive.rs`).
    async fn dump(&self, out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send)) -> Result<ArchiveSummary>;
    /// The newest migration applied; `None` for a database never migrated.
    async fn schema_version(&self) -> Result<Option<i64>>;
    /// The newest migration this build knows.
    fn newest_schema(&self) -> i64;
    /// Applies migrations up to `version` (all when `None`).
    async fn migrate_to(&self, version: Option<i64>) -> Result<()>;
    /// Whether any user or content is stored (a restore goes only into a
    /// database without).
    async fn holds_data(&self) -> Result<bool>;
    /// Loads a backup's tables (the lines after its header) in one
    /// transaction, into a database at `schema` (checked inside it): all of
    /// it or nothing. Its references are checked before the commit, which
    /// also marks the restore unfinished until [`MetaArchive::finish_restore`].
    async fn load(
        &self,
        schema: i64,
        input: &mut (dyn tokio::io::AsyncBufRead + Unpin + Send),
    ) -> Result<ArchiveSummary>;
    /// Whether a restore loaded the metadata and has not finished bringing
    /// the bytes back (no api or worker may start meanwhile).
    async fn restore_pending(&self) -> Result<bool>;
    /// Marks the restore finished.
    async fn finish_restore(&self) -> Result<()>;
    /// Claims `task` if it is due at `now`, holding it until `until`; true
    /// for the one caller that moved it.
    async fn claim_task(&self, task: &str, now: i64, until: i64) -> Result<bool>;
    /// Sets when `task` is next due.
    async fn set_task_due(&self, task: &str, due: i64) -> Result<()>;
}

/// One WebDAV dead property of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadProp {
    /// The entry's id (`""`: the user's root).
    pub entry_id: String,
    /// The property's namespace (empty: none).
    pub ns: String,
    /// Its local name.
    pub name: String,
    /// Its value, as XML content.
    pub value: String,
}

/// One step of a PROPPATCH, applied in order.
#[derive(Debug, Clone)]
pub enum PropOp {
    /// Sets a property's value (XML content).
    Set {
        /// Its namespace.
        ns: String,
        /// Its local name.
        name: String,
        /// The value.
        value: String,
    },
    /// Removes a property (nothing when absent).
    Remove {
        /// Its namespace.
        ns: String,
        /// Its local name.
        name: String,
    },
}

/// WebDAV's properties of entries.
#[async_trait]
pub trait PropRepo: Send + Sync {
    /// The dead properties of the user's entries `entry_ids`.
    async fn dead_props(&self, user_id: i64, entry_ids: &[String]) -> Result<Vec<DeadProp>>;
    /// Applies `ops` to an entry's dead properties in one transaction, all
    /// or nothing: refused when the entry would hold more than
    /// `limits.0` of them or more than `limits.1` bytes.
    async fn patch_dead_props(
        &self,
        user_id: i64,
        entry_id: &str,
        ops: &[PropOp],
        limits: (usize, usize),
    ) -> Result<()>;
    /// Sets a live file's modification time; false when there is no such file.
    async fn set_file_mtime(&self, user_id: i64, entry_id: &str, mtime: i64) -> Result<bool>;
    /// Deletes the properties of entries that are gone for good.
    async fn drop_orphan_props(&self) -> Result<u64>;
}

/// The whole repository, as the rest of pan holds it.
#[async_trait]
pub trait MetaRepo:
    UserRepo
    + SessionRepo
    + ChallengeLog
    + AccountRepo
    + FileRepo
    + TreeRepo
    + ShareRepo
    + BackupRepo
    + SecretRepo
    + KeyRepo
    + AuditRepo
    + QuotaRepo
    + VersionRepo
    + PropRepo
    + MetaArchive
{
    /// A cheap round trip, for readiness checks.
    async fn health_check(&self) -> Result<()>;
    /// Installation-wide totals, for `/metrics`.
    async fn totals(&self) -> Result<Totals>;
}

/// Opens the repository named by `url` and applies its migrations.
/// `sqlite://…` and `mysql://…` (also `mariadb://…`) are understood.
pub async fn open(url: &str) -> Result<SqlRepo> {
    let repo = connect(url).await?;
    repo.migrate_to(None).await?;
    indexed(repo).await
}

/// Connects to the database `url` names without touching its schema: a
/// restore migrates it only as far as the backup's schema before loading
/// it (see [`SqlRepo::migrate_to`]).
pub async fn connect(url: &str) -> Result<SqlRepo> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => sqlite::connect(url).await,
        "mysql" | "mariadb" => mysql::connect(&url.replacen("mariadb:", "mysql:", 1)).await,
        _ => Err(Error::BadSetting {
            message: format!("DATABASE_URL: unsupported scheme {scheme:?}; use sqlite:// or mysql://"),
        }),
    }
}

/// The repository once every name is in the search index.
async fn indexed(repo: SqlRepo) -> Result<SqlRepo> {
    // Names keyed just now may be twins of others in NFC: renamed at once.
    if repo.key_existing_names().await? > 0 {
        tree::rename_nfc_twins(&repo).await?;
    }
    repo.index_existing_names().await?;
    Ok(repo)
}
