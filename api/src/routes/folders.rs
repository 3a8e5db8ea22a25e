//! The caller's tree: folders (create, list, look up by path, rename, move,
//! delete) and the trash (list, restore, purge).

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use shared::ErrorCode;
use shared::domain::{FileName, Folder, FolderId, NameRule, Sha256Hex, SortKey, TreeItem, User, UserFile};
use shared::tree::{ListCursor, PageRequest};
use shared::tree::{PathCache, Resolved};

use super::Tag;
use crate::auth::BearerAuth;
use crate::limits::json_body_limit;
use crate::state::AppState;
use crate::text::Text;

/// What to do when the name is taken in the destination folder. The default
/// is `rename` where something new arrives (uploads, new folders, restores)
/// and `refuse` for renames and moves.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum OnConflict {
    /// Take the first free `name (n).ext` instead.
    Rename,
    /// Refuse with 409 `NAME_TAKEN`.
    Refuse,
    /// Give the file of that name this content, keeping the content it had
    /// as a version (see `/file/versions`). Files only: uploads and file
    /// moves and copies (400 `INVALID_REQUEST` elsewhere); a folder of that
    /// name is 409 `NAME_TAKEN`, never replaced.
    Replace,
}

impl From<OnConflict> for NameRule {
    fn from(c: OnConflict) -> Self {
        match c {
            OnConflict::Rename => NameRule::Rename,
            OnConflict::Refuse => NameRule::Refuse,
            OnConflict::Replace => NameRule::Replace,
        }
    }
}

/// What to do when a folder's (or a restored item's) name is taken: a
/// folder never replaces anything, nor does a restore.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum FolderOnConflict {
    /// Take the first free `name (n)` instead.
    Rename,
    /// Refuse with 409 `NAME_TAKEN`.
    Refuse,
}

impl From<FolderOnConflict> for NameRule {
    fn from(c: FolderOnConflict) -> Self {
        match c {
            FolderOnConflict::Rename => NameRule::Rename,
            FolderOnConflict::Refuse => NameRule::Refuse,
        }
    }
}

/// [`json_rule`] for folders and restores.
pub fn folder_rule(asked: &MaybeUndefined<FolderOnConflict>, default: NameRule) -> shared::Result<NameRule> {
    match asked {
        MaybeUndefined::Undefined => Ok(default),
        MaybeUndefined::Value(v) => Ok(NameRule::from(*v)),
        MaybeUndefined::Null => Err(shared::Error::invalid(
            ErrorCode::InvalidRequest,
            "`on_conflict` is `rename` or `refuse`, or absent; not null",
        )),
    }
}

/// The rule a request asked for, or the operation's default.
pub fn rule(asked: Option<OnConflict>, default: NameRule) -> NameRule {
    asked.map(NameRule::from).unwrap_or(default)
}

/// The clash rule a JSON body asks for: absent means `default`; `null` is
/// refused (400 `INVALID_REQUEST`), as the spec says (`on_conflict` is not
/// nullable: an enum `$ref` made nullable needs an `allOf` that
/// openapi-python-client cannot read).
pub fn json_rule(asked: &MaybeUndefined<OnConflict>, default: NameRule) -> shared::Result<NameRule> {
    match asked {
        MaybeUndefined::Undefined => Ok(default),
        MaybeUndefined::Value(v) => Ok(NameRule::from(*v)),
        MaybeUndefined::Null => Err(shared::Error::invalid(
            ErrorCode::InvalidRequest,
            "`on_conflict` is `rename`, `refuse` or `replace`, or absent; not null",
        )),
    }
}

/// Whether an entry is a file or a folder.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum EntryKind {
    /// A folder.
    Folder,
    /// A file.
    File,
}

/// What a folder listing is sorted by. Folders always come first; they sort
/// by name when files sort by size.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SortBy {
    /// Name, byte order (the default).
    Name,
    /// Size in bytes.
    Size,
    /// A file's modification time (`mtime`), a folder's creation time.
    Time,
}

/// Ascending or descending.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SortOrder {
    /// Smallest, earliest, A first (the default).
    Asc,
    /// Largest, latest, Z first.
    Desc,
}

