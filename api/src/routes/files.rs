//! The caller's files: list, download, rename, delete, single-request upload.

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::domain::{FileName, Sha1Hex, UserFile};

use super::Tag;
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::limits::json_body_limit;
use crate::state::AppState;

/// One of the caller's files.
#[derive(Debug, Clone, Object)]
pub struct FileInfo {
    /// SHA-1 of the content; the file's id in every file route.
    pub filehash: String,
    /// The caller's name for the file.
    pub filename: String,
    /// Size in bytes.
    pub filesize: i64,
    /// When the caller got the file (Unix seconds).
    pub uploaded_at: i64,
    /// Last rename (Unix seconds).
    pub updated_at: i64,
}

impl From<UserFile> for FileInfo {
    fn from(f: UserFile) -> Self {
        FileInfo {
            filehash: f.filehash,
            filename: f.filename,
            filesize: f.filesize,
            uploaded_at: f.uploaded_at,
            updated_at: f.updated_at,
        }
    }
}

/// A page of files.
#[derive(Debug, Object)]
pub struct FileList {
    /// The files on this page, newest first.
    pub files: Vec<FileInfo>,
    /// How many files the caller has in all.
    pub total: i64,
    /// The `limit` used.
    pub limit: i64,
    /// The `offset` used.
    pub offset: i64,
}

/// A new name for a file.
#[derive(Debug, Object)]
pub struct RenameRequest {
    /// SHA-1 of the file to rename.
    #[oai(validator(max_length = 64))]
    pub filehash: String,
    /// The new name: 1-255 bytes, no control characters.
    #[oai(validator(max_length = 1024))]
    pub filename: String,
}

/// Delete answers.
#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// The entry is gone (the bytes too, if nobody else has the file).
    #[oai(status = 204)]
    Deleted,
}

/// File operations.
pub struct FileApi;

#[OpenApi(prefix_path = "/file", tag = "Tag::Files")]
impl FileApi {
    /// List the caller's files, newest first.
    #[oai(path = "/query", method = "get", operation_id = "file_query")]
    async fn query(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Page size, 1-1000 (default 100).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<i64>,
        /// Files to skip (default 0).
        #[oai(
            default,
            validator(minimum(value = "0"), maximum(value = "1000000000"))
        )]
        offset: Query<i64>,
    ) -> ApiResult<Json<FileList>> {
        let (files, total) = state
            .backends
            .repo
            .list_files(auth.0.id, limit.0, offset.0)
            .await?;
        Ok(Json(FileList {
            files: files.into_iter().map(FileInfo::from).collect(),
            total,
            limit: limit.0,
            offset: offset.0,
        }))
    }

    /// Rename one of the caller's files.
    #[oai(
        path = "/rename",
        method = "post",
        operation_id = "file_rename",
        transform = "json_body_limit"
    )]
    async fn rename(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<RenameRequest>,
    ) -> ApiResult<Json<FileInfo>> {
        let hash = Sha1Hex::parse(&body.filehash)?;
        let name = FileName::parse(&body.filename)?;
        let f = state
            .backends
            .repo
            .rename_file(auth.0.id, hash.as_str(), name.as_str(), shared::now())
            .await?;
        Ok(Json(f.into()))
    }

    /// Delete one of the caller's files.
    ///
    /// Other users' copies of the same content are untouched; the bytes go
    /// when nobody has the file any more.
    #[oai(path = "/delete", method = "delete", operation_id = "file_delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// SHA-1 of the file to delete.
        filehash: Query<String>,
    ) -> ApiResult<DeleteResponse> {
        let hash = Sha1Hex::parse(&filehash.0)?;
        shared::files::delete(&state.backends, &auth.0, &hash).await?;
        Ok(DeleteResponse::Deleted)
    }
}

fn default_limit() -> i64 {
    100
}
