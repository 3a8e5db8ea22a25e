//! The architecture, checked on the source: `shared` is filed by layer with
//! no import circles and no import from a layer above, and the front doors
//! (`api/`, `worker/`) reach no store. (The compiler enforces the last one
//! too: the use cases hold their roles in `pub(crate)` fields.) And every
//! end-to-end test has a doc comment saying what it proves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = e.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The module a file of `shared/src` is: `stores/meta/sql.rs` → `stores::meta::sql`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts == ["lib"] { String::new() } else { parts.join("::") }
}

/// The file's code without comments (doc links name modules too).
fn code(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module of `shared`, and the modules each one names (through
/// `crate::…` or `super::…`), resolved to the longest known module. Edges
/// between a module and its own ancestors or descendants (re-exports, a
/// child using its parent's items) are the module tree, not imports.
fn shared_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("shared/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let resolve = |path: &[&str]| -> Option<String> {
        (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| modules.contains(m))
    };
    let related = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
    let path_re = |text: &str, start: usize| -> Vec<String> {
        text[start..]
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut graph = BTreeMap::new();
    for f in &files {
        let me = module_of(&src, f);
        let text = code(f);
        let mut deps = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let segs = path_re(&text, i + "crate::".len());
            let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
            if let Some(m) = resolve(&segs) {
                deps.insert(m);
            }
        }
        for (i, _) in text.match_indices("super::") {
            if text[..i].ends_with("super::") || text[..i].ends_with(':') {
                continue;
            }
            let segs = path_re(&text, i);
            let mut base: Vec<&str> = if me.is_empty() { vec![] } else { me.split("::").collect() };
            let mut rest = segs.iter().map(String::as_str).peekable();
            while rest.peek() == Some(&"super") {
                rest.next();
                base.pop();
            }
            base.extend(rest);
            if let Some(m) = resolve(&base) {
                deps.insert(m);
            }
        }
        deps.retain(|d: &String| !related(&me, d));
        graph.insert(me, deps);
    }
    graph
}

/// Import circles: strongly connected components of more than one module.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Reachability by depth-first search is plenty for a hundred modules.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    for m in graph.keys() {
        let scc: Vec<String> =
            graph.keys().filter(|o| *o == m || (reaches[m].contains(*o) && reaches[*o].contains(m))).cloned().collect();
        if scc.len() > 1 && !found.contains(&scc) {
            found.push(scc);
        }
    }
    found
}

/// The layer of a module of `shared`, lowest first, as `shared/src/lib.rs` lists them.
fn layer(module: &str) -> usize {
    match module.split("::").next().unwrap_or("") {
        "runtime" | "domain" => 0,
        "stores" => 1,
        "accounts" => 2,
        "tree" => 3,
        "files" => 4,
        "upload" | "shares" => 5,
        "" => 6,
        other => panic!("module {other} is in no layer: add it to shared/src/lib.rs and to this test"),
    }
}

/// No two modules of `shared` import each other, directly or round a circle.
#[test]
fn shared_has_no_import_circles() {
    let found = circles(&shared_graph());
    assert!(found.is_empty(), "import circles in shared: {found:?}");
}

