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

/// SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<User> {
    let state = req.data::<AppState>().expect("AppState is attached to the route");
    let token = bearer.token.trim();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::unauthorized("malformed bearer token").into());
    }
    match state.backends.repo.user_by_token(&token_hash(token), shared::now()).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(ApiError::unauthorized("unknown or expired token; sign in again").into()),
        Err(e) => Err(ApiError::from(e).into()),
    }
}