/// A file or a folder in a listing; `kind` says which.
#[derive(Debug, Clone, Object)]
pub struct TreeEntry {
    // `folder` or `file`.
    pub kind: EntryKind,
    /// The folder's or file entry's id.
    pub id: String,
    /// Its name in its folder.
    pub name: String,
    /// The folder it is in; absent: the root.
    #[oai(skip_serializing_if_is_none)]
    pub parent: Option<String>,
    /// Size in bytes (files).
    #[oai(skip_serializing_if_is_none)]
    pub size: Option<i64>,
    /// SHA-1 of the content (files).
    #[oai(skip_serializing_if_is_none)]
    pub filehash: Option<String>,
    /// SHA-256 of the content (files stored since pan records it).
    #[oai(skip_serializing_if_is_none)]
    pub sha256: Option<String>,
    /// When it was made (a file: uploaded), Unix seconds.
    pub created_at: i64,
    /// Last rename or move, Unix seconds.
    pub updated_at: i64,
    /// A file's own modification time, Unix seconds (the `mtime` its upload
    /// declared, else when it was uploaded); what `sort=time` orders files by.
    #[oai(skip_serializing_if_is_none)]
    pub mtime: Option<i64>,
    /// Its full path, e.g. `/photos/2026/a.jpg` (where the answer gives it).
    #[oai(skip_serializing_if_is_none)]
    pub path: Option<String>,
}

fn non_root(parent: String) -> Option<String> {
    (!parent.is_empty()).then_some(parent)
}

impl From<TreeItem> for TreeEntry {
    fn from(item: TreeItem) -> Self {
        match item {
            TreeItem::Folder(d) => TreeEntry {
                kind: EntryKind::Folder,
                id: d.id,
                name: d.name,
                parent: non_root(d.parent),
                size: None,
                filehash: None,
                sha256: None,
                created_at: d.created_at,
                updated_at: d.updated_at,
                mtime: None,
                path: None,
            },
            TreeItem::File(f) => TreeEntry::from(f),
        }
    }
}

impl From<UserFile> for TreeEntry {
    fn from(f: UserFile) -> Self {
        TreeEntry {
            kind: EntryKind::File,
            id: f.id,
            name: f.filename,
            parent: non_root(f.folder),
            size: Some(f.filesize),
            filehash: Some(f.filehash),
            sha256: f.sha256,
            created_at: f.uploaded_at,
            updated_at: f.updated_at,
            mtime: Some(f.mtime),
            path: None,
        }
    }
}

/// One of the caller's folders.
#[derive(Debug, Clone, Object)]
pub struct FolderInfo {
    /// The folder's id.
    pub id: String,
    /// Its name in its parent.
    pub name: String,
    /// The folder it is in; absent: the root.
    #[oai(skip_serializing_if_is_none)]
    pub parent: Option<String>,
    /// Its full path, e.g. `/photos/2026`.
    pub path: String,
    /// When it was made, Unix seconds.
    pub created_at: i64,
    /// Last rename or move, Unix seconds.
    pub updated_at: i64,
}

async fn folder_info(state: &AppState, user: &User, d: Folder) -> shared::Result<FolderInfo> {
    let path = PathCache::default().folder_path(&state.services.tree, user, &d.id).await?;
    Ok(FolderInfo {
        id: d.id,
        name: d.name,
        parent: non_root(d.parent),
        path,
        created_at: d.created_at,
        updated_at: d.updated_at,
    })
}

/// A page of a folder.
#[derive(Debug, Object)]
pub struct FolderListing {
    /// The folder listed; absent: the root.
    #[oai(skip_serializing_if_is_none)]
    pub folder: Option<FolderInfo>,
    /// Its path (`/` for the root).
    pub path: String,
    /// Folders first, then files, in the order asked for.
    pub entries: Vec<TreeEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// Search results.
#[derive(Debug, Object)]
pub struct SearchResults {
    /// Matching folders and files, by name, each with its `path`.
    pub entries: Vec<TreeEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A new folder. `on_conflict`: `rename` (the default) or `refuse`.
#[derive(Debug, Object)]
pub struct CreateFolderRequest {
    /// The folder to make it in; absent: the root.
    #[oai(nullable, validator(pattern = r"^[0-9a-f]{32}$"))]
    pub parent: Option<Text>,
    /// Its name: 1-255 bytes of UTF-8, no `/`, no control characters, not `.` or `..`.
    #[oai(validator(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]+$"
    ))]
    pub name: Text,
    // When the name is taken: `rename` (the default) or `refuse`.
    pub on_conflict: MaybeUndefined<FolderOnConflict>,
}

