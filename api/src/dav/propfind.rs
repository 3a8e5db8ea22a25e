//! PROPFIND at Depth 0 and 1, streamed: the answer starts once the resource
//! and the first page of its children are read, and each further page is
//! read and written in turn, so a 10,000-entry folder never sits in memory.
//! A page that cannot be read after the first byte breaks the connection
//! (its task unwinds, dropping the socket mid-body): a 207 never ends with members missing,
//! which a sync client would take for deletions. Depth infinity (and a
//! request without Depth, which means infinity) is refused with 403 and
//! `<d:propfind-finite-depth/>` (RFC 4918 §9.1), whatever other headers say.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use poem::http::StatusCode;
use poem::{Body, Request, Response};
use shared::Services;
use shared::domain::{SortKey, TreeItem, User};
use shared::tree::{DeadProp, ListCursor, PageRequest};

use super::xml::{self, DAV, OC, PropFind, PropName};
use super::{Dav, DavError, DavResult, Node, Target};

/// Children read (and written) per page.
const PAGE: i64 = 500;
/// How long an XML request body may take to arrive.
const BODY_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// Reads a small XML request body: at most [`xml::MAX_BODY`] bytes within 20 s.
pub async fn read_body(body: Body) -> DavResult<Bytes> {
    match tokio::time::timeout(BODY_TIME, body.into_bytes_limit(xml::MAX_BODY)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => {
            Err(DavError::new(StatusCode::PAYLOAD_TOO_LARGE, "an XML body is at most 1 MiB"))
        }
        Ok(Err(e)) => Err(DavError::bad(format!("reading the body: {e}"))),
        Err(_) => Err(DavError::bad("the body did not arrive within 20 s")),
    }
}

/// Which properties every resource has, and which `allprop` lists.
fn all_props() -> Vec<PropName> {
    [
        "resourcetype",
        "getlastmodified",
        "getetag",
        "getcontentlength",
        "getcontenttype",
        "supportedlock",
        "lockdiscovery",
    ]
    .iter()
    .map(|n| PropName::new(DAV, n))
    .collect()
}

/// Every property name pan knows (what `propname` lists, where defined).
fn known_props() -> Vec<PropName> {
    let mut out = all_props();
    out.extend(["displayname", "quota-used-bytes", "quota-available-bytes"].iter().map(|n| PropName::new(DAV, n)));
    out.extend(["fileid", "checksums", "size"].iter().map(|n| PropName::new(OC, n)));
    out
}

/// The user's usage and what is left (`-3`, as Nextcloud says it: no limit).
#[derive(Debug, Clone, Copy)]
struct Quota {
    used: i64,
    available: i64,
}

/// How the properties of each resource of one PROPFIND are written.
struct Render {
    asked: PropFind,
    /// The caller's locks, when the answer shows them.
    locks: Option<Vec<shared::tree::locks::DavLock>>,
    /// The href of the caller's root (lock roots are written from it).
    base: String,
    quota: Option<Quota>,
    /// The caller's signup time: the root's modification time.
    root_time: i64,
}

impl Render {
    /// The value of `prop` on `node` as XML content, `None` where the
    /// resource has no such property.
    fn value(&self, node: &Node, path: &str, prop: &PropName) -> Option<String> {
        let collection = !matches!(node, Node::File(_));
        if prop.ns == DAV {
            return match (prop.name.as_str(), node) {
                ("supportedlock", _) => Some(super::locks::SUPPORTED.to_owned()),
                ("lockdiscovery", _) => self.locks.as_ref().map(|locks| {
                    locks.iter().filter(|l| l.covers(path)).map(|l| super::locks::activelock(&self.base, l)).collect()
                }),
                ("resourcetype", _) => Some(if collection { "<d:collection/>".into() } else { String::new() }),
                ("getlastmodified", Node::File(f)) => Some(http_date(f.mtime)),
                ("getlastmodified", Node::Folder(d)) => Some(http_date(d.updated_at)),
                ("getlastmodified", Node::Root) => Some(http_date(self.root_time)),
                ("getetag", Node::File(f)) => {
                    Some(xml::escape(&format!("\"{}\"", f.sha256.as_deref().unwrap_or(&f.filehash))))
                }
                ("getetag", Node::Folder(d)) => Some(xml::escape(&format!("\"{}-{}\"", d.id, d.updated_at))),
                ("getcontentlength", Node::File(f)) => Some(f.filesize.to_string()),
                ("getcontenttype", Node::File(f)) => Some(xml::escape(
                    crate::routes::files::preview_type(&f.filename).unwrap_or("application/octet-stream"),
                )),
                ("displayname", Node::File(f)) => Some(xml::escape(&f.filename)),
                ("displayname", Node::Folder(d)) => Some(xml::escape(&d.name)),
                ("quota-used-bytes", _) if collection => self.quota.map(|q| q.used.to_string()),
                ("quota-available-bytes", _) if collection => self.quota.map(|q| q.available.to_string()),
                _ => None,
            };
        }
        if prop.ns == OC {
            return match (prop.name.as_str(), node) {
                ("fileid", Node::File(f)) => Some(f.id.clone()),
                ("fileid", Node::Folder(d)) => Some(d.id.clone()),
                ("checksums", Node::File(f)) => Some(format!("<oc:checksum>SHA1:{}</oc:checksum>", f.filehash)),
                ("size", Node::File(f)) => Some(f.filesize.to_string()),
                _ => None,
            };
        }
        None
    }

