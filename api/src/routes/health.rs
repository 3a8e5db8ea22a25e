//! `/healthz` (the process is up) and `/readyz` (its backends answer).

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::ErrorCode;

use super::Tag;
use crate::auth::MetricsAuth;
use crate::error::ErrorBody;
use crate::state::AppState;

/// A health answer.
#[derive(Debug, Object)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Readiness answers.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Every backend answered.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// A backend did not answer; `message` says which.
    #[oai(status = 503)]
    NotReady(Json<ErrorBody>),
}

/// Metrics answers.
#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Prometheus text exposition format.
    #[oai(status = 200, content_type = "text/plain; version=0.0.4; charset=utf-8")]
    Ok(PlainText<String>),
    /// No token, a wrong one, or metrics are off (no `PAN_METRICS_TOKEN`).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
}

/// Health checks.
pub struct HealthApi;

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Liveness: the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into() })
    }

    /// Prometheus metrics: this process's counters (uploads, chunks, merges,
    /// backups) and installation-wide gauges from the database. Needs
    /// `Authorization: Bearer <PAN_METRICS_TOKEN>`.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>, _auth: MetricsAuth) -> MetricsResponse {
        let mut out = String::new();
        shared::runtime::metrics::render_counters(&mut out);
        shared::runtime::metrics::render_gauge(
            &mut out,
            "pan_chunks_in_flight",
            "Chunk bodies this process is receiving now.",
            state.chunk_slots.in_flight() as i64,
        );
        shared::runtime::metrics::render_gauge(
            &mut out,
            "pan_single_uploads_in_flight",
            "Single-request uploads this process is receiving now.",
            state.single_upload_slots.in_flight() as i64,
        );
        match state.services.totals().await {
            Ok(t) => {
                use shared::runtime::metrics::render_gauge;
                render_gauge(&mut out, "pan_users", "Registered users.", t.users);
                render_gauge(&mut out, "pan_stored_files", "Distinct stored contents.", t.files);
                render_gauge(&mut out, "pan_stored_bytes", "Bytes of distinct stored contents.", t.stored_bytes);
                render_gauge(&mut out, "pan_user_files", "Users' file entries.", t.user_files);
                render_gauge(&mut out, "pan_up", "1 when the database answered this scrape.", 1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: database totals unavailable");
                shared::runtime::metrics::render_gauge(
                    &mut out,
                    "pan_up",
                    "1 when the database answered this scrape.",
                    0,
                );
            }
        }
        MetricsResponse::Ok(PlainText(out))
    }

    /// Readiness: the database (and Redis, when configured) answer.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&AppState>) -> ReadyResponse {
        // Which backend, not its error text (that goes to the log only).
        if let Err((what, e)) = state.services.health_check().await {
            tracing::warn!(error = %e, "not ready: {what} does not answer");
            return ReadyResponse::NotReady(Json(ErrorBody::new(
                ErrorCode::BackendUnavailable,
                format!("{what} does not answer"),
            )));
        }
        ReadyResponse::Ready(Json(Health { status: "ok".into() }))
    }
}
