//! The layers hold: no top-level module of the crate imports, directly or through
//! others, a module that imports it back. Read from the source text itself (every
//! `crate::` path outside comments, string literals and `#[cfg(test)]` modules), so
//! a new back edge fails here, with the files that make it, before it is merged.
//! ARCHITECTURE.md ("Layers") draws the order this keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules `src/lib.rs` declares.
fn modules(src: &Path) -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_string)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` with comments and the contents of string and char literals blanked out
/// (so that neither a doc link nor a message that names `crate::x` counts).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(b.len(), |n| i + n);
            i = end;
        } else if rest.starts_with("/*") {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < b.len() {
                if text[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if text[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(rest) {
            // r"…", r#"…"#, br"…": up to the quote followed by as many hashes.
            let open = rest.find('"').unwrap() + 1;
            let close = format!("\"{}", "#".repeat(hashes));
            let end = rest[open..]
                .find(&close)
                .map_or(rest.len(), |n| open + n + close.len());
            out.push_str("\"\"");
            i += end;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && char_literal_len(rest).is_some() {
            i += char_literal_len(rest).unwrap();
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The number of `#`s of a raw string literal starting `s`, if one does.
fn raw_string_start(s: &str) -> Option<usize> {
    let s = s.strip_prefix('b').unwrap_or(s);
    let s = s.strip_prefix('r')?;
    let hashes = s.bytes().take_while(|&c| c == b'#').count();
    (s.as_bytes().get(hashes) == Some(&b'"')).then_some(hashes)
}

/// The length of a char literal starting `s` (`'a'`, `'\n'`, `'\u{1F600}'`), or
/// `None` when the quote starts a lifetime.
fn char_literal_len(s: &str) -> Option<usize> {
    let body = &s[1..];
    if let Some(esc) = body.strip_prefix('\\') {
        let end = esc.find('\'')?;
        return (end <= 10).then_some(1 + 1 + end + 1);
    }
    let c = body.chars().next()?;
    (body[c.len_utf8()..].starts_with('\'')).then_some(1 + c.len_utf8() + 1)
}

/// `code` without the `#[cfg(test)]` modules' bodies.
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find(['{', ';']) else {
            rest = "";
            break;
        };
        let is_mod_block = after[..open].contains("mod ") && after.as_bytes()[open] == b'{';
        if !is_mod_block {
            out.push_str(&after[..open + 1]);
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level modules `code` names through `crate::` paths (`crate::a::b`,
/// `crate::{a, b::c}`).
fn references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `skillsd_crate::` or the like
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if c == ',' && depth == 1 {
                    found.insert(first_segment(&item));
                    item.clear();
                } else {
                    item.push(c);
                }
            }
            found.insert(first_segment(&item));
        } else {
            found.insert(first_segment(rest));
        }
    }
    found
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Each module's imports of the others, with the files that make each edge.
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mods = modules(src);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if !mods.contains(&top) {
            continue; // lib.rs, main.rs, build scripts
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for target in references(&without_tests(&code_only(&text))) {
            if target != top && mods.contains(&target) {
                edges
                    .entry(top.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    for m in mods {
        edges.entry(m).or_default();
    }
    edges
}

/// The strongly connected components with more than one module (Tarjan's).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges[v].keys() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let edges = graph(&src());
    let found = cycles(&edges);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("cycle among {}:\n", component.join(", ")));
        for from in component {
            for (to, files) in &edges[from] {
                if component.contains(to) {
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    report.push_str(&format!("  {from} -> {to}  ({})\n", files.join(", ")));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the layers no longer hold; cut one of these imports (ARCHITECTURE.md, \"Layers\"):\n{report}"
    );
}

#[test]
fn config_is_imported_only_by_the_server() {
    // Settings flow down: each module owns its settings type and defaults; only
    // `server` (and the binary) read the configuration and hand them out.
    let edges = graph(&src());
    let importers: Vec<&str> = edges
        .iter()
        .filter(|(_, to)| to.contains_key("config"))
        .map(|(from, _)| from.as_str())
        .collect();
    assert_eq!(
        importers,
        ["server"],
        "{:#?}",
        edges
            .iter()
            .filter(|(_, to)| to.contains_key("config"))
            .map(|(f, to)| (f, &to["config"]))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_reader_sees_real_imports_and_only_them() {
    // The parts this test relies on, on text it must (not) count.
    let text = r##"
        use crate::{alpha, beta::x as y, gamma::{self, z}};
        // crate::delta in a comment
        /* crate::epsilon /* nested */ crate::zeta */
        let s = "crate::eta"; let r = r#"crate::theta"#; let c = '"'; let l: &'a str = x;
        fn f() { crate::iota::call(); }
        #[cfg(test)]
        mod tests { use crate::kappa; fn g() { if x { crate::lambda::h() } } }
        fn after() { crate::mu::m(); }
    "##;
    let found = references(&without_tests(&code_only(text)));
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["alpha", "beta", "gamma", "iota", "mu"]);
}

#[test]
fn a_back_edge_is_found_with_the_file_that_makes_it() {
    let dir = std::env::temp_dir().join(format!("skillsd-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::b::X;\n").unwrap();
    std::fs::write(dir.join("b/mod.rs"), "pub struct X;\nmod inner;\n").unwrap();
    std::fs::write(dir.join("b/inner.rs"), "fn f() { crate::a::g() }\n").unwrap();
    std::fs::write(dir.join("c.rs"), "use crate::a;\n").unwrap();
    let edges = graph(&dir);
    assert_eq!(cycles(&edges), [vec!["a".to_string(), "b".to_string()]]);
    assert!(edges["b"]["a"].contains("b/inner.rs"));
    std::fs::write(dir.join("b/inner.rs"), "fn f() {}\n").unwrap();
    assert!(cycles(&graph(&dir)).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