    /// One `<d:response>` for `node` at `href`, with its dead properties.
    fn response(&self, href: &str, path: &str, node: &Node, dead: &[DeadProp]) -> String {
        let (mut found, mut missing) = (Vec::new(), Vec::new());
        let dead_value = |p: &PropName| dead.iter().find(|d| d.ns == p.ns && d.name == p.name).map(|d| d.value.clone());
        match &self.asked {
            PropFind::All => {
                for p in all_props() {
                    if let Some(v) = self.value(node, path, &p) {
                        found.push(p.with(&v));
                    }
                }
                found.extend(dead.iter().map(|d| PropName::new(&d.ns, &d.name).with(&d.value)));
            }
            PropFind::Names => {
                for p in known_props() {
                    if self.value(node, path, &p).is_some() {
                        found.push(p.empty());
                    }
                }
                found.extend(dead.iter().map(|d| PropName::new(&d.ns, &d.name).empty()));
            }
            PropFind::Props(props) => {
                for p in props {
                    match self.value(node, path, p).or_else(|| dead_value(p)) {
                        Some(v) if v.is_empty() => found.push(p.empty()),
                        Some(v) => found.push(p.with(&v)),
                        None => missing.push(p.empty()),
                    }
                }
            }
        }
        xml::response(href, &found, &missing)
    }

    /// Whether the answer shows locks (so they must be read).
    fn wants_locks(&self) -> bool {
        match &self.asked {
            PropFind::All => true,
            PropFind::Names => false,
            PropFind::Props(props) => props.iter().any(|p| p.is(DAV, "lockdiscovery")),
        }
    }

    /// Whether the answer shows dead properties (so they must be read).
    fn wants_dead(&self) -> bool {
        match &self.asked {
            PropFind::All | PropFind::Names => true,
            PropFind::Props(props) => {
                let known = known_props();
                props.iter().any(|p| !known.contains(p))
            }
        }
    }

    fn wants_quota(&self) -> bool {
        match &self.asked {
            PropFind::Props(props) => {
                props.iter().any(|p| p.is(DAV, "quota-used-bytes") || p.is(DAV, "quota-available-bytes"))
            }
            PropFind::Names => false,
            PropFind::All => false,
        }
    }
}

