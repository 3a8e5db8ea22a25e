//! Body size limits for JSON operations. poem's `SizeLimit` answers 411 to a
//! body without `Content-Length`; this one also takes chunked bodies and stops
//! reading them at the limit.

use futures::StreamExt;
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::payload::Json;

use crate::error::{ApiError, ErrorBody};

/// Largest JSON request body (64 KiB): generous for every JSON operation.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// `transform` for JSON operations: 413 past [`JSON_BODY_LIMIT`].
pub fn json_body_limit(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, mut req: Request| async move {
        let declared = req.header("content-length").and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > JSON_BODY_LIMIT as u64) {
            return Ok(too_large());
        }
        if declared.is_none() {
            // Chunked: read at most one byte past the limit, then decide.
            let mut stream = req.take_body().into_bytes_stream();
            let mut buf = Vec::new();
            while let Some(piece) = stream.next().await {
                let piece = piece.map_err(|e| poem::Error::new(e, poem::http::StatusCode::BAD_REQUEST))?;
                buf.extend_from_slice(&piece);
                if buf.len() > JSON_BODY_LIMIT {
                    return Ok(too_large());
                }
            }
            req.set_body(Body::from_vec(buf));
        }
        ep.call(req).await.map(IntoResponse::into_response)
    })
}

fn too_large() -> Response {
    ApiError::PayloadTooLarge(Json(ErrorBody::new(
        "PAYLOAD_TOO_LARGE",
        format!("request body is larger than {JSON_BODY_LIMIT} bytes"),
    )))
    .into_response()
}

/// `transform` for the single-request upload: the body must declare its
/// length (`Content-Length`), at most the configured limit plus room for the
/// multipart framing, or it is refused before a byte is spooled to disk.
pub fn single_upload_limit(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, req: Request| async move {
        let limit = req
            .data::<crate::state::AppState>()
            .map(|s| s.settings.max_single_upload)
            .unwrap_or(0)
            .saturating_add(JSON_BODY_LIMIT as u64);
        match req.header("content-length").and_then(|v| v.parse::<u64>().ok()) {
            None => Ok(ApiError::bad_request(
                "LENGTH_REQUIRED",
                "single-request uploads must send Content-Length; use /file/mupload for streams",
            )
            .into_response()),
            Some(n) if n > limit => Ok(ApiError::PayloadTooLarge(Json(ErrorBody::new(
                "FILE_TOO_LARGE",
                format!(
                    "single-request uploads are limited to {} bytes; use /file/mupload",
                    limit - JSON_BODY_LIMIT as u64
                ),
            )))
            .into_response()),
            Some(_) => ep.call(req).await.map(IntoResponse::into_response),
        }
    })
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
