//! A file's versions under `/file/versions` and `/file/version/…`: its
//! earlier contents, kept when something replaced it, listed, downloaded,
//! restored, deleted and pinned by their owner.

use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::domain::versions::Version;
use shared::domain::{EntryId, UserFile};

use super::Tag;
use super::files::{DownloadResponse, FileInfo, file_with_path, serve};
use crate::auth::BearerAuth;
use crate::limits::json_body_limit;
use crate::state::AppState;
use crate::text::Text;

/// Who replaced a content.
#[derive(Debug, Clone, Object)]
pub struct AuthorInfo {
    /// `session` (the page, the CLI, the API), `app_password` (WebDAV,
    /// tus) or `server` (an operator's command).
    pub kind: String,
    /// The session's device name (else the username), or the app
    /// password's name.
    pub name: String,
}

/// One earlier content of a file.
#[derive(Debug, Clone, Object)]
pub struct VersionInfo {
    /// The version's id (`version` in the other version routes).
    pub version: String,
    /// Its size in bytes.
    pub size: i64,
    /// SHA-256 of the content.
    #[oai(skip_serializing_if_is_none)]
    pub sha256: Option<String>,
    /// The file's modification time it had (Unix seconds).
    pub mtime: i64,
    /// When it stopped being the file's content (Unix seconds).
    pub replaced_at: i64,
    /// Who replaced it.
    pub author: AuthorInfo,
    /// Your label for it.
    #[oai(skip_serializing_if_is_none)]
    pub label: Option<String>,
    /// Pinned versions never expire.
    pub pinned: bool,
}

impl From<Version> for VersionInfo {
    fn from(v: Version) -> Self {
        VersionInfo {
            version: v.id,
            size: v.filesize,
            sha256: v.content.sha256,
            mtime: v.mtime,
            replaced_at: v.replaced_at,
            author: AuthorInfo { kind: v.author.kind.as_str().to_owned(), name: v.author.name },
            label: v.label,
            pinned: v.pinned,
        }
    }
}

/// A file's versions, newest first.
#[derive(Debug, Object)]
pub struct VersionList {
    /// The versions.
    pub versions: Vec<VersionInfo>,
}

/// A version to act on.
#[derive(Debug, Object)]
pub struct VersionRequest {
    /// The file's id.
    #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
    pub id: Text,
    /// The version's id.
    #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
    pub version: Text,
}

/// How to pin a version.
#[derive(Debug, Object)]
pub struct PinRequest {
    /// The file's id.
    #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
    pub id: Text,
    /// The version's id.
    #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
    pub version: Text,
    /// Pinned (never expires) or not.
    pub pinned: bool,
    /// A label, 1-255 characters without control characters; absent or
    /// null: none.
    #[oai(nullable, validator(min_length = 1, max_length = 255, pattern = r"^[^\x00-\x1f\x7f]+$"))]
    pub label: Option<Text>,
}

/// Delete answers.
#[derive(ApiResponse)]
pub enum VersionDeleted {
    /// The version is gone (its bytes too, once nothing else holds them).
    #[oai(status = 204)]
    Deleted,
}

crate::operation_errors!(
    /// Errors of the version routes.
    VersionErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404 }
);
crate::operation_errors!(
    /// Errors of the version routes that take a body.
    VersionBodyErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
    }
);
crate::operation_errors!(
    /// Errors of a version's download.
    VersionDownloadErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404, RangeNotSatisfiable = 416 }
);

/// The version routes.
pub struct VersionApi;

#[OpenApi(prefix_path = "/file", tag = "Tag::Files")]
impl VersionApi {
    /// A file's versions.
    ///
    /// Its earlier contents, newest first: kept when an upload, a move, a
    /// copy or a restore replaced the file's content (`on_conflict=replace`).
    /// The clean-up thins them as they age (see the README's *Versions*);
    /// pinned ones stay. A file in the trash keeps its versions.
    #[oai(path = "/versions", method = "get", operation_id = "file_versions")]
    async fn versions(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The file's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<String>,
    ) -> Result<Json<VersionList>, VersionErrors> {
        let id = EntryId::parse(&id.0)?;
        let versions = state.services.files.versions(&auth.0, id.as_str()).await?;
        Ok(Json(VersionList { versions: versions.into_iter().map(VersionInfo::from).collect() }))
    }

    /// Download a version.
    ///
    /// As `/file/download`: `Range`, `If-Range`, `If-None-Match`, the
    /// version's SHA-256 as the `ETag` and its modification time as
    /// `Last-Modified`.
    #[oai(path = "/version/download", method = "get", operation_id = "file_version_download")]
    #[allow(clippy::too_many_arguments, reason = "each argument is one extractor of the request")]
    async fn download(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The file's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<String>,
        /// The version's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        version: Query<String>,
        /// `bytes=first-last`, `bytes=first-` or `bytes=-suffix_length`.
        #[oai(name = "Range")]
        range: Header<Option<String>>,
        /// The `ETag` (or `Last-Modified`) the client's partial copy has: a
        /// `Range` counts only while it still matches.
        #[oai(name = "If-Range")]
        if_range: Header<Option<String>>,
        /// An ETag from an earlier download.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<DownloadResponse, VersionDownloadErrors> {
        let id = EntryId::parse(&id.0)?;
        let v = state.services.files.version(&auth.0, id.as_str(), &version.0).await?;
        let (entry, _) = state.services.files.owned(&auth.0, &shared::files::FileRef::Entry(id)).await?;
        // Served under the file's name, with the version's size and time.
        let entry = UserFile { filesize: v.filesize, mtime: v.mtime, ..entry };
        let conditions = super::files::Conditions {
            range: range.0.as_deref(),
            if_range: if_range.0.as_deref(),
            if_none_match: if_none_match.0.as_deref(),
        };
        Ok(serve(&state, &entry, &v.content, conditions, false).await?)
    }

    /// Restore a version.
    ///
    /// The version becomes the file's content again (the file keeps its id,
    /// name and share links); the content it had becomes a version in turn.
    #[oai(
        path = "/version/restore",
        method = "post",
        operation_id = "file_version_restore",
        transform = "json_body_limit"
    )]
    async fn restore(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<VersionRequest>,
    ) -> Result<Json<FileInfo>, VersionBodyErrors> {
        let id = EntryId::parse(&body.id)?;
        let f = state.services.files.restore_version(&auth.0, id.as_str(), &body.version).await?;
        Ok(Json(file_with_path(&state, &auth.0, f).await?))
    }

    /// Delete a version.
    #[oai(path = "/version/delete", method = "delete", operation_id = "file_version_delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The file's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<String>,
        /// The version's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        version: Query<String>,
    ) -> Result<VersionDeleted, VersionErrors> {
        let id = EntryId::parse(&id.0)?;
        state.services.files.delete_version(&auth.0, id.as_str(), &version.0).await?;
        Ok(VersionDeleted::Deleted)
    }

    /// Pin (or unpin) a version, and label it.
    ///
    /// A pinned version never expires and takes no slot in the thinning;
    /// it still counts against your quota.
    #[oai(path = "/version/pin", method = "post", operation_id = "file_version_pin", transform = "json_body_limit")]
    async fn pin(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<PinRequest>,
    ) -> Result<Json<VersionInfo>, VersionBodyErrors> {
        let id = EntryId::parse(&body.id)?;
        let label = body.label.as_deref();
        let v = state.services.files.pin_version(&auth.0, id.as_str(), &body.version, body.pinned, label).await?;
        Ok(Json(VersionInfo::from(v)))
    }
}
