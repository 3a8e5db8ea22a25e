//! LOCK and UNLOCK (class 2), and the `If` header every write is checked
//! against. Locks are per (user, path) in the deployment's lock store
//! (shared by every api process), at most an hour (Windows asks for
//! Infinite). A write must name in `If` the token of every lock that
//! covers what it changes (else 423); an `If` whose every list is false is
//! 412 (RFC 4918 §10.4). A lock store that fails fails the write (503).

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Request, Response};
use shared::domain::{FileName, FolderId, NameRule, Placement};
use shared::tree::locks::{Acquired, DavLock, MAX_TIMEOUT, NewLock};

use super::propfind::read_body;
use super::xml::{self, DAV};
use super::{Dav, DavError, DavResult, Node, Target};

/// One condition of an `If` list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// A state token (a lock token, or `DAV:no-lock`).
    Token(String),
    /// An entity tag, with its quotes.
    Etag(String),
}

/// An `If` header: lists (any may hold), each of conditions (all must),
/// each maybe negated. A last list cut off (litmus cuts headers with long
/// ETags at a fixed length) is dropped: it can hold nothing. `None` when
/// no list is whole.
fn parse_if(value: &str) -> Option<Vec<Vec<(bool, Condition)>>> {
    let mut lists = Vec::new();
    let complete = parse_lists(value, &mut lists);
    (complete.is_some() || !lists.is_empty()).then_some(lists)
}

/// Parses lists into `lists` until the end (`Some`) or a malformed one (`None`).
fn parse_lists(value: &str, lists: &mut Vec<Vec<(bool, Condition)>>) -> Option<()> {
    let mut rest = value.trim();
    while !rest.is_empty() {
        if let Some(tagged) = rest.strip_prefix('<') {
            // A resource tag: its lists are taken to be about the request's resource.
            rest = tagged.split_once('>')?.1.trim_start();
            continue;
        }
        let inner = rest.strip_prefix('(')?;
        let (list, after) = inner.split_once(')')?;
        rest = after.trim_start();
        let mut conds = Vec::new();
        let mut l = list.trim();
        while !l.is_empty() {
            let mut not = false;
            if let Some(x) = l.strip_prefix("Not").or_else(|| l.strip_prefix("not")) {
                not = true;
                l = x.trim_start();
            }
            if let Some(x) = l.strip_prefix('<') {
                let (token, after) = x.split_once('>')?;
                conds.push((not, Condition::Token(token.trim().to_owned())));
                l = after.trim_start();
            } else if let Some(x) = l.strip_prefix('[') {
                let (etag, after) = x.split_once(']')?;
                conds.push((not, Condition::Etag(etag.trim().trim_start_matches("W/").to_owned())));
                l = after.trim_start();
            } else {
                return None;
            }
        }
        lists.push(conds);
    }
    Some(())
}

/// The lock tokens a request submits (every state token of its `If`).
pub fn submitted(req: &Request) -> Vec<String> {
    let Some(lists) = req.header("if").and_then(parse_if) else { return Vec::new() };
    lists
        .into_iter()
        .flatten()
        .filter_map(|(_, c)| match c {
            Condition::Token(t) => Some(t),
            Condition::Etag(_) => None,
        })
        .collect()
}

/// The ETag the `If` header compares (a file's content, quoted).
fn etag_of(node: Option<&Node>) -> Option<String> {
    match node {
        Some(Node::File(f)) => Some(format!("\"{}\"", f.sha256.as_deref().unwrap_or(&f.filehash))),
        Some(Node::Folder(d)) => Some(format!("\"{}-{}\"", d.id, d.updated_at)),
        _ => None,
    }
}

/// Checks a write of `target` (with `below`: and of everything under it):
/// 412 when `If` is present and false, 423 when a lock covering it is not
/// named in `If`.
pub async fn check_write(dav: &Dav, req: &Request, target: &Target, below: bool) -> DavResult<()> {
    let path = target.tree_path();
    let locks = dav.state.services.locks.list(&dav.user).await?;
    if let Some(value) = req.header("if") {
        let lists = parse_if(value).ok_or_else(|| DavError::bad("malformed If header"))?;
        let node = dav.resolve(target).await?;
        let etag = etag_of(node.as_ref());
        let holds = |c: &Condition| match c {
            Condition::Token(t) => locks.iter().any(|l| l.token == *t && l.covers(&path)),
            Condition::Etag(e) => etag.as_deref() == Some(e.as_str()),
        };
        if !lists.iter().any(|list| list.iter().all(|(not, c)| holds(c) != *not)) {
            return Err(DavError::new(StatusCode::PRECONDITION_FAILED, "no list of the If header holds"));
        }
    }
    let tokens = submitted(req);
    let blocking = locks.iter().find(|l| {
        (l.covers(&path) || (below && shared::tree::locks::is_below(&l.path, &path))) && !tokens.contains(&l.token)
    });
    match blocking {
        Some(l) => {
            let mut e = DavError::new(StatusCode::LOCKED, format!("{} is locked; send its lock token in If", l.path));
            e.condition = Some("lock-token-submitted");
            Err(e)
        }
        None => Ok(()),
    }
}

