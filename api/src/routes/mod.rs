//! The HTTP API, one module per resource.

pub mod files;
pub mod folders;
pub mod health;
pub mod mupload;
pub mod shares;
pub mod usr;
pub mod web;

use poem_openapi::Tags;

/// Groups of operations in the spec.
#[derive(Tags)]
pub enum Tag {
    /// Sign up, sign in, profile.
    Users,
    /// Chunked, resumable upload: init, uppart, status, complete, abort.
    Uploads,
    /// The caller's stored files.
    Files,
    /// The caller's folders and trash.
    Folders,
    /// Share links: made by their owner, opened by anyone holding one.
    Shares,
    /// Liveness and readiness.
    Health,
}

/// Every API group, as one service.
pub type Api = (
    usr::UsrApi,
    mupload::UploadApi,
    files::FileApi,
    folders::FolderApi,
    folders::TrashApi,
    shares::ShareApi,
    shares::PublicShareApi,
    health::HealthApi,
);

/// The API value to mount.
pub fn api() -> Api {
    (
        usr::UsrApi,
        mupload::UploadApi,
        files::FileApi,
        folders::FolderApi,
        folders::TrashApi,
        shares::ShareApi,
        shares::PublicShareApi,
        health::HealthApi,
    )
}
