//! The XML of WebDAV: reading the bodies of PROPFIND (which properties), and
//! writing multistatus answers and SabreDAV-shaped errors by hand (escaped
//! text, fixed prefixes), so an answer is written as it streams.

/// The `DAV:` namespace.
pub const DAV: &str = "DAV:";
/// ownCloud's namespace (`oc:fileid`, `oc:checksums`), which Nextcloud
/// clients and rclone's `nextcloud` vendor read.
pub const OC: &str = "http://owncloud.org/ns";
/// Nextcloud's namespace.
pub const NC: &str = "http://nextcloud.org/ns";
/// SabreDAV's namespace (its error bodies).
pub const SABRE: &str = "http://sabredav.org/ns";

/// The most bytes of an XML request body pan reads.
pub const MAX_BODY: usize = 1 << 20;

/// A property's name: its namespace (empty: none) and local name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PropName {
    /// The namespace URI.
    pub ns: String,
    /// The local name.
    pub name: String,
}

impl PropName {
    /// A name in `ns`.
    pub fn new(ns: &str, name: &str) -> Self {
        PropName { ns: ns.to_owned(), name: name.to_owned() }
    }

    /// Whether this is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The element's opening tag's name and namespace declaration: a fixed
    /// prefix for the namespaces the multistatus declares, else a local
    /// declaration (`x:` for any other namespace, none for the empty one).
    fn tag(&self) -> (String, String) {
        match self.ns.as_str() {
            DAV => (format!("d:{}", self.name), String::new()),
            OC => (format!("oc:{}", self.name), String::new()),
            NC => (format!("nc:{}", self.name), String::new()),
            "" => (self.name.clone(), " xmlns=\"\"".to_owned()),
            ns => (format!("x:{}", self.name), format!(" xmlns:x=\"{}\"", escape(ns))),
        }
    }

    /// `<name/>`, empty.
    pub fn empty(&self) -> String {
        let (tag, decl) = self.tag();
        format!("<{tag}{decl}/>")
    }

    /// `<name>inner</name>`, `inner` written as given (already XML).
    pub fn with(&self, inner: &str) -> String {
        let (tag, decl) = self.tag();
        format!("<{tag}{decl}>{inner}</{tag}>")
    }
}

/// What a PROPFIND asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropFind {
    /// Every property (an empty body, or `<allprop/>`).
    All,
    /// The names of every property, without values.
    Names,
    /// These properties.
    Props(Vec<PropName>),
}

/// Why a request body is refused.
#[derive(Debug)]
pub struct BadXml(pub String);

/// Parses a PROPFIND body (RFC 4918 §14.20).
pub fn parse_propfind(body: &[u8]) -> Result<PropFind, BadXml> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PropFind::All);
    }
    let text = std::str::from_utf8(body).map_err(|_| BadXml("the body is not UTF-8".into()))?;
    let doc = parse(text)?;
    let root = doc.root_element();
    if !is(root, DAV, "propfind") {
        return Err(BadXml("the body's root is not DAV:propfind".into()));
    }
    for child in root.children().filter(roxmltree::Node::is_element) {
        if is(child, DAV, "allprop") {
            return Ok(PropFind::All);
        }
        if is(child, DAV, "propname") {
            return Ok(PropFind::Names);
        }
        if is(child, DAV, "prop") {
            let names = child.children().filter(roxmltree::Node::is_element).map(prop_name).collect();
            return Ok(PropFind::Props(names));
        }
    }
    Err(BadXml("a propfind holds allprop, propname or prop".into()))
}

/// One step of a PROPPATCH, in the body's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchStep {
    /// Set the property to this value (XML content, namespaces declared
    /// where they are used, so it reads the same anywhere).
    Set(PropName, String),
    /// Remove the property.
    Remove(PropName),
}

