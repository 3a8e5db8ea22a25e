//! Upload links (a file drop, like Nextcloud's): the owner's routes (make,
//! list, revoke). Strangers use a link through tus (`/tus/` with the
//! `Upload-Link` header) and the page at `/u/<link>`, and see nothing.

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::domain::UploadLink;
use shared::shares::NewUploadLink;

use super::Tag;
use crate::auth::BearerAuth;
use crate::limits::json_body_limit;
use crate::state::AppState;
use crate::text::Text;

/// A new upload link into one of your folders. Its password (8-1024
/// characters) is kept hashed; `expires_in` is in seconds (absent: the
/// server's default lifetime for links; 0: never); `max_bytes` limits the
/// bytes it takes in all (absent: only your quota).
#[derive(Debug, Object)]
pub struct CreateUploadLinkRequest {
    /// The id of your folder uploads land in; absent or empty: the root.
    #[oai(nullable, validator(pattern = r"^([0-9a-f]{32})?$"))]
    pub folder: Option<Text>,
    /// A password the link's holders must give.
    #[oai(nullable, validator(min_length = 8, max_length = 1024, pattern = r"^[^\x00]*$"))]
    pub password: Option<Text>,
    /// Seconds until the link stops working (0: never).
    #[oai(nullable, validator(minimum(value = "0"), maximum(value = "3153600000")))]
    pub expires_in: Option<i64>,
    /// The most bytes the link takes in all.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "9223372036854775807")))]
    pub max_bytes: Option<i64>,
}

/// One of your upload links.
#[derive(Debug, Object)]
pub struct UploadLinkInfo {
    /// The link's id: tus clients send it as the `Upload-Link` header.
    pub link: String,
    /// The page anyone holding the link uploads with.
    pub url: String,
    /// The folder uploads land in (empty: the root).
    pub folder: String,
    /// Whether holders must give a password (`Upload-Link-Password`).
    pub has_password: bool,
    /// When it stops working (Unix seconds); absent: never.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<i64>,
    /// The most bytes it takes in all; absent: only your quota.
    #[oai(skip_serializing_if_is_none)]
    pub max_bytes: Option<i64>,
    /// Bytes taken so far (counted as each upload begins).
    pub bytes_used: i64,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

/// Your upload links.
#[derive(Debug, Object)]
pub struct UploadLinkList {
    /// Newest first; revoked links are not listed.
    pub links: Vec<UploadLinkInfo>,
}

/// Create answers.
#[derive(ApiResponse)]
pub enum CreatedUploadLink {
    /// The link works now.
    #[oai(status = 201)]
    Created(Json<UploadLinkInfo>),
}

/// Revoke answers.
#[derive(ApiResponse)]
pub enum RevokedUploadLink {
    /// The link no longer works.
    #[oai(status = 204)]
    Revoked,
}

fn info(state: &AppState, l: UploadLink) -> UploadLinkInfo {
    UploadLinkInfo {
        url: format!("{}/u/{}", state.public_base, l.link),
        link: l.link,
        folder: l.folder,
        has_password: l.password_hash.is_some(),
        expires_at: l.expires_at,
        max_bytes: l.max_bytes,
        bytes_used: l.bytes_used,
        created_at: l.created_at,
    }
}

crate::operation_errors!(
    /// Errors of making an upload link.
    CreateUploadLinkErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
    }
);
crate::operation_errors!(
    /// Errors of the owner's upload-link routes.
    UploadLinkErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404 }
);

/// Upload links, as their owner manages them.
pub struct UploadLinkApi;

#[OpenApi(prefix_path = "/uplink", tag = "Tag::Shares")]
impl UploadLinkApi {
    /// Make an upload link (a file drop) into one of your folders.
    ///
    /// Anyone holding it uploads into that folder (tus at `/tus/` with
    /// `Upload-Link: <link>`, or the page at its `url`) and sees nothing:
    /// no listing, no file ids. Uploads count against your quota; a name
    /// taken is numbered, never replaced. Optional password, expiry and
    /// byte limit.
    #[oai(path = "/create", method = "post", operation_id = "upload_link_create", transform = "json_body_limit")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<CreateUploadLinkRequest>,
    ) -> Result<CreatedUploadLink, CreateUploadLinkErrors> {
        let body = body.0;
        let new = NewUploadLink {
            folder: body.folder.map(|f| f.0).filter(|f| !f.is_empty()),
            password: body.password.map(|p| p.0),
            expires_in: body.expires_in,
            max_bytes: body.max_bytes,
        };
        let l = state.services.shares.create_upload_link(&auth.0, new).await?;
        Ok(CreatedUploadLink::Created(Json(info(&state, l))))
    }

    /// List your upload links, with the bytes each took.
    #[oai(path = "/list", method = "get", operation_id = "upload_link_list")]
    async fn list(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<UploadLinkList>, UploadLinkErrors> {
        let links = state.services.shares.upload_links(&auth.0).await?.into_iter().map(|l| info(&state, l)).collect();
        Ok(Json(UploadLinkList { links }))
    }

    /// Revoke one of your upload links.
    #[oai(path = "/revoke", method = "delete", operation_id = "upload_link_revoke")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The link's id.
        #[oai(validator(max_length = 64))]
        link: Query<String>,
    ) -> Result<RevokedUploadLink, UploadLinkErrors> {
        state.services.shares.revoke_upload_link(&auth.0, &link.0).await?;
        Ok(RevokedUploadLink::Revoked)
    }
}
