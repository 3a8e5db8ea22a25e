//! `/healthz` (the process is up) and `/readyz` (its backends answer).

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Tag;
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

/// Health checks.
pub struct HealthApi;

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Liveness: the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into() })
    }

    /// Readiness: the database (and Redis, when configured) answer.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&AppState>) -> ReadyResponse {
        if let Err(e) = state.backends.repo.health_check().await {
            return ReadyResponse::NotReady(Json(ErrorBody::new("UNAVAILABLE", format!("database: {e}"))));
        }
        if let Err(e) = state.backends.uploads.health_check().await {
            return ReadyResponse::NotReady(Json(ErrorBody::new("UNAVAILABLE", format!("upload state: {e}"))));
        }
        ReadyResponse::Ready(Json(Health { status: "ok".into() }))
    }
}
