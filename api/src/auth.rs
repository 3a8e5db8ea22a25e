//! Bearer tokens: 256 random bits given out at signin, stored only as their
//! SHA-256, checked on every route but signup, signin, health and docs.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use sha2::{Digest, Sha256};
use shared::domain::User;

use crate::error::ApiError;
use crate::state::AppState;

/// The caller, authenticated by `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "opaque", checker = "check_token")]
pub struct BearerAuth(pub User);

/// The bearer token a request carries, if any (the scheme is
/// case-insensitive, as the checker reads it).
pub fn bearer_token(req: &Request) -> Option<&str> {
    req.header("authorization")
        .and_then(|h| h.trim().split_once(' '))
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()))
}

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<User> {
    let state = req.data::<AppState>().expect("AppState is attached to the route");
    let token = bearer.token.trim();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::unauthorized("malformed bearer token").into());
    }
    match state.services.accounts.authenticate(token).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(ApiError::unauthorized("unknown or expired token; sign in again").into()),
        Err(e) => Err(ApiError::from(e).into()),
    }
}

/// A scraper of `/metrics`, authenticated by `Authorization: Bearer
/// <PAN_METRICS_TOKEN>`. Without that setting `/metrics` is closed: it tells
/// strangers how many users and bytes the installation holds.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_metrics_token")]
pub struct MetricsAuth(());

async fn check_metrics_token(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let state = req.data::<AppState>().expect("AppState is attached to the route");
    let Some(want) = state.metrics_token.as_deref() else {
        return Err(ApiError::unauthorized("metrics are off: set PAN_METRICS_TOKEN to scrape them").into());
    };
    // Compare digests, so the time taken says nothing about the token.
    if Sha256::digest(bearer.token.trim().as_bytes()) == Sha256::digest(want.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("wrong metrics token").into())
    }
}