/// `Timeout: Second-N` or `Infinite` (the first understood), capped at an hour.
fn timeout(req: &Request) -> i64 {
    req.header("timeout")
        .into_iter()
        .flat_map(|v| v.split(','))
        .find_map(|t| {
            let t = t.trim();
            if t.eq_ignore_ascii_case("infinite") {
                Some(MAX_TIMEOUT)
            } else {
                t.strip_prefix("Second-").and_then(|n| n.parse::<i64>().ok())
            }
        })
        .unwrap_or(MAX_TIMEOUT)
        .clamp(1, MAX_TIMEOUT)
}

/// The `<d:activelock>` of a lock.
pub fn activelock(base: &str, l: &DavLock) -> String {
    let mut root = base.to_owned();
    for name in l.path.split('/').filter(|s| !s.is_empty()) {
        root.push('/');
        root.push_str(&super::encode_segment(name));
    }
    format!(
        "<d:activelock><d:locktype><d:write/></d:locktype><d:lockscope><d:{}/></d:lockscope>\
         <d:depth>{}</d:depth>{}<d:timeout>Second-{}</d:timeout>\
         <d:locktoken><d:href>{}</d:href></d:locktoken><d:lockroot><d:href>{}</d:href></d:lockroot></d:activelock>",
        if l.exclusive { "exclusive" } else { "shared" },
        if l.infinite { "infinity" } else { "0" },
        if l.owner.is_empty() { String::new() } else { format!("<d:owner>{}</d:owner>", l.owner) },
        (l.expires_at - shared::now()).max(0),
        xml::escape(&l.token),
        xml::escape(&root),
    )
}

/// What `supportedlock` says.
pub const SUPPORTED: &str = "<d:lockentry><d:lockscope><d:exclusive/></d:lockscope><d:locktype><d:write/></d:locktype></d:lockentry>\
     <d:lockentry><d:lockscope><d:shared/></d:lockscope><d:locktype><d:write/></d:locktype></d:lockentry>";

fn lock_answer(dav: &Dav, status: StatusCode, l: &DavLock, new: bool) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:prop xmlns:d=\"DAV:\"><d:lockdiscovery>{}</d:lockdiscovery></d:prop>\n",
        activelock(&dav.base, l)
    );
    let mut resp = Response::builder().status(status).content_type("application/xml; charset=utf-8").body(body);
    if new && let Ok(v) = HeaderValue::from_str(&format!("<{}>", l.token)) {
        resp.headers_mut().insert("Lock-Token", v);
    }
    resp
}

