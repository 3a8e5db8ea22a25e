//! One HTTP session with a pan server: its base URL, the bearer token, and
//! the retry policy every call of the upload engine and of the `pan` command
//! goes through.
//!
//! The generated client (`crate::Client`) has no retries and cannot stream a
//! chunk body from a file region, so the engine speaks HTTP through this
//! session and decodes answers into the generated `crate::types`: the spec
//! still decides every shape, in one place.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

/// How failed requests are retried: network errors, 5xx, 429 and 503
/// (the last two after their `Retry-After` when they carry one).
#[derive(Debug, Clone)]
pub struct Retry {
    /// Tries after the first one before giving up.
    pub retries: u32,
    /// The first wait; each next one doubles, up to `max`.
    pub base: Duration,
    /// The longest wait between two tries, and the most a `Retry-After` is honoured.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { retries: 6, base: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

impl Retry {
    /// The wait before try `attempt` (1 for the first retry): exponential,
    /// with up to half of it drawn at random so that parallel chunks do not
    /// come back at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let full = self.base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.max);
        full.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// Why a request did not get the answer it wanted.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer (connection refused or lost, timeout), after every retry.
    #[error("cannot reach {base} ({source})")]
    Network {
        /// The server.
        base: String,
        /// The last failure.
        #[source]
        source: reqwest::Error,
    },
    /// 401 on a request that carried a token: expired, signed out or unknown.
    #[error("the server refused the token (expired, signed out or unknown): run pan login")]
    Unauthorized,
    /// Any other refusal, with pan's `{code, message}`.
    #[error("{message} ({code})")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// pan's stable error code (`NAME_TAKEN`, …).
        code: String,
        /// pan's message.
        message: String,
    },
    /// An answer that does not follow the spec.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl ApiError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            ApiError::Unauthorized => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }

    /// pan's error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A server, a token and a retry policy.
#[derive(Debug, Clone)]
pub struct Session {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// How failed requests are retried.
    pub retry: Retry,
}

impl Session {
    /// A session with `base`, trusting also the PEM certificates in `cacert`
    /// (a private CA) when given.
    pub fn new(base: &str, token: Option<String>, cacert: Option<&Path>) -> Result<Session, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("pan/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = cacert {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("{} holds no PEM certificate: {e}", path.display()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| format!("cannot set up HTTP: {e}"))?;
        Ok(Session { base: base.trim_end_matches('/').to_owned(), token, http, retry: Retry::default() })
    }

    /// The token this session sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to `path` (e.g. `/file/mupload/init`), with the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends the request `make` builds, building it again for each retry,
    /// and gives back the first 2xx or 3xx answer. Refusals become
    /// [`ApiError`]s; network errors, 5xx and 429 are retried per `self.retry`.
    pub async fn send(&self, make: impl Fn() -> RequestBuilder) -> Result<Response, ApiError> {
        let mut attempt = 0;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            let wait = match make().send().await {
                Ok(resp) if resp.status().is_success() || resp.status().is_redirection() => return Ok(resp),
                Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    let wait = retry_after(&resp).map(|d| d.min(self.retry.max));
                    let refusal = self.refusal(resp).await;
                    // A chunk another send holds (or a sender that crashed, whose
                    // claim runs out within 15 s): waiting for it is not a failure.
                    let busy = matches!(&refusal, ApiError::Refused { code, .. } if code == "CHUNK_BUSY");
                    if busy && started.elapsed() < CHUNK_BUSY_PATIENCE {
                        attempt -= 1;
                    } else if attempt > self.retry.retries {
                        return Err(refusal);
                    }
                    wait.unwrap_or_else(|| self.retry.backoff(attempt.max(1)))
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retryable = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if !retryable || attempt > self.retry.retries {
                        return Err(self.refusal(resp).await);
                    }
                    retry_after(&resp).map(|d| d.min(self.retry.max)).unwrap_or_else(|| self.retry.backoff(attempt))
                }
                Err(e) => {
                    if attempt > self.retry.retries || e.is_builder() {
                        return Err(ApiError::Network { base: self.base.clone(), source: e });
                    }
                    self.retry.backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Turns a refusal into an [`ApiError`], reading pan's `{code, message}`.
    pub async fn refusal(&self, resp: Response) -> ApiError {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED && self.token.is_some() {
            return ApiError::Unauthorized;
        }
        let text = resp.text().await.unwrap_or_default();
        match serde_json::from_str::<crate::types::ErrorBody>(&text) {
            Ok(body) => ApiError::Refused { status, code: body.code, message: body.message },
            Err(_) => ApiError::Refused {
                status,
                code: status.as_u16().to_string(),
                message: if text.is_empty() { status.to_string() } else { text },
            },
        }
    }

    /// A JSON call: `query` as query parameters, `body` as the JSON body.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, ApiError> {
        let resp = self
            .send(|| {
                let req = self.request(method.clone(), path).query(query);
                match body {
                    Some(b) => req.json(b),
                    None => req,
                }
            })
            .await?;
        let bytes = resp.bytes().await.map_err(|e| ApiError::Network { base: self.base.clone(), source: e })?;
        let bytes = if bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
        serde_json::from_slice(bytes).map_err(|e| ApiError::Protocol(format!("{method} {path}: {e}")))
    }
}

/// How long `CHUNK_BUSY` answers are waited out before they count as
/// failures: twice the server's claim on a chunk (15 s), so a claim left by
/// a crashed server always runs out first.
const CHUNK_BUSY_PATIENCE: Duration = Duration::from_secs(30);

/// The wait a 429 or 503 asks for, in seconds (`Retry-After: 5`).
fn retry_after(resp: &Response) -> Option<Duration> {
    let value = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let r = Retry { retries: 10, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (12, 1000)] {
            let d = r.backoff(attempt).as_millis() as u64;
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} ms");
        }
    }
}
