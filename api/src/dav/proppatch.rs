//! PROPPATCH: dead properties stored per entry (at most 100 and 64 KiB per
//! entry), all of a request's changes or none (RFC 4918 §9.2). Two live
//! properties take a value: `{DAV:}lastmodified` (rclone's; also
//! `getlastmodified`) sets a file's modification time, and `oc:checksums`
//! is accepted only when it equals the stored `SHA1:<hex>` (never stored).
//! Every other `DAV:` property is protected (403).

use poem::{Body, Response};
use shared::domain::Mtime;
use shared::tree::PropOp;

use super::propfind::{entry_id, multistatus, read_body};
use super::xml::{self, DAV, OC, PatchStep, PropName};
use super::{Dav, DavError, DavResult, Node, Target};

/// Longest namespace or name stored.
const MAX_NAME: usize = 255;

/// A modification time as a client writes it: Unix seconds (whole or
/// fractional) or an HTTP date.
fn parse_time(value: &str) -> Option<Mtime> {
    let v = xml::text_of(value);
    let v = v.trim();
    let secs = match v.parse::<f64>() {
        Ok(s) if s.is_finite() => s.floor() as i64,
        _ => chrono::DateTime::parse_from_rfc2822(v).ok()?.timestamp(),
    };
    Mtime::parse(secs).ok()
}

/// The text of XML content, each tag made a space.
fn without_tags(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut in_tag = false;
    for c in xml.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// `PROPPATCH`.
pub async fn proppatch(dav: &Dav, req: &poem::Request, target: &Target, body: Body) -> DavResult {
    let steps = xml::parse_proppatch(&read_body(body).await?).map_err(|e| DavError::bad(e.0))?;
    let node = dav.resolve(target).await?.ok_or_else(DavError::not_found)?;
    super::locks::check_write(dav, req, target, false).await?;
    let mut results: Vec<(PropName, u16)> = Vec::new();
    let mut ops = Vec::new();
    let mut mtime = None;
    for step in steps {
        let (name, value) = match step {
            PatchStep::Set(name, value) => (name, Some(value)),
            PatchStep::Remove(name) => (name, None),
        };
        let status = if name.is(DAV, "lastmodified") || name.is(DAV, "getlastmodified") {
            match (&node, value.as_deref().map(parse_time)) {
                (Node::File(_), Some(Some(t))) => {
                    mtime = Some(t);
                    200
                }
                (Node::File(_), Some(None)) => 409,
                _ => 403,
            }
        } else if name.is(OC, "checksums") {
            let stored = match &node {
                Node::File(f) => format!("sha1:{}", f.filehash.to_ascii_lowercase()),
                _ => String::new(),
            };
            let given = value.as_deref().map(|v| {
                xml::text_of(&without_tags(v)).split_whitespace().map(str::to_ascii_lowercase).collect::<Vec<_>>()
            });
            match given {
                Some(sums) if !stored.is_empty() && sums.contains(&stored) => 200,
                _ => 409,
            }
        } else if name.ns == DAV || name.ns.len() > MAX_NAME || name.name.len() > MAX_NAME {
            // Protected live properties, or names too long to keep.
            403
        } else {
            ops.push(match &value {
                Some(v) => PropOp::Set { ns: name.ns.clone(), name: name.name.clone(), value: v.clone() },
                None => PropOp::Remove { ns: name.ns.clone(), name: name.name.clone() },
            });
            200
        };
        results.push((name, status));
    }
    let failed = results.iter().any(|(_, s)| *s != 200);
    if failed {
        for (_, s) in results.iter_mut() {
            if *s == 200 {
                *s = 424;
            }
        }
    } else {
        let tree = &dav.state.services.tree;
        if !ops.is_empty() {
            match tree.patch_props(&dav.user, entry_id(&node), &ops).await {
                Ok(()) => {}
                Err(shared::Error::Invalid { .. }) => {
                    for (_, s) in results.iter_mut() {
                        *s = 507;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let (Some(t), Node::File(f)) = (mtime, &node)
            && results.iter().all(|(_, s)| *s == 200)
        {
            tree.set_mtime(&dav.user, &f.id, t).await?;
        }
    }
    let collection = !matches!(node, Node::File(_));
    let mut out = String::from(xml::MULTISTATUS_OPEN);
    out.push_str(&xml::patch_response(&dav.href(&target.names, collection), &results));
    out.push_str(xml::MULTISTATUS_CLOSE);
    let resp: Response = multistatus(Body::from_string(out));
    Ok(resp)
}