/// A rename and/or a move of a folder. `on_conflict`: `refuse` (the
/// default) or `rename`.
#[derive(Debug, Object)]
pub struct FolderMoveRequest {
    /// The folder's id.
    #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
    pub id: Text,
    /// The folder to move it into; the empty string for the root; absent:
    /// it stays where it is.
    #[oai(nullable, validator(pattern = r"^([0-9a-f]{32})?$"))]
    pub to: Option<Text>,
    /// Its new name; absent: it keeps its name.
    #[oai(
        nullable,
        validator(
            min_length = 1,
            max_length = 255,
            pattern = r"^[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]+$"
        )
    )]
    pub name: Option<Text>,
    // When the name is taken there: `refuse` (the default) or `rename`.
    pub on_conflict: MaybeUndefined<FolderOnConflict>,
}

/// A rename and/or a move (or a copy) of a file. `on_conflict`: `refuse`
/// (the default), `rename` or `replace`.
#[derive(Debug, Object)]
pub struct MoveRequest {
    /// The folder's or file entry's id.
    #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
    pub id: Text,
    /// The folder to move it into; the empty string for the root; absent:
    /// it stays where it is.
    #[oai(nullable, validator(pattern = r"^([0-9a-f]{32})?$"))]
    pub to: Option<Text>,
    /// Its new name; absent: it keeps its name.
    #[oai(
        nullable,
        validator(
            min_length = 1,
            max_length = 255,
            pattern = r"^[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]+$"
        )
    )]
    pub name: Option<Text>,
    // When the name is taken there: `refuse` (the default), `rename`, or
    // for a file `replace`.
    pub on_conflict: MaybeUndefined<OnConflict>,
    /// With `replace`: the SHA-256 the replaced file must have (412
    /// `CONTENT_CHANGED` otherwise, and when no file has the name).
    #[oai(nullable, validator(pattern = r"^[0-9A-Fa-f]{64}$"))]
    pub if_match: Option<Text>,
}

impl MoveRequest {
    /// The new name (if any) and the clash rule (default: refuse).
    pub fn name_and_rule(&self) -> shared::Result<(Option<FileName>, NameRule)> {
        let name = self.name.as_deref().map(FileName::parse).transpose()?;
        Ok((name, json_rule(&self.on_conflict, NameRule::Refuse)?))
    }

    /// The content a replacement expects to replace.
    pub fn if_match(&self) -> shared::Result<Option<Sha256Hex>> {
        self.if_match.as_deref().map(Sha256Hex::parse).transpose()
    }
}

/// Delete answers.
#[derive(ApiResponse)]
pub enum DeletedResponse {
    /// Done.
    #[oai(status = 204)]
    Deleted,
}

/// Create answers.
#[derive(ApiResponse)]
pub enum CreatedFolder {
    /// The folder is made.
    #[oai(status = 201)]
    Created(Json<FolderInfo>),
}

crate::operation_errors!(
    /// Errors of folder operations.
    FolderErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        InsufficientStorage = 507,
    }
);
crate::operation_errors!(
    /// Errors of reading the tree.
    TreeReadErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404, Conflict = 409, UriTooLong = 414 }
);

fn default_limit() -> i64 {
    100
}

/// Encodes where a listing page ended, with the order it was for:
/// `sort.order.kind.row.key`, the key in hex (a name) or decimal (a size
/// or a time: files sorted by size, anything sorted by time), as the
/// `cursor` parameters' pattern says. Every string of that form is a place
/// in a listing, so the server takes any of them (a cursor names where the
/// previous page ended, not something that must exist).
pub fn encode_cursor(page: &PageRequest, c: &ListCursor) -> String {
    let sort = match page.sort {
        SortKey::Name => "name",
        SortKey::Size => "size",
        SortKey::Time => "time",
    };
    let key = if numeric_key(page.sort, c.in_files) { c.key.clone() } else { hex::encode(c.key.as_bytes()) };
    let order = if page.desc { "d" } else { "a" };
    format!("{sort}.{order}.{}.{}.{key}", if c.in_files { "f" } else { "d" }, c.row)
}

/// Whether a listing sorts this kind by a number (else by its name).
fn numeric_key(sort: SortKey, in_files: bool) -> bool {
    sort == SortKey::Time || (sort == SortKey::Size && in_files)
}

