//! pan's own web page: a single-page app embedded in the binary.
//!
//! The files under `api/web/` are compiled in with `include_bytes!`, so the
//! `api` binary serves its page with no build step and no files beside it.
//! [`with_web_app`] wraps the API endpoint and answers, before the API sees
//! the request:
//! - `GET /` with the page;
//! - `GET /usr/signup`, `/usr/signin`, `/file/upload` with the page when the
//!   client asks for HTML (`Accept` names `text/html`), so the same paths stay
//!   POST JSON routes for API clients (and a GET without HTML still gets the
//!   API's JSON 405);
//! - `GET /s/<link>` (a share link's public page, [`SHARE_PREFIX`]) with the
//!   page when the client asks for HTML; the page reads the link from its
//!   path and asks `/public/share/*` what it shares;
//! - `GET /static/<file>` with the embedded assets.
//!
//! Everything else goes to the API untouched. The page's script picks its view
//! from `location.pathname`. Every response carries a Content-Security-Policy
//! that allows only this origin's scripts (no inline code) plus WebAssembly
//! compilation for the SHA-1 worker.

use std::sync::OnceLock;

use poem::http::header::{self, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

/// The policy of every web response: this origin only, no inline scripts or
/// styles, WebAssembly allowed (hash-wasm compiles its SHA-1 at run time).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     worker-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy of Swagger UI at `/docs`: its own inline scripts only (by
/// their SHA-256, so no injected script runs), inline styles (it sets them
/// itself), requests to this origin ("Try it out"), and never in a frame.
/// `script_hashes` are the `'sha256-…'` sources of its page's scripts.
pub fn docs_policy(script_hashes: &[String]) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        script_hashes.join(" ")
    )
}

/// The CSP sources (`'sha256-…'`) of every inline script of an HTML page.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    use base64::Engine;
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find("<script") {
        let Some(body) = rest[open..].find('>').map(|i| open + i + 1) else { break };
        let Some(len) = rest[body..].find("</script>") else { break };
        let digest = Sha256::digest(&rest.as_bytes()[body..body + len]);
        hashes.push(format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
        rest = &rest[body + len..];
    }
    hashes
}

/// Swagger UI with its security headers: [`docs_policy`] for the scripts
/// of `html` (the page it serves), no sniffing, no referrer, no framing.
pub fn with_docs_headers<E: IntoEndpoint>(docs: E, html: &str) -> impl Endpoint + use<E> {
    let policy = HeaderValue::from_str(&docs_policy(&inline_script_hashes(html))).expect("a CSP is a header value");
    docs.into_endpoint().with(
        poem::middleware::SetHeader::new()
            .overriding(header::CONTENT_SECURITY_POLICY, policy)
            .overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"))
            .overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"))
            .overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    )
}

/// Paths that show the page when a browser asks for HTML; `/` always does.
pub const VIEWS: &[&str] = &["/usr/signup", "/usr/signin", "/file/upload"];

/// Share links open at `/s/<link>`: any path under it shows the page (to a
/// browser), which reads the link from `location.pathname`.
pub const SHARE_PREFIX: &str = "/s/";

/// Upload links open at `/u/<link>`: the page that uploads with one (to a
/// browser), which reads the link from `location.pathname`.
pub const DROP_PREFIX: &str = "/u/";

/// Where the assets are served.
pub const STATIC_PREFIX: &str = "/static/";

/// One embedded file.
struct Asset {
    /// Path under `api/web/` and under [`STATIC_PREFIX`].
    name: &'static str,
    /// Its `Content-Type`.
    mime: &'static str,
    /// Its bytes.
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset { name: $name, mime: $mime, body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page. A new file under `api/web/` needs a line here.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("files.js", JS),
    asset!("preview.js", JS),
    asset!("share.js", JS),
    asset!("history.js", JS),
    asset!("public.js", JS),
    asset!("upload.js", JS),
    asset!("format.js", JS),
    asset!("hash-worker.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("drop.html", "text/html; charset=utf-8"),
    asset!("drop.js", JS),
    asset!("vendor/tus-js-client/tus.min.js", JS),
    asset!("vendor/tus-js-client/LICENSE", "text/plain; charset=utf-8"),
    asset!("vendor/hash-wasm/sha1.umd.min.js", JS),
    asset!("vendor/hash-wasm/sha256.umd.min.js", JS),
    asset!("vendor/hash-wasm/LICENSE", "text/plain; charset=utf-8"),
];

/// Strong ETags of the assets, computed once.
fn etag(index: usize) -> &'static str {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    &ETAGS
        .get_or_init(|| ASSETS.iter().map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12]))).collect())
        [index]
}

