//! Body size limits for JSON operations. poem's `SizeLimit` answers 411 to a
//! body without `Content-Length`; this one also takes chunked bodies and stops
//! reading them at the limit.

use futures::StreamExt;
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use shared::ErrorCode;

use crate::error::{ApiError, ErrorBody};
use shared::accounts::limits::SlotOwner;

/// Largest JSON request body (64 KiB): generous for every JSON operation.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// Longest a JSON body may take to arrive: it is at most 64 KiB, so only a
/// client holding the connection on purpose takes longer.
pub const JSON_BODY_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// `transform` for JSON operations: 413 past [`JSON_BODY_LIMIT`], 400
/// `BODY_TIMEOUT` when the body takes longer than [`JSON_BODY_TIME`]. The
/// body is read here, whatever its framing, so no slow body holds a handler.
pub fn json_body_limit(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, mut req: Request| async move {
        let declared = req.header("content-length").and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > JSON_BODY_LIMIT as u64) {
            return Ok(too_large());
        }
        let mut stream = req.take_body().into_bytes_stream();
        let read = async {
            let mut buf = Vec::new();
            while let Some(piece) = stream.next().await {
                let piece = piece.map_err(|e| poem::Error::new(e, poem::http::StatusCode::BAD_REQUEST))?;
                buf.extend_from_slice(&piece);
                if buf.len() > JSON_BODY_LIMIT {
                    return Ok(None);
                }
            }
            Ok::<_, poem::Error>(Some(buf))
        };
        match tokio::time::timeout(JSON_BODY_TIME, read).await {
            Err(_) => Ok(ApiError::new(
                ErrorCode::BodyTimeout,
                format!("the request body did not arrive within {} s", JSON_BODY_TIME.as_secs()),
            )
            .into_response()),
            Ok(Err(e)) => Err(e),
            Ok(Ok(None)) => Ok(too_large()),
            Ok(Ok(Some(buf))) => {
                req.set_body(Body::from_vec(buf));
                ep.call(req).await.map(IntoResponse::into_response)
            }
        }
    })
}

fn too_large() -> Response {
    ApiError::PayloadTooLarge(Json(ErrorBody::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is larger than {JSON_BODY_LIMIT} bytes"),
    )))
    .into_response()
}

/// Single-request uploads one api process takes at once. Each spools its
/// file to a temporary file (its text fields, at most [`JSON_BODY_LIMIT`],
/// are in memory): this bounds the process's open files and scratch disk
/// (16 × 64 MiB), not much memory. 4 made a fleet under 200 users answer
/// mostly 429 (the soak).
pub const SINGLE_UPLOADS_AT_ONCE: usize = 16;
/// Single-request uploads one user may send at once (of the process's
/// [`SINGLE_UPLOADS_AT_ONCE`]), so one account cannot take them all.
pub const SINGLE_UPLOADS_PER_USER: u32 = 1;

/// `transform` for the single-request upload: the body must declare its
/// length (`Content-Length`), at most the configured limit plus room for the
/// multipart framing, or it is refused before a byte is spooled to disk.
pub fn single_upload_limit(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, req: Request| async move {
        // poem reads a multipart form's text fields into memory whole (up to
        // the body limit) and spools its file to a temp file before the
        // handler runs: only a few such requests are taken at once, and one
        // per user. Without a valid token the handler answers 401 before
        // reading the body, so no slot is needed.
        let state = req.data::<crate::state::AppState>().expect("AppState is attached to the route").clone();
        let token = crate::auth::bearer_token(&req);
        let user = match token {
            Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
                match state.services.accounts.authenticate(t).await {
                    Ok(user) => user,
                    Err(e) => return Ok(refuse(req, ApiError::from(e).into_response()).await),
                }
            }
            _ => None,
        };
        let slot = match user {
            Some(user) => match state.single_upload_slots.try_take(SlotOwner::User(user.id)).await {
                Ok(slot) => Some(slot),
                Err(e) => return Ok(refuse(req, ApiError::from(e).into_response()).await),
            },
            None => None,
        };
        let (max_upload, floor) = (state.settings.max_single_upload, state.settings.min_chunk_rate);
        let limit = max_upload.saturating_add(JSON_BODY_LIMIT as u64);
        let answer = match req.header("content-length").and_then(|v| v.parse::<u64>().ok()) {
            None => Ok(refuse(
                req,
                ApiError::new(
                    ErrorCode::LengthRequired,
                    "single-request uploads must send Content-Length; use /file/mupload for streams",
                )
                .into_response(),
            )
            .await),
            Some(n) if n > limit => Ok(refuse(
                req,
                ApiError::PayloadTooLarge(Json(ErrorBody::new(
                    ErrorCode::FileTooLarge,
                    format!(
                        "single-request uploads are limited to {} bytes; use /file/mupload",
                        limit - JSON_BODY_LIMIT as u64
                    ),
                )))
                .into_response(),
            )
            .await),
            Some(n) => {
                // The whole request (spooling the body included) has a deadline
                // that a client at the chunk rate floor would meet: a slow body
                // cannot hold a connection and a temp file for ever.
                let deadline = std::time::Duration::from_secs(60 + n / floor.max(1));
                match tokio::time::timeout(deadline, ep.call(req)).await {
                    Ok(result) => result.map(IntoResponse::into_response),
                    Err(_) => Ok(ApiError::new(
                        ErrorCode::BodyTimeout,
                        format!("the upload did not arrive within {} s", deadline.as_secs()),
                    )
                    .into_response()),
                }
            }
        };
        // Freed before the answer goes out: the client's next upload finds it free.
        if let Some(slot) = slot {
            slot.release().await;
        }
        answer
    })
}

/// An answer given before the body was read: what is left of the body is
/// read first (bounded), so a client that sends it all before reading —
/// and a reverse proxy streaming it to us — gets this answer rather than
/// a broken pipe (which nginx turns into a 502 and counts against this
/// process).
async fn refuse(mut req: Request, answer: Response) -> Response {
    let mut body = req.take_body().into_bytes_stream();
    crate::routes::mupload::drain(&mut body, crate::routes::mupload::DRAIN_LIMIT, crate::routes::mupload::DRAIN_TIME)
        .await;
    answer
}

/// `transform` for raw-body operations: a body sent without `Content-Type`
/// (as many HTTP clients do for bytes) is taken as `application/octet-stream`.
pub fn default_octet_stream(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, mut req: Request| async move {
        if req.header("content-type").is_none() {
            req.headers_mut().insert(
                poem::http::header::CONTENT_TYPE,
                poem::http::HeaderValue::from_static("application/octet-stream"),
            );
        }
        ep.call(req).await.map(IntoResponse::into_response)
    })
}
