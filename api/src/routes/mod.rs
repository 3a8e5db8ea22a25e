//! The HTTP API, one module per resource.

pub mod files;
pub mod folders;
pub mod health;
pub mod mupload;
pub mod shares;
pub mod tus;
pub mod uplinks;
pub mod usr;
pub mod versions;
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
    versions::VersionApi,
    folders::FolderApi,
    folders::TrashApi,
    shares::ShareApi,
    shares::PublicShareApi,
    uplinks::UploadLinkApi,
    health::HealthApi,
);

/// The API value to mount.
pub fn api() -> Api {
    (
        usr::UsrApi,
        mupload::UploadApi,
        files::FileApi,
        versions::VersionApi,
        folders::FolderApi,
        folders::TrashApi,
        shares::ShareApi,
        shares::PublicShareApi,
        uplinks::UploadLinkApi,
        health::HealthApi,
    )
}

/// Marks a `HEAD` request (a request extension) before routing: poem answers
/// `HEAD` with the `GET` handler, telling it the method was `GET`, and a
/// handler that must not count a `HEAD` (a share link's download budget)
/// asks [`is_head`].
#[derive(Debug, Clone, Copy)]
pub struct HeadRequest;

/// `around` the routes: marks `HEAD` requests with [`HeadRequest`].
pub fn mark_head(ep: impl poem::Endpoint + 'static) -> impl poem::Endpoint {
    use poem::EndpointExt;
    ep.around(|ep, mut req: poem::Request| async move {
        if req.method() == poem::http::Method::HEAD {
            req.extensions_mut().insert(HeadRequest);
        }
        ep.call(req).await.map(poem::IntoResponse::into_response)
    })
}

/// Whether `req` came as `HEAD` (see [`mark_head`]).
pub fn is_head(req: &poem::Request) -> bool {
    req.extensions().get::<HeadRequest>().is_some()
}