fn find(name: &str) -> Option<usize> {
    ASSETS.iter().position(|a| a.name == name)
}

/// Wraps the API so the web page is served beside it (see the module docs).
pub fn with_web_app<E: IntoEndpoint>(api: E) -> WebApp<E::Endpoint> {
    WebApp { api: api.into_endpoint() }
}

/// The API endpoint with the web page in front; built by [`with_web_app`].
pub struct WebApp<E> {
    api: E,
}

impl<E: Endpoint> Endpoint for WebApp<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if let Some(index) = web_asset_for(&req) {
            return Ok(serve(&req, index));
        }
        if req.method() == Method::GET && req.uri().path().starts_with(STATIC_PREFIX) {
            return Err(poem::error::NotFoundError.into());
        }
        self.api.call(req).await.map(IntoResponse::into_response)
    }
}

/// The embedded file that answers `req`, if the page (not the API) should.
fn web_asset_for(req: &Request) -> Option<usize> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let path = req.uri().path();
    let page = VIEWS.contains(&path) || path.strip_prefix(SHARE_PREFIX).is_some_and(|link| !link.is_empty());
    if path == "/" || (page && wants_html(req)) {
        return find("index.html");
    }
    if path.strip_prefix(DROP_PREFIX).is_some_and(|link| !link.is_empty()) && wants_html(req) {
        return find("drop.html");
    }
    path.strip_prefix(STATIC_PREFIX).and_then(find)
}

/// Whether the client asked for HTML, as a browser navigating does.
fn wants_html(req: &Request) -> bool {
    req.headers().get_all(header::ACCEPT).iter().any(|v| v.to_str().is_ok_and(|s| s.contains("text/html")))
}

fn serve(req: &Request, index: usize) -> Response {
    let asset = &ASSETS[index];
    let etag = etag(index);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let builder = Response::builder()
        .header(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY))
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY")
        // Revalidate every time: the ETag makes that a 304, and a new binary
        // is picked up at once.
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ETAG, etag)
        .header(header::VARY, "Accept");
    if fresh {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    let builder = builder.content_type(asset.mime);
    if req.method() == Method::HEAD {
        return builder.header(header::CONTENT_LENGTH, asset.body.len()).finish();
    }
    builder.body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_policy_allows_exactly_the_inline_scripts_and_forbids_framing() {
        let html = "<p><script charset=\"UTF-8\">alert(1)</script><script>let a = 2;</script>";
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 2);
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(hashes[0], "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='");
        let policy = docs_policy(&hashes);
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains(&hashes[1]), "{policy}");
        assert!(policy.contains("script-src 'sha256-") && !policy.contains("'unsafe-eval'"), "{policy}");
    }

    #[test]
    fn every_asset_has_a_distinct_name_and_a_body() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
            assert_eq!(find(a.name), Some(i), "{} is listed twice", a.name);
        }
    }

    fn get(path: &str, accept: &str) -> Request {
        Request::builder().method(Method::GET).uri(path.parse().unwrap()).header(header::ACCEPT, accept).finish()
    }

    #[test]
    fn a_share_link_shows_the_page_to_a_browser_only() {
        let page = find("index.html");
        assert_eq!(web_asset_for(&get("/s/AbCdEfGhIjKlMnOpQrStUv", "text/html,*/*")), page);
        assert_eq!(web_asset_for(&get("/s/anything/at/all?path=/x", "text/html")), page);
        assert_eq!(web_asset_for(&get("/s/AbCdEfGhIjKlMnOpQrStUv", "application/json")), None);
        assert_eq!(web_asset_for(&get("/s/", "text/html")), None, "no link: the API's 404");
        assert_eq!(web_asset_for(&get("/share/list", "text/html")), None);
        let post = Request::builder().method(Method::POST).uri_str("/s/x").header(header::ACCEPT, "text/html").finish();
        assert_eq!(web_asset_for(&post), None);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[find("index.html").unwrap()].body).unwrap();
        assert!(!html.contains("style="), "inline style attribute");
        assert!(!html.contains("<style"), "inline style element");
        for tag in html.split("<script").skip(1) {
            assert!(tag.split('>').next().unwrap().contains("src="), "inline script");
        }
    }
}