/// Unix seconds as an HTTP date (RFC 9110 IMF-fixdate).
pub fn http_date(secs: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// `PROPFIND`.
pub async fn propfind(dav: &Dav, req: &Request, target: &Target, body: Body) -> DavResult {
    let depth = match req.header("depth").map(str::trim) {
        Some("0") => 0,
        Some("1") => 1,
        Some(d) if !d.eq_ignore_ascii_case("infinity") => return Err(DavError::bad("Depth is 0, 1 or infinity")),
        _ => {
            let mut e = DavError::forbidden("PROPFIND of Depth infinity is not supported: ask for Depth 0 or 1");
            e.condition = Some("propfind-finite-depth");
            return Err(e);
        }
    };
    let asked = xml::parse_propfind(&read_body(body).await?).map_err(|e| DavError::bad(e.0))?;
    let node = dav.resolve(target).await?.ok_or_else(DavError::not_found)?;
    let mut render = Render { asked, locks: None, base: dav.base.clone(), quota: None, root_time: dav.user.created_at };
    if render.wants_locks() {
        render.locks = Some(dav.state.services.locks.list(&dav.user).await?);
    }
    if render.wants_quota() {
        let profile = dav.state.services.accounts.profile(&dav.user).await?;
        let used = profile.usage.bytes + profile.usage.trash_bytes + profile.versions.1 as i64;
        let available = profile.quota_bytes.map_or(-3, |q| (q as i64 - used).max(0));
        render.quota = Some(Quota { used, available });
    }
    let collection = !matches!(node, Node::File(_));
    let mut first = String::from(xml::MULTISTATUS_OPEN);
    let dead = if render.wants_dead() {
        dav.state.services.tree.dead_props(&dav.user, &[entry_id(&node).to_owned()]).await?
    } else {
        Vec::new()
    };
    let path = target.tree_path();
    first.push_str(&render.response(&dav.href(&target.names, collection), &path, &node, &dead));
    let folder = match node.folder_id() {
        Some(id) if depth == 1 => id.to_owned(),
        _ => {
            first.push_str(xml::MULTISTATUS_CLOSE);
            return Ok(multistatus(Body::from_string(first)));
        }
    };
    // The first page before the first byte: a backend that is away now is
    // a 503, not a broken answer.
    let lister = Arc::new(Lister {
        services: dav.state.services.clone(),
        user: dav.user.clone(),
        folder,
        parent_href: dav.href(&target.names, true),
        parent_path: path.clone(),
        render,
    });
    let (page, next) = lister.page(None).await?;
    first.push_str(&page);
    let Some(cursor) = next else {
        first.push_str(xml::MULTISTATUS_CLOSE);
        return Ok(multistatus(Body::from_string(first)));
    };
    let rest = futures::stream::unfold(Some(cursor), move |cursor| {
        let lister = lister.clone();
        async move {
            let cursor = cursor?;
            match lister.page(Some(cursor)).await {
                Ok((page, Some(next))) => Some((Ok(Bytes::from(page)), Some(next))),
                Ok((mut page, None)) => {
                    page.push_str(xml::MULTISTATUS_CLOSE);
                    Some((Ok(Bytes::from(page)), None))
                }
                Err(e) => {
                    // The connection must break: the client then sees a cut
                    // answer, never a complete 207 with members missing. An
                    // error from the body does not do it (hyper ends the
                    // chunked body cleanly after one), so the connection's
                    // task unwinds (without the panic hook: this is no bug),
                    // which drops the socket mid-body; tokio contains it to
                    // this connection.
                    tracing::warn!(status = %e.status, message = %e.message, "a PROPFIND listing failed mid-answer: closing the connection");
                    std::panic::resume_unwind(Box::new("a PROPFIND listing failed mid-answer"))
                }
            }
        }
    });
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) }).chain(rest);
    Ok(multistatus(Body::from_bytes_stream(stream)))
}

/// The id dead properties are kept under: the entry's, `""` for the root.
pub fn entry_id(node: &Node) -> &str {
    match node {
        Node::Root => "",
        Node::Folder(d) => &d.id,
        Node::File(f) => &f.id,
    }
}

/// A 207 with `body`.
pub fn multistatus(body: Body) -> Response {
    Response::builder().status(StatusCode::MULTI_STATUS).content_type("application/xml; charset=utf-8").body(body)
}

/// The pages of one folder's listing, each read and written on demand.
struct Lister {
    services: Arc<Services>,
    user: User,
    folder: String,
    /// The folder's href, ending with `/`.
    parent_href: String,
    /// The folder's path in the tree.
    parent_path: String,
    render: Render,
}

impl Lister {
    /// The responses of the page after `after`, and where the next begins.
    async fn page(&self, after: Option<ListCursor>) -> DavResult<(String, Option<ListCursor>)> {
        let page = PageRequest { sort: SortKey::Name, desc: false, limit: PAGE, after };
        let (items, next) = self.services.tree.list_children(&self.user, &self.folder, &page).await?;
        let nodes: Vec<(Node, bool)> = items
            .into_iter()
            .map(|item| match item {
                TreeItem::Folder(d) => (Node::Folder(d), true),
                TreeItem::File(f) => (Node::File(f), false),
            })
            .collect();
        let dead = if self.render.wants_dead() && !nodes.is_empty() {
            let ids: Vec<String> = nodes.iter().map(|(n, _)| entry_id(n).to_owned()).collect();
            self.services.tree.dead_props(&self.user, &ids).await?
        } else {
            Vec::new()
        };
        let mut out = String::new();
        for (node, collection) in nodes {
            let name = match &node {
                Node::Folder(d) => d.name.as_str(),
                Node::File(f) => f.filename.as_str(),
                Node::Root => "",
            };
            let mut href = format!("{}{}", self.parent_href, super::encode_segment(name));
            if collection {
                href.push('/');
            }
            let id = entry_id(&node);
            let own: Vec<DeadProp> = dead.iter().filter(|d| d.entry_id == id).cloned().collect();
            let path = format!("{}/{}", self.parent_path.trim_end_matches('/'), shared::domain::name_key(name));
            out.push_str(&self.render.response(&href, &path, &node, &own));
        }
        Ok((out, next))
    }
}