/// `LOCK`: a new lock (201 when it made an empty file at an unmapped path,
/// else 200), or with no body a refresh of the lock named in `If`.
pub async fn lock(dav: &Dav, req: &Request, target: &Target, body: Body) -> DavResult {
    let body = read_body(body).await?;
    let locks = &dav.state.services.locks;
    if body.iter().all(u8::is_ascii_whitespace) {
        let tokens = submitted(req);
        for t in &tokens {
            if let Some(l) = locks.refresh(&dav.user, t, timeout(req)).await?
                && l.covers(&target.tree_path())
            {
                return Ok(lock_answer(dav, StatusCode::OK, &l, false));
            }
        }
        return Err(DavError::new(StatusCode::PRECONDITION_FAILED, "a refresh names a live lock of this path in If"));
    }
    let text = std::str::from_utf8(&body).map_err(|_| DavError::bad("the body is not UTF-8"))?;
    let doc = xml::parse(text).map_err(|e| DavError::bad(e.0))?;
    let root = doc.root_element();
    if !xml::is(root, DAV, "lockinfo") {
        return Err(DavError::bad("the body's root is not DAV:lockinfo"));
    }
    let child = |name: &str| root.children().find(|n| xml::is(*n, DAV, name));
    let exclusive = match child("lockscope").and_then(|s| s.children().find(roxmltree::Node::is_element)) {
        Some(s) if xml::is(s, DAV, "exclusive") => true,
        Some(s) if xml::is(s, DAV, "shared") => false,
        _ => return Err(DavError::bad("lockscope is exclusive or shared")),
    };
    if !child("locktype").is_some_and(|t| t.children().any(|n| xml::is(n, DAV, "write"))) {
        return Err(DavError::bad("locktype is write"));
    }
    let owner = child("owner").map(xml::inner_xml).unwrap_or_default();
    if owner.len() > 16 << 10 {
        return Err(DavError::bad("owner is at most 16 KiB"));
    }
    let infinite = match req.header("depth").map(str::trim) {
        None => true,
        Some("0") => false,
        Some(d) if d.eq_ignore_ascii_case("infinity") => true,
        Some(_) => return Err(DavError::bad("a LOCK's Depth is 0 or infinity")),
    };
    let node = dav.resolve(target).await?;
    if node.is_none() {
        check_write(dav, req, target, false).await?;
    }
    let new = NewLock { path: target.tree_path(), infinite, exclusive, owner, timeout: timeout(req) };
    let taken = match locks.lock(&dav.user, new).await? {
        Ok(l) => l,
        Err(Acquired::TooMany) => {
            let mut e = DavError::new(StatusCode::SERVICE_UNAVAILABLE, "you hold too many locks");
            e.retry_after = Some(60);
            return Err(e);
        }
        Err(_) => {
            let mut e = DavError::new(StatusCode::LOCKED, "a conflicting lock is held");
            e.condition = Some("no-conflicting-lock");
            return Err(e);
        }
    };
    if node.is_some() {
        return Ok(lock_answer(dav, StatusCode::OK, &taken, true));
    }
    // A lock of an unmapped path makes an empty file there (RFC 4918 §7.3).
    let made = async {
        let Some((name, parent)) = target.split_last() else {
            return Err(DavError::not_allowed("the root exists"));
        };
        let folder = dav.parent_folder(parent).await?;
        let place = Placement {
            folder: if folder.is_empty() { None } else { Some(FolderId::parse(&folder)?) },
            rule: NameRule::Refuse,
            if_match: None,
        };
        let name = FileName::parse(name)?;
        dav.state.services.files.upload_single(&dav.user, &name, &place, None, (0, None), tokio::io::empty()).await?;
        Ok(())
    };
    if let Err(e) = made.await {
        if let Err(back) = locks.unlock(&dav.user, &taken.token).await {
            tracing::warn!(error = %back, "releasing the lock of a file not made failed");
        }
        return Err(e);
    }
    Ok(lock_answer(dav, StatusCode::CREATED, &taken, true))
}

/// `UNLOCK` with `Lock-Token: <token>`: 204, or 409 when no such lock of
/// this path is held.
pub async fn unlock(dav: &Dav, req: &Request, target: &Target) -> DavResult {
    let token = req
        .header("lock-token")
        .map(|t| t.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        .ok_or_else(|| DavError::bad("Lock-Token is required"))?;
    let locks = &dav.state.services.locks;
    let held = locks.list(&dav.user).await?.into_iter().find(|l| l.token == token && l.covers(&target.tree_path()));
    if held.is_none() || !locks.unlock(&dav.user, &token).await? {
        let mut e = DavError::conflict("no such lock of this path");
        e.condition = Some("lock-token-matches-request-uri");
        return Err(e);
    }
    Ok(Response::builder().status(StatusCode::NO_CONTENT).header(header::CONTENT_LENGTH, "0").finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_headers_parse_into_lists_of_conditions() {
        let lists = parse_if("(<opaquelocktoken:a> [\"e\"]) (Not <DAV:no-lock>)").unwrap();
        assert_eq!(
            lists,
            vec![
                vec![(false, Condition::Token("opaquelocktoken:a".into())), (false, Condition::Etag("\"e\"".into()))],
                vec![(true, Condition::Token("DAV:no-lock".into()))],
            ]
        );
        assert_eq!(parse_if("<http://h/a> (<t>)").unwrap(), vec![vec![(false, Condition::Token("t".into()))]]);
        assert!(parse_if("(<t>").is_none() && parse_if("garbage").is_none());
        assert_eq!(parse_if("(<t>) (Not <u> [\"cut").unwrap().len(), 1, "a list cut off is dropped");
    }
}