/// A module imports only from its own layer or those below.
#[test]
fn no_module_of_shared_imports_from_a_layer_above() {
    let mut upward = Vec::new();
    for (module, deps) in shared_graph() {
        for d in deps {
            if layer(&d) > layer(&module) {
                upward.push(format!("{module} → {d}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports from a layer above: {upward:?}");
}

/// The root of `shared/src` holds at most eight modules besides `lib.rs`:
/// the rest is filed in their folders.
#[test]
fn shared_keeps_at_most_eight_files_at_its_root() {
    let root: Vec<String> = std::fs::read_dir(workspace().join("shared/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "lib.rs")
        .collect();
    assert!(root.len() <= 8, "{} files at the root of shared/src: {root:?}", root.len());
}

/// The front doors name no store: they call use cases. Allowed: the start-up
/// error (`OpenError`) and the worker's job queue, its front door.
#[test]
fn front_doors_reach_no_store() {
    let mut found = Vec::new();
    for dir in ["api/src", "worker/src"] {
        let mut files = Vec::new();
        rust_files(&workspace().join(dir), &mut files);
        for f in files {
            let text = code(&f);
            for (i, _) in text.match_indices("shared::stores::") {
                let rest = &text[i + "shared::stores::".len()..];
                if !(rest.starts_with("OpenError") || rest.starts_with("queue::")) {
                    found.push(format!("{}: {}", f.display(), rest.lines().next().unwrap_or("")));
                }
            }
        }
    }
    assert!(found.is_empty(), "front doors naming a store: {found:?}");
}

/// The end-to-end tests of `file` (`#[test]` and `#[tokio::test]` functions, `both!` /
/// `on_both!` entries) with whether a doc comment says what each proves.
fn e2e_tests(file: &Path) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("#[tokio::test") || *line == "#[test]" {
            let above = lines[..i].iter().rev().find(|l| !l.starts_with("#["));
            let name = lines[i..].iter().find_map(|l| l.split("fn ").nth(1)).unwrap_or("?");
            let name = name.split(['(', '<']).next().unwrap_or("?").to_owned();
            out.push((name, above.is_some_and(|l| l.starts_with("///"))));
        } else if let Some(rest) = line.strip_prefix("both!(").or_else(|| line.strip_prefix("on_both!(")) {
            // The entry's first lines: its doc comment, then its name.
            let entry = std::iter::once(rest.trim()).chain(lines[i + 1..].iter().copied()).filter(|l| !l.is_empty());
            let mut documented = false;
            let mut name = String::from("?");
            for l in entry {
                if l.starts_with("///") {
                    documented = true;
                } else {
                    name = l.split([',', ' ']).next().unwrap_or("?").to_owned();
                    break;
                }
            }
            out.push((name, documented));
        }
    }
    out
}

/// Every end-to-end test has a doc comment saying what it proves.
#[test]
fn every_end_to_end_test_says_what_it_proves() {
    let mut files = Vec::new();
    rust_files(&workspace().join("tests/e2e"), &mut files);
    let (mut undocumented, mut seen) = (Vec::new(), 0);
    for file in &files {
        let short = file.file_name().unwrap().to_string_lossy().into_owned();
        for (name, documented) in e2e_tests(file) {
            seen += 1;
            if !documented {
                undocumented.push(format!("{short}: {name}"));
            }
        }
    }
    assert!(seen > 100, "found only {seen} end-to-end tests: the scan is broken");
    assert!(
        undocumented.is_empty(),
        "tests without a doc comment saying what they prove:\n{}",
        undocumented.join("\n")
    );
}

/// The `pan` client speaks to the server through the generated client
/// only: no `json!` body, no route spelled by hand and no request built by
/// hand in `client/src`, except `single_upload` in `lib.rs` (the multipart
/// `POST /file/upload`, which progenitor cannot generate; `http.rs` lists it).
#[test]
fn the_client_calls_every_route_through_the_generated_client() {
    let mut files = Vec::new();
    rust_files(&workspace().join("client/src"), &mut files);
    let mut found = Vec::new();
    for f in files {
        let text = code(&f);
        let rel = f.strip_prefix(workspace()).unwrap().display().to_string();
        for (n, line) in text.lines().enumerate() {
            let by_hand =
                ["json!", "\"/file/", "\"/folder/", "\"/usr/", "\"/share/", "\"/public/", "Method::", ".request("]
                    .iter()
                    .any(|p| line.contains(p));
            let allowed = rel == "client/src/lib.rs" && line.contains("/file/upload");
            if by_hand && !allowed {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "requests built by hand in the client:\n{}", found.join("\n"));
}