fn bad_cursor() -> shared::Error {
    shared::Error::invalid(ErrorCode::InvalidCursor, "the cursor is not one of this listing's cursors")
}

/// Reads a cursor ([`encode_cursor`]): the sort and order it continues, and
/// where the previous page ended. A name that is not UTF-8 is read with
/// U+FFFD in place of what is not (still a place to continue from).
fn decode_cursor(cursor: &str) -> shared::Result<(SortKey, bool, ListCursor)> {
    let mut parts = cursor.splitn(5, '.');
    let (Some(s), Some(o), Some(kind), Some(row), Some(key)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_cursor());
    };
    let sort = match s {
        "name" => SortKey::Name,
        "size" => SortKey::Size,
        "time" => SortKey::Time,
        _ => return Err(bad_cursor()),
    };
    let desc = match o {
        "a" => false,
        "d" => true,
        _ => return Err(bad_cursor()),
    };
    let in_files = match kind {
        "d" => false,
        "f" => true,
        _ => return Err(bad_cursor()),
    };
    let row = row.parse().map_err(|_| bad_cursor())?;
    let key = if numeric_key(sort, in_files) {
        key.parse::<i64>().map_err(|_| bad_cursor())?.to_string()
    } else {
        String::from_utf8_lossy(&hex::decode(key).map_err(|_| bad_cursor())?).into_owned()
    };
    Ok((sort, desc, ListCursor { in_files, key, row }))
}

/// A listing page as a request asks for it: a first page in `sort` and
/// `order`; with a cursor, the next page of the listing the cursor came
/// from, in its sort and order.
pub fn page_request(sort: SortBy, order: SortOrder, limit: i64, cursor: Option<&str>) -> shared::Result<PageRequest> {
    let first = PageRequest {
        sort: match sort {
            SortBy::Name => SortKey::Name,
            SortBy::Size => SortKey::Size,
            SortBy::Time => SortKey::Time,
        },
        desc: order == SortOrder::Desc,
        limit,
        after: None,
    };
    Ok(match cursor {
        None => first,
        Some(c) => {
            let (sort, desc, after) = decode_cursor(c)?;
            PageRequest { sort, desc, limit, after: Some(after) }
        }
    })
}

/// The folder a request names by id (`None` and `""`: the root); it must be
/// the caller's and live.
pub async fn named_folder(state: &AppState, user: &User, id: Option<&str>) -> shared::Result<Option<Folder>> {
    match id.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(id) => {
            let id = FolderId::parse(id)?;
            Ok(Some(state.services.tree.folder(user, id.as_str()).await?.ok_or(shared::Error::FolderNotFound)?))
        }
    }
}

/// Folders: make, list, look up, rename, move, delete.
pub struct FolderApi;

