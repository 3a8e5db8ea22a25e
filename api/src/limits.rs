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
        let declared = req
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > JSON_BODY_LIMIT as u64) {
            return Ok(too_large());
        }
        if declared.is_none() {
            // Chunked: read at most one byte past the limit, then decide.
            let mut stream = req.take_body().into_bytes_stream();
            let mut buf = Vec::new();
            while let Some(piece) = stream.next().await {
                let piece =
                    piece.map_err(|e| poem::Error::new(e, poem::http::StatusCode::BAD_REQUEST))?;
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
