//! One HTTP session with a pan server: its base URL, the bearer token, and
//! the retry policy every call of the upload engine and of the `pan` command
//! goes through.
//!
//! Every route the engine and the command line call goes through the
//! generated client ([`Session::api`]): its builders, its request types
//! (`crate::types`, checked as they are made) and its answers. The session
//! only adds what progenitor does not have: retries ([`Session::send`], which
//! sends a request the closure builds again for each try), `Retry-After`,
//! the patience with `CHUNK_BUSY`, and one error type.
//!
//! Routes called by hand, because progenitor 0.15 cannot express them:
//! - `POST /file/upload` (`crate::single_upload`): its body is
//!   `multipart/form-data`, which the generator refuses (`build.rs` leaves
//!   the operation out of the copy of the spec it reads). Neither the
//!   engine nor `pan` calls it.
//!
//! What looks hand-written but is not: a chunk goes through
//! `upload_part().upload_checksum(…).body(bytes)` (the spec's binary body and
//! `Upload-Checksum` header), and a download through
//! `file_download().range(…)`, whose answer is the generated `ByteStream`
//! with its status and headers (`Content-Range`, `ETag`,
//! `Content-Disposition`).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use progenitor_client::ResponseValue;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};

use crate::types;

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
    /// A value the spec refuses (a name too long, a malformed id), caught
    /// before anything is sent.
    #[error("not sent: {0}")]
    Invalid(String),
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

    /// pan's error code of a refusal, as the spec's `ErrorCode` (`None`
    /// for a code this client was built without: a newer server's).
    pub fn code(&self) -> Option<types::ErrorCode> {
        match self {
            ApiError::Refused { code, .. } => code.parse().ok(),
            _ => None,
        }
    }
}

/// What a generated operation's `send()` answers.
pub type Answer<T> = Result<ResponseValue<T>, progenitor_client::Error<types::ErrorBody>>;

/// A server, a token and a retry policy.
#[derive(Debug, Clone)]
pub struct Session {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    token: Option<String>,
    api: crate::Client,
    /// How failed requests are retried.
    pub retry: Retry,
}

/// A failed try, sorted for the retry policy.
enum Failed {
    /// An answer that is not a success.
    Refused {
        /// Its status.
        status: StatusCode,
        /// Its `Retry-After`, capped by the policy.
        wait: Option<Duration>,
        /// What the caller gets when it is not retried.
        error: ApiError,
    },
    /// No answer; `retry` is false for a request that could not be built.
    Network { source: reqwest::Error, retry: bool },
    /// Not worth another try (a value the spec refuses, an answer not in it).
    Final(ApiError),
}