#[OpenApi(prefix_path = "/folder", tag = "Tag::Folders")]
impl FolderApi {
    /// Make a folder.
    ///
    /// In `parent` (absent: the root). A taken name gets the first free
    /// `name (n)` unless `on_conflict` is `refuse`.
    #[oai(path = "/create", method = "post", operation_id = "folder_create", transform = "json_body_limit")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<CreateFolderRequest>,
    ) -> Result<CreatedFolder, FolderErrors> {
        let name = FileName::parse(&body.name)?;
        let parent = named_folder(&state, &auth.0, body.parent.as_deref()).await?;
        let parent = parent.map(|d| d.id).unwrap_or_default();
        let rule = folder_rule(&body.on_conflict, NameRule::Rename)?;
        let folder = state.services.tree.create_folder(&auth.0, &parent, &name, rule).await?;
        Ok(CreatedFolder::Created(Json(folder_info(&state, &auth.0, folder).await?)))
    }

    /// List a folder.
    ///
    /// Name it by `id` or by `path` (neither: the root; both: the folder at
    /// `path`, which must have that `id`, else 404). Folders come first,
    /// then files, sorted by `sort` in `order`; pages of `limit` entries,
    /// each answer's `next_cursor` fetching the next.
    #[oai(path = "/list", method = "get", operation_id = "folder_list")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The folder's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<Option<String>>,
        /// The folder's path, e.g. `/photos/2026` (instead of `id`).
        #[oai(validator(
            max_length = 16384,
            pattern = r"^/+((\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)/+)*(\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)?$"
        ))]
        path: Query<Option<String>>,
        /// Sort by `name` (default), `size` or `time`.
        sort: Query<Option<SortBy>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<SortOrder>>,
        /// Page size, 1-1000 (default 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<i64>,
        /// `next_cursor` of the previous page: the next page of that
        /// listing, in its sort and order (`sort` and `order` shape a first page).
        #[oai(validator(
            max_length = 2048,
            pattern = r"^((name\.[ad]\.[df]|size\.[ad]\.d)\.[0-9]{1,18}\.([0-9a-f]{2})*|(size\.[ad]\.f|time\.[ad]\.[df])\.[0-9]{1,18}\.-?[0-9]{1,18})$"
        ))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<FolderListing>, TreeReadErrors> {
        let (sort, order) = (sort.0.unwrap_or(SortBy::Name), order.0.unwrap_or(SortOrder::Asc));
        let folder = match (id.0.as_deref(), path.0.as_deref()) {
            // Both: the folder at `path`, which must be the one `id` names.
            (Some(id), Some(p)) => {
                let folder = state.services.tree.resolve_folder(&auth.0, p).await?;
                if folder.as_ref().map_or("", |d| d.id.as_str()) != id {
                    return Err(shared::Error::FolderNotFound.into());
                }
                folder
            }
            (None, Some(p)) => state.services.tree.resolve_folder(&auth.0, p).await?,
            (id, None) => named_folder(&state, &auth.0, id).await?,
        };
        let page = page_request(sort, order, limit.0, cursor.0.as_deref())?;
        let parent = folder.as_ref().map(|d| d.id.clone()).unwrap_or_default();
        let (items, next) = state.services.tree.list_children(&auth.0, &parent, &page).await?;
        let folder = match folder {
            Some(d) => Some(folder_info(&state, &auth.0, d).await?),
            None => None,
        };
        let path = folder.as_ref().map(|d| d.path.clone()).unwrap_or_else(|| "/".into());
        Ok(Json(FolderListing {
            folder,
            path,
            entries: items.into_iter().map(TreeEntry::from).collect(),
            next_cursor: next.map(|c| encode_cursor(&page, &c)),
        }))
    }

    /// What is at a path.
    ///
    /// The folder or file at `path` (e.g. `/photos/2026/a.jpg`), with its
    /// id for every other route.
    #[oai(path = "/stat", method = "get", operation_id = "folder_stat")]
    async fn stat(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The path, starting with `/` and naming something (not the root).
        #[oai(validator(
            max_length = 16384,
            pattern = r"^/+((\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)/+)*(\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)/*$"
        ))]
        path: Query<String>,
    ) -> Result<Json<TreeEntry>, TreeReadErrors> {
        let item = match state.services.tree.resolve(&auth.0, &path.0).await? {
            Resolved::Root => {
                return Err(shared::Error::invalid(
                    ErrorCode::InvalidPath,
                    "`/` is the root; list it with /folder/list",
                )
                .into());
            }
            Resolved::Item(item) => item,
        };
        Ok(Json(with_path(&state, &auth.0, item).await?))
    }

    /// Find files and folders by name.
    ///
    /// Every live file and folder of the caller whose name contains `q`,
    /// ignoring case, sorted by name, each with its path; answered from a
    /// name index, not a scan. Pages of `limit`, then `next_cursor`.
    #[oai(path = "/search", method = "get", operation_id = "folder_search")]
    async fn search(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// What the name contains, 1-255 characters.
        #[oai(validator(min_length = 1, max_length = 255))]
        q: Query<String>,
        /// Page size, 1-1000 (default 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<i64>,
        /// `next_cursor` of the previous page: `<name in hex>.<id>`, the
        /// last name and id that page showed.
        #[oai(validator(max_length = 1024, pattern = r"^([0-9a-f]{2})*\.[0-9a-f]{32}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<SearchResults>, TreeReadErrors> {
        let after = cursor
            .0
            .as_deref()
            .map(|c| {
                let (name, id) = c.split_once('.').ok_or_else(bad_cursor)?;
                let name = hex::decode(name).map_err(|_| bad_cursor())?;
                Ok::<_, shared::Error>((String::from_utf8_lossy(&name).into_owned(), id.to_owned()))
            })
            .transpose()?;
        let (items, next) = state.services.tree.search(&auth.0, &q.0, limit.0, after.as_ref()).await?;
        let mut paths = PathCache::default();
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let path = match &item {
                TreeItem::Folder(d) => paths.folder_path(&state.services.tree, &auth.0, &d.id).await?,
                TreeItem::File(f) => paths.file_path(&state.services.tree, &auth.0, f).await?,
            };
            entries.push(TreeEntry { path: Some(path), ..TreeEntry::from(item) });
        }
        let next_cursor = next.map(|(n, id)| format!("{}.{id}", hex::encode(n.as_bytes())));
        Ok(Json(SearchResults { entries, next_cursor }))
    }

    /// Rename and/or move a folder.
    ///
    /// Into `to` (the empty string: the root; absent: where it is), as
    /// `name` (absent: its name). A folder cannot move into itself or below
    /// itself. A taken name is refused unless `on_conflict` is `rename`.
    #[oai(path = "/move", method = "post", operation_id = "folder_move", transform = "json_body_limit")]
    async fn move_folder(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<FolderMoveRequest>,
    ) -> Result<Json<FolderInfo>, FolderErrors> {
        let id = FolderId::parse(&body.id)?;
        let name = body.name.as_deref().map(FileName::parse).transpose()?;
        let rule = folder_rule(&body.on_conflict, NameRule::Refuse)?;
        let folder =
            state.services.tree.move_folder(&auth.0, id.as_str(), body.to.as_deref(), name.as_ref(), rule).await?;
        Ok(Json(folder_info(&state, &auth.0, folder).await?))
    }

    /// Delete a folder and everything in it.
    ///
    /// Into the trash, whence `/trash/restore` brings it back until it is
    /// purged (by `/trash/purge`, or by the server after its retention);
    /// `permanent=true` deletes it for good at once.
    #[oai(path = "/delete", method = "delete", operation_id = "folder_delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The folder's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<String>,
        /// Delete for good instead of into the trash (default false).
        #[oai(default)]
        permanent: Query<bool>,
    ) -> Result<DeletedResponse, TreeReadErrors> {
        let folder = named_folder(&state, &auth.0, Some(&id.0)).await?.ok_or(shared::Error::FolderNotFound)?;
        state.services.tree.delete(&auth.0, &folder.id, permanent.0).await?;
        Ok(DeletedResponse::Deleted)
    }
}