/// Parses a PROPPATCH body (RFC 4918 §14.19).
pub fn parse_proppatch(body: &[u8]) -> Result<Vec<PatchStep>, BadXml> {
    let text = std::str::from_utf8(body).map_err(|_| BadXml("the body is not UTF-8".into()))?;
    let doc = parse(text)?;
    let root = doc.root_element();
    if !is(root, DAV, "propertyupdate") {
        return Err(BadXml("the body's root is not DAV:propertyupdate".into()));
    }
    let mut steps = Vec::new();
    for action in root.children().filter(roxmltree::Node::is_element) {
        let set = is(action, DAV, "set");
        if !set && !is(action, DAV, "remove") {
            continue;
        }
        for prop in action.children().filter(|n| is(*n, DAV, "prop")) {
            for p in prop.children().filter(roxmltree::Node::is_element) {
                steps.push(if set {
                    PatchStep::Set(prop_name(p), inner_xml(p))
                } else {
                    PatchStep::Remove(prop_name(p))
                });
            }
        }
    }
    if steps.is_empty() {
        return Err(BadXml("a propertyupdate sets or removes at least one property".into()));
    }
    Ok(steps)
}

/// An element's content as XML that stands alone: text escaped, each
/// element declaring its own namespace (prefixes of the request are gone).
pub fn inner_xml(node: roxmltree::Node) -> String {
    let mut out = String::new();
    for child in node.children() {
        write_node(child, &mut out);
    }
    out
}

fn write_node(node: roxmltree::Node, out: &mut String) {
    if node.is_text() {
        out.push_str(&escape(node.text().unwrap_or("")));
        return;
    }
    if !node.is_element() {
        return;
    }
    let name = node.tag_name().name();
    out.push('<');
    out.push_str(name);
    out.push_str(&format!(" xmlns=\"{}\"", escape(node.tag_name().namespace().unwrap_or(""))));
    for (i, attr) in node.attributes().enumerate() {
        match attr.namespace() {
            Some(ns) => out.push_str(&format!(
                " xmlns:a{i}=\"{}\" a{i}:{}=\"{}\"",
                escape(ns),
                attr.name(),
                escape(attr.value())
            )),
            None => out.push_str(&format!(" {}=\"{}\"", attr.name(), escape(attr.value()))),
        }
    }
    out.push('>');
    for child in node.children() {
        write_node(child, out);
    }
    out.push_str(&format!("</{name}>"));
}

/// The text of an element (its value as a client typed it).
pub fn text_of(value: &str) -> String {
    value.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// A `<d:response>` of a PROPPATCH: each property with its status.
pub fn patch_response(href: &str, results: &[(PropName, u16)]) -> String {
    let mut out = format!("<d:response><d:href>{}</d:href>", escape(href));
    let mut statuses: Vec<u16> = results.iter().map(|(_, s)| *s).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        out.push_str("<d:propstat><d:prop>");
        for (p, _) in results.iter().filter(|(_, s)| *s == status) {
            out.push_str(&p.empty());
        }
        let reason = match status {
            200 => "OK",
            403 => "Forbidden",
            409 => "Conflict",
            424 => "Failed Dependency",
            507 => "Insufficient Storage",
            _ => "Error",
        };
        out.push_str(&format!("</d:prop><d:status>HTTP/1.1 {status} {reason}</d:status></d:propstat>"));
    }
    out.push_str("</d:response>");
    out
}

/// Parses a document with roxmltree's own limits (nesting, entities:
/// it expands no external entities).
pub fn parse(text: &str) -> Result<roxmltree::Document<'_>, BadXml> {
    let options = roxmltree::ParsingOptions { allow_dtd: false, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| BadXml(format!("the body is not XML: {e}")))?;
    // A prefix bound to the empty name is not well-formed in Namespaces in
    // XML 1.0 (§3, only the default namespace may be undeclared).
    for node in doc.descendants().filter(roxmltree::Node::is_element) {
        if node.namespaces().any(|ns| ns.name().is_some() && ns.uri().is_empty()) {
            return Err(BadXml("a namespace prefix is bound to the empty name".into()));
        }
    }
    Ok(doc)
}

