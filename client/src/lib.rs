//! A Rust client for pan, generated at build time from the checked-in spec
//! (`openapi/openapi.json`) by progenitor: every operation of the spec but
//! the multipart `POST /file/upload` is a builder on [`Client`] named after
//! its `operationId` (`client.signup().body(…).send()`).
//!
//! The bearer token is not part of the generated code: build the client with
//! [`Client::new_with_client`] and a `reqwest::Client` whose default headers
//! carry `Authorization` ([`authenticated`] does that).
//!
//! Layout of the hand-written part:
//! - [`http`]: a session (base URL, token, the generated client) with one
//!   retry policy around the generated calls: the engine and the command
//!   line call every route but the multipart upload through it, with the
//!   generated builders and [`types`];
//! - [`upload`]: the upload engine (hash, init, prove, chunks in parallel
//!   with retries, resume, complete, verify);
//! - [`download`]: resumable, verified downloads into a `.part` file;
//! - [`cli`]: the `pan` command line (`src/bin/pan.rs` only calls it).

/// The generated code, as progenitor writes it (its lints are its own).
#[allow(clippy::all, missing_docs, unused_imports, dead_code)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/codegen.rs"));
}

pub use generated::*;

pub mod cli;
pub mod download;
pub mod http;
pub mod upload;

/// A client for `base` (e.g. `http://127.0.0.1:8080`) that sends `token`
/// as `Authorization: Bearer <token>` on every request.
pub fn authenticated(base: &str, token: &str) -> Result<Client, reqwest::Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is visible ASCII");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    Ok(Client::new_with_client(base, http))
}

/// Why a single-request upload did not store the file.
#[derive(Debug)]
pub enum SingleUploadError {
    /// The request did not get an answer.
    Http(reqwest::Error),
    /// pan refused it: the status and its `{code, message}`.
    Refused(reqwest::StatusCode, types::ErrorBody),
}

/// `POST /file/upload`: stores `bytes` as `filename` in one multipart
/// request (small files; the chunked upload is for the rest). Covered by
/// hand because the generator cannot read multipart operations.
pub async fn single_upload(
    client: &Client,
    filename: &str,
    bytes: Vec<u8>,
) -> Result<types::FileInfo, SingleUploadError> {
    use progenitor_client::ClientInfo;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()));
    let url = format!("{}/file/upload", client.baseurl());
    let resp = client.client().post(url).multipart(form).send().await.map_err(SingleUploadError::Http)?;
    let status = resp.status();
    if status.is_success() {
        resp.json().await.map_err(SingleUploadError::Http)
    } else {
        Err(SingleUploadError::Refused(status, resp.json().await.map_err(SingleUploadError::Http)?))
    }
}