/// A tree item with its full path.
pub async fn with_path(state: &AppState, user: &User, item: TreeItem) -> shared::Result<TreeEntry> {
    let mut paths = PathCache::default();
    let path = match &item {
        TreeItem::Folder(d) => paths.folder_path(&state.services.tree, user, &d.id).await?,
        TreeItem::File(f) => paths.file_path(&state.services.tree, user, f).await?,
    };
    Ok(TreeEntry { path: Some(path), ..TreeEntry::from(item) })
}

/// Something in the trash.
#[derive(Debug, Object)]
pub struct TrashEntry {
    /// The file or folder as it was (`parent` is where it was).
    pub entry: TreeEntry,
    /// When it was deleted, Unix seconds.
    pub trashed_at: i64,
    /// When the server deletes it for good, Unix seconds.
    pub purge_at: i64,
    /// Where a restore puts it: its old folder's path, or `/` when that
    /// folder is gone.
    pub restores_to: String,
}

/// A page of the trash.
#[derive(Debug, Object)]
pub struct TrashListing {
    /// Latest deleted first.
    pub entries: Vec<TrashEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A restore. `on_conflict`, when its name is taken where it returns:
/// `rename` (the default) or `refuse`.
#[derive(Debug, Object)]
pub struct RestoreRequest {
    /// The id of the trashed file or folder.
    #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
    pub id: Text,
    // When its name is taken where it returns: `rename` (the default) or `refuse`.
    pub on_conflict: MaybeUndefined<FolderOnConflict>,
}

/// The trash: list, restore, purge.
pub struct TrashApi;

#[OpenApi(prefix_path = "/trash", tag = "Tag::Folders")]
impl TrashApi {
    /// List the trash.
    ///
    /// What the caller deleted (a folder once, with everything that was in
    /// it), latest first. Quota counts what is here.
    #[oai(path = "/list", method = "get", operation_id = "trash_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Page size, 1-1000 (default 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<i64>,
        /// `next_cursor` of the previous page: `<deleted_at>.<id>` of the
        /// last item it showed.
        #[oai(validator(pattern = r"^-?[0-9]{1,18}\.[0-9a-f]{32}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<TrashListing>, TreeReadErrors> {
        let after = cursor
            .0
            .as_deref()
            .map(|c| {
                let (at, id) = c.split_once('.').ok_or_else(bad_cursor)?;
                let id = FolderId::parse(id).map_err(|_| bad_cursor())?;
                Ok::<_, shared::Error>((at.parse::<i64>().map_err(|_| bad_cursor())?, id.to_string()))
            })
            .transpose()?;
        let (items, next) = state.services.tree.list_trash(&auth.0, limit.0, after.as_ref()).await?;
        let retention = state.services.tree.trash_retention_secs();
        let mut paths = PathCache::default();
        // Where each old folder sends a restore, looked up once per folder.
        let mut restore_paths = std::collections::HashMap::new();
        let mut entries = Vec::with_capacity(items.len());
        for t in items {
            let parent = match &t.item {
                TreeItem::Folder(d) => d.parent.clone(),
                TreeItem::File(f) => f.folder.clone(),
            };
            let restores_to = match restore_paths.get(&parent) {
                Some(path) => String::clone(path),
                None => {
                    let live = parent.is_empty() || state.services.tree.folder(&auth.0, &parent).await?.is_some();
                    let path = if live {
                        paths.folder_path(&state.services.tree, &auth.0, &parent).await?
                    } else {
                        "/".into()
                    };
                    restore_paths.insert(parent, path.clone());
                    path
                }
            };
            entries.push(TrashEntry {
                entry: t.item.into(),
                trashed_at: t.trashed_at,
                purge_at: t.trashed_at + retention,
                restores_to,
            });
        }
        Ok(Json(TrashListing { entries, next_cursor: next.map(|(at, id)| format!("{at}.{id}")) }))
    }