impl Session {
    /// A session with `base`, trusting also the PEM certificates in `cacert`
    /// (a private CA) when given.
    pub fn new(base: &str, token: Option<String>, cacert: Option<&Path>) -> Result<Session, String> {
        let mut headers = HeaderMap::new();
        if let Some(t) = &token {
            let mut value = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| "the token is not visible ASCII: run pan login".to_owned())?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("pan/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers);
        if let Some(path) = cacert {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("{} holds no PEM certificate: {e}", path.display()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| format!("cannot set up HTTP: {e}"))?;
        let base = base.trim_end_matches('/').to_owned();
        let api = crate::Client::new_with_client(&base, http);
        Ok(Session { base, token, api, retry: Retry::default() })
    }

    /// The token this session sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The generated client, sending this session's token.
    pub fn api(&self) -> &crate::Client {
        &self.api
    }

    /// Sends the request `make` builds with the generated client, building
    /// it again for each retry, and gives back its answer. Refusals become
    /// [`ApiError`]s; network errors, 5xx and 429 are retried per
    /// `self.retry`, after their `Retry-After` when they carry one, and
    /// `CHUNK_BUSY` is waited out for up to 30 s before it counts as a try.
    pub async fn send<T, F, Fut>(&self, make: F) -> Result<ResponseValue<T>, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Answer<T>>,
    {
        let mut attempt = 0;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            let failed = match make().await {
                Ok(answer) => return Ok(answer),
                Err(e) => self.sort(e).await,
            };
            let wait = match failed {
                Failed::Refused { status: StatusCode::SERVICE_UNAVAILABLE, wait, error } => {
                    // A chunk another send holds (or a sender that crashed, whose
                    // claim runs out within 15 s): waiting for it is not a failure.
                    let busy = error.code() == Some(types::ErrorCode::ChunkBusy);
                    if busy && started.elapsed() < CHUNK_BUSY_PATIENCE {
                        attempt -= 1;
                    } else if attempt > self.retry.retries {
                        return Err(error);
                    }
                    wait.unwrap_or_else(|| self.retry.backoff(attempt.max(1)))
                }
                Failed::Refused { status, wait, error } => {
                    let retryable = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if !retryable || attempt > self.retry.retries {
                        return Err(error);
                    }
                    wait.unwrap_or_else(|| self.retry.backoff(attempt))
                }
                Failed::Network { source, retry } => {
                    if attempt > self.retry.retries || !retry {
                        return Err(ApiError::Network { base: self.base.clone(), source });
                    }
                    self.retry.backoff(attempt)
                }
                Failed::Final(e) => return Err(e),
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// [`Session::send`], keeping only the answer's body.
    pub async fn call<T, F, Fut>(&self, make: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Answer<T>>,
    {
        self.send(make).await.map(ResponseValue::into_inner)
    }

    /// Sorts a failed try for the retry policy, reading pan's `{code,
    /// message}` from a refusal.
    async fn sort(&self, e: progenitor_client::Error<types::ErrorBody>) -> Failed {
        use progenitor_client::Error as E;
        match e {
            E::ErrorResponse(answer) => {
                let (status, wait) = (answer.status(), self.retry_after(answer.headers()));
                let body = answer.into_inner();
                Failed::Refused { status, wait, error: self.refusal(status, body.code, body.message) }
            }
            E::UnexpectedResponse(resp) => {
                let status = resp.status();
                if status.is_success() || status.is_redirection() {
                    return Failed::Final(ApiError::Protocol(format!("{status}, an answer the spec does not list")));
                }
                let wait = self.retry_after(resp.headers());
                let text = resp.text().await.unwrap_or_default();
                let error = match serde_json::from_str::<types::ErrorBody>(&text) {
                    Ok(body) => self.refusal(status, body.code, body.message),
                    Err(_) => {
                        let message = if text.is_empty() { status.to_string() } else { text };
                        self.refusal(status, status.as_u16().to_string(), message)
                    }
                };
                Failed::Refused { status, wait, error }
            }
            E::CommunicationError(source) => Failed::Network { retry: !source.is_builder(), source },
            // The answer came but its body did not: not sent again (a
            // request may have had its effect).
            E::ResponseBodyError(source) => Failed::Network { source, retry: false },
            E::InvalidRequest(why) => Failed::Final(ApiError::Invalid(why)),
            E::InvalidResponsePayload(_, e) => Failed::Final(ApiError::Protocol(e.to_string())),
            E::InvalidUpgrade(e) => Failed::Final(ApiError::Protocol(e.to_string())),
            E::Custom(why) => Failed::Final(ApiError::Protocol(why)),
        }
    }

    /// A refusal as an [`ApiError`]: 401 on a request with a token is
    /// [`ApiError::Unauthorized`].
    fn refusal(&self, status: StatusCode, code: String, message: String) -> ApiError {
        if status == StatusCode::UNAUTHORIZED && self.token.is_some() {
            return ApiError::Unauthorized;
        }
        ApiError::Refused { status, code, message }
    }

    /// The wait a 429 or 503 asks for (`Retry-After: 5`, in seconds),
    /// at most the policy's longest.
    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
        value.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s).min(self.retry.max))
    }
}

/// A value for the generated client, checked against the spec's rules for
/// it (length, pattern) before anything is sent; `what` names it in the
/// error (the value itself is not repeated: it may be a password).
pub fn typed<T, V>(what: &str, value: V) -> Result<T, ApiError>
where
    V: TryInto<T>,
    V::Error: std::fmt::Display,
{
    value.try_into().map_err(|e| {
        // A pattern's regex is no help to the person reading the message.
        let why = e.to_string();
        let why =
            if why.starts_with("doesn't match pattern") { "not a form the server accepts".to_owned() } else { why };
        ApiError::Invalid(format!("{what}: {why}"))
    })
}

/// How long `CHUNK_BUSY` answers are waited out before they count as
/// failures: twice the server's claim on a chunk (15 s), so a claim left by
/// a crashed server always runs out first.
const CHUNK_BUSY_PATIENCE: Duration = Duration::from_secs(30);

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