/// Whether `node` is the element `{ns}name`.
pub fn is(node: roxmltree::Node, ns: &str, name: &str) -> bool {
    node.tag_name().name() == name && node.tag_name().namespace().unwrap_or("") == ns
}

/// An element's name as a property name.
pub fn prop_name(node: roxmltree::Node) -> PropName {
    PropName::new(node.tag_name().namespace().unwrap_or(""), node.tag_name().name())
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The start of a multistatus answer.
pub const MULTISTATUS_OPEN: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
    "<d:multistatus xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\" ",
    "xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\">"
);
/// Its end.
pub const MULTISTATUS_CLOSE: &str = "</d:multistatus>\n";

/// One `<d:response>`: `href` (already percent-encoded) and the found
/// properties (rendered) with `200`, and the missing ones with `404`.
pub fn response(href: &str, found: &[String], missing: &[String]) -> String {
    let mut out = format!("<d:response><d:href>{}</d:href>", escape(href));
    for (props, status) in [(found, "200 OK"), (missing, "404 Not Found")] {
        if props.is_empty() {
            continue;
        }
        out.push_str("<d:propstat><d:prop>");
        for p in props {
            out.push_str(p);
        }
        out.push_str(&format!("</d:prop><d:status>HTTP/1.1 {status}</d:status></d:propstat>"));
    }
    out.push_str("</d:response>");
    out
}

/// An error body as SabreDAV writes one: the exception's class, a message,
/// and RFC 4918 precondition elements (e.g. `<d:propfind-finite-depth/>`).
pub fn error_body(exception: &str, message: &str, condition: Option<&str>) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:error xmlns:d=\"DAV:\" xmlns:s=\"{SABRE}\">{}\
         <s:exception>Sabre\\DAV\\Exception\\{exception}</s:exception><s:message>{}</s:message></d:error>\n",
        condition.map(|c| format!("<d:{c}/>")).unwrap_or_default(),
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_bodies_parse_into_what_they_ask() {
        assert_eq!(parse_propfind(b"").unwrap(), PropFind::All);
        assert_eq!(
            parse_propfind(b"<?xml version=\"1.0\"?><propfind xmlns=\"DAV:\"><allprop/></propfind>").unwrap(),
            PropFind::All
        );
        assert_eq!(
            parse_propfind(b"<D:propfind xmlns:D=\"DAV:\"><D:propname/></D:propfind>").unwrap(),
            PropFind::Names
        );
        let asked = parse_propfind(
            b"<d:propfind xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\"><d:prop><d:getetag/><oc:checksums/><foo xmlns=\"\"/></d:prop></d:propfind>",
        )
        .unwrap();
        assert_eq!(
            asked,
            PropFind::Props(vec![
                PropName::new(DAV, "getetag"),
                PropName::new(OC, "checksums"),
                PropName::new("", "foo")
            ])
        );
        for bad in [
            &b"<propfind"[..],
            b"<x xmlns=\"DAV:\"/>",
            b"<!DOCTYPE x [<!ENTITY a \"b\">]><propfind xmlns=\"DAV:\"/>",
            b"<D:propfind xmlns:D=\"DAV:\"><D:prop><bar:foo xmlns:bar=\"\"/></D:prop></D:propfind>",
        ] {
            assert!(parse_propfind(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn names_in_other_namespaces_declare_them_where_they_are() {
        assert_eq!(PropName::new("http://example.com/ns", "a").empty(), "<x:a xmlns:x=\"http://example.com/ns\"/>");
        assert_eq!(PropName::new("", "a").with("1"), "<a xmlns=\"\">1</a>");
        assert_eq!(PropName::new(DAV, "getetag").with("&quot;x&quot;"), "<d:getetag>&quot;x&quot;</d:getetag>");
    }
}
