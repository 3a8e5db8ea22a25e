//! The access log: one line per request with its method, path, status and
//! duration. Query strings are left out on purpose: signed download URLs
//! carry their signature there, and a log is not a place for credentials.

use std::time::Instant;

use poem::{Endpoint, EndpointExt, IntoResponse, Request};
use tracing::Instrument;

/// Wraps `ep` so each request runs in a `request` span and ends with a log line.
pub fn access_log(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, req: Request| async move {
        let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
        async move {
            let started = Instant::now();
            let result = ep.call(req).await.map(IntoResponse::into_response);
            let status = match &result {
                Ok(resp) => resp.status(),
                Err(e) => e.status(),
            };
            let ms = started.elapsed().as_secs_f64() * 1e3;
            tracing::info!(status = status.as_u16(), duration_ms = format!("{ms:.1}"), "response");
            result
        }
        .instrument(span)
        .await
    })
}