    /// Restore from the trash.
    ///
    /// Back into its old folder, or the root when that folder is gone; a
    /// taken name gets `name (n).ext` unless `on_conflict` is `refuse`.
    #[oai(path = "/restore", method = "post", operation_id = "trash_restore", transform = "json_body_limit")]
    async fn restore(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<RestoreRequest>,
    ) -> Result<Json<TreeEntry>, FolderErrors> {
        let id = FolderId::parse(&body.id).map_err(|_| shared::Error::TrashItemNotFound)?;
        let rule = folder_rule(&body.on_conflict, NameRule::Rename)?;
        let item = state.services.tree.restore(&auth.0, id.as_str(), rule).await?;
        Ok(Json(with_path(&state, &auth.0, item).await?))
    }

    /// Delete from the trash for good.
    ///
    /// The bytes go once nobody else has the same content.
    #[oai(path = "/purge", method = "delete", operation_id = "trash_purge")]
    async fn purge(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The id of the trashed file or folder.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<String>,
    ) -> Result<DeletedResponse, TreeReadErrors> {
        state.services.tree.purge(&auth.0, &id.0).await?;
        Ok(DeletedResponse::Deleted)
    }

    /// Empty the trash.
    #[oai(path = "/empty", method = "delete", operation_id = "trash_empty")]
    async fn empty(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<DeletedResponse, TreeReadErrors> {
        loop {
            let (items, _) = state.services.tree.list_trash(&auth.0, 100, None).await?;
            if items.is_empty() {
                return Ok(DeletedResponse::Deleted);
            }
            for t in items {
                let id = match t.item {
                    TreeItem::Folder(d) => d.id,
                    TreeItem::File(f) => f.id,
                };
                match state.services.tree.purge(&auth.0, &id).await {
                    Ok(()) | Err(shared::Error::TrashItemNotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cursor carries its sort and order and reads back as it was
    /// written (names with dots, numbers too).
    #[test]
    fn cursors_round_trip_with_their_order_and_match_the_pattern() {
        let cases = [
            (SortKey::Name, false, ListCursor { in_files: true, key: "a.b.c".into(), row: 42 }),
            (SortKey::Size, true, ListCursor { in_files: true, key: "1024".into(), row: 7 }),
            (SortKey::Size, false, ListCursor { in_files: false, key: "photos".into(), row: 3 }),
            (SortKey::Time, true, ListCursor { in_files: false, key: "1780000000".into(), row: 1 }),
        ];
        for (sort, desc, c) in cases {
            let page = PageRequest { sort, desc, limit: 10, after: None };
            let s = encode_cursor(&page, &c);
            assert_eq!(decode_cursor(&s).unwrap(), (sort, desc, c));
        }
        assert!(decode_cursor("garbage!").is_err());
    }
}
