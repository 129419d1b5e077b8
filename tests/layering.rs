//! The crate's layering, checked: every `crate::…` / `super::…` path in `src/**/*.rs` (in `use`
//! items and anywhere in code, `#[cfg(test)]` modules included; comments, doc links and string
//! literals are skipped) is resolved to the module it names, and
//!
//! 1. a module may import only from modules on a **strictly lower** layer of [`LAYERS`]:
//!    nothing upward, nothing sideways (`source` and `sink` never import each other);
//! 2. a module listed in [`ONLY`] may import only the modules listed there for it;
//! 3. within one folder, the files (sibling modules) do not import each other in a cycle.
//!
//! `src/lib.rs` (which declares the modules) and `src/main.rs` (the binary, on top of
//! everything, which reaches the library as `sluicegate::`) are not checked. The layer table
//! here and the "Layout" section of `src/lib.rs` say the same thing; change both together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of every top-level module; a module may import only from lower numbers.
const LAYERS: &[(&str, u8)] = &[
    // Foundations: import nothing from the crate.
    ("avro", 0),
    ("clock", 0),
    ("config", 0),
    // The event, the component-type registry and the counters.
    ("component", 1),
    ("event", 1),
    ("metrics", 1),
    // Pure codecs of Flume's Avro RPC.
    ("wire", 2),
    // Transport and storage.
    ("channel", 3),
    ("rpc", 3),
    // Components.
    ("pipeline", 4),
    ("sink", 4),
    ("source", 4),
    // Assembly.
    ("agent", 5),
    ("tools", 5),
];

/// Modules that may use less than everything below them.
const ONLY: &[(&str, &[&str])] = &[(
    "pipeline",
    &["channel", "event", "config", "metrics", "clock"],
)];

/// Items `src/lib.rs` re-exports at the crate root, and the module they come from.
const ROOT_ITEMS: &[(&str, &str)] = &[("Event", "event")];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

// ------------------------------------------------------------------------------- scanner

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Splits Rust source into identifiers and punctuation with their 1-based lines, dropping
/// whitespace, comments (doc comments included), string/char literals and numbers.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips a quoted literal starting at the opening quote `c[i]`; returns the index after it.
    let skip_quoted = |mut i: usize, line: &mut usize| -> usize {
        i += 1;
        while i < c.len() && c[i] != '"' {
            if c[i] == '\\' {
                i += 1;
            }
            if i < c.len() && c[i] == '\n' {
                *line += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_quoted(i, &mut line);
        } else if (ch == 'r' || ch == 'b') && raw_string_start(&c, i).is_some() {
            // r"…", r#"…"#, br"…", br#"…"#
            let (hashes, quote) = raw_string_start(&c, i).unwrap_or_default();
            i = quote + 1;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (0..hashes).all(|h| c.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                if c[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
        } else if ch == 'b' && c.get(i + 1) == Some(&'"') {
            i = skip_quoted(i + 1, &mut line);
        } else if ch == '\'' || (ch == 'b' && c.get(i + 1) == Some(&'\'')) {
            let q = if ch == 'b' { i + 1 } else { i };
            if c.get(q + 1) == Some(&'\\') {
                // Escaped char literal: up to the closing quote.
                let mut j = q + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if c.get(q + 2) == Some(&'\'') {
                i = q + 3; // 'x'
            } else {
                i = q + 1; // a lifetime or label: the name follows as an identifier
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                if c[i] == '.' && !c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// For a raw (byte) string starting at `i`: its number of `#`s and the index of its `"`.
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if c[j] == 'b' {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    // Not the tail of an identifier such as `for` or `br`.
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some((hashes, j))
}

/// One path into the crate found in a file, resolved from the crate root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    line: usize,
    path: Vec<String>,
}

/// Every `crate::…` and `super::…` path in `src` (a file whose module path is `module`, e.g.
/// `["channel", "file", "segment"]`), `use` trees expanded, resolved to absolute paths.
fn scan(src: &str, module: &[String]) -> Vec<Import> {
    let toks = lex(src);
    let mut out = Vec::new();
    // Inline modules (`mod tests { … }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
                continue;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
                continue;
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some((Tok::Ident(name), _)), Some((Tok::Punct('{'), _))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        let starts_path = matches!(&toks[i].0, Tok::Ident(w) if w == "crate" || w == "super")
            && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path)
            && !matches!(
                i.checked_sub(1).map(|p| &toks[p].0),
                Some(Tok::Path) | Some(Tok::Punct('$'))
            );
        if !starts_path {
            i += 1;
            continue;
        }
        let line = toks[i].1;
        let mut here: Vec<String> = module.to_vec();
        here.extend(inline.iter().map(|(n, _)| n.clone()));
        let mut base: Option<Vec<String>> = None;
        if matches!(&toks[i].0, Tok::Ident(w) if w == "crate") {
            base = Some(Vec::new());
            i += 2;
        } else {
            let mut b = here;
            while matches!(&toks[i].0, Tok::Ident(w) if w == "super")
                && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path)
            {
                if b.pop().is_none() {
                    break;
                }
                base = Some(b.clone());
                i += 2;
            }
        }
        let Some(base) = base else {
            i += 1;
            continue;
        };
        let mut paths = Vec::new();
        i = use_tree(&toks, i, base, &mut paths);
        out.extend(paths.into_iter().map(|path| Import { line, path }));
    }
    out
}

/// Reads the rest of a path (or `use` tree) at `i` below `prefix`; pushes every full path.
/// Returns the index after it.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix;
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(w)) if w == "self" => {
                i += 1;
                break;
            }
            Some(Tok::Ident(w)) => {
                path.push(w.clone());
                i += 1;
                if toks.get(i).map(|t| &t.0) == Some(&Tok::Path) {
                    i += 1;
                    continue;
                }
                break;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        None => return i,
                        Some(Tok::Punct('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        _ => {
                            let before = i;
                            i = use_tree(toks, i, path.clone(), out);
                            if i == before {
                                i += 1; // `*` or anything else: skip
                            }
                        }
                    }
                }
            }
            _ => break, // `*`, or a path ending in `::<…>` turbofish
        }
    }
    out.push(path);
    i
}

// ------------------------------------------------------------------------------- the crate

/// A source file and its module path (`src/channel/file/mod.rs` → `["channel", "file"]`).
struct SourceFile {
    rel: PathBuf,
    module: Vec<String>,
    text: String,
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&root).unwrap().to_path_buf();
                let mut module: Vec<String> = rel
                    .iter()
                    .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                    .collect();
                if module.last().is_some_and(|m| m == "mod") {
                    module.pop();
                }
                let text = std::fs::read_to_string(&path).unwrap();
                files.push(SourceFile {
                    rel: Path::new("src").join(rel),
                    module,
                    text,
                });
            }
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// The layering violations of the crate, one message per import, and how many paths were seen.
fn check(files: &[SourceFile]) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut seen = 0;
    // Sibling-file edges: parent folder module → (file → files it imports).
    let mut siblings: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let known: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    for f in files {
        let top = match f.module.first().map(String::as_str) {
            None | Some("lib") | Some("main") => continue,
            Some(t) => t,
        };
        let Some(own) = layer(top) else {
            problems.push(format!(
                "{}: module {top} has no layer: add it to LAYERS in tests/layering.rs and to the \
                 Layout section of src/lib.rs",
                f.rel.display()
            ));
            continue;
        };
        for imp in scan(&f.text, &f.module) {
            seen += 1;
            let Some(first) = imp.path.first() else {
                continue;
            };
            let target = ROOT_ITEMS
                .iter()
                .find(|(item, _)| item == first)
                .map_or(first.as_str(), |(_, m)| m);
            if target != top {
                let at = format!("{}:{}", f.rel.display(), imp.line);
                match layer(target) {
                    None => problems.push(format!(
                        "{at}: module {top} imports crate::{target}, which has no layer"
                    )),
                    Some(l) if l >= own => problems.push(format!(
                        "{at}: module {top} (layer {own}) imports {target} (layer {l}){}",
                        if l == own { ": same layer" } else { ": upward" }
                    )),
                    Some(_) => {
                        if let Some((_, allowed)) = ONLY.iter().find(|(m, _)| *m == top) {
                            if !allowed.contains(&target) {
                                problems.push(format!(
                                    "{at}: module {top} imports {target}; it may import only {}",
                                    allowed.join(", ")
                                ));
                            }
                        }
                    }
                }
            }
            // A sibling file of the same folder?
            let n = f.module.len();
            if imp.path.len() >= n && imp.path[..n - 1] == f.module[..n - 1] {
                let other = &imp.path[..n];
                if other != f.module.as_slice() && known.contains(other) {
                    siblings
                        .entry(f.module[..n - 1].to_vec())
                        .or_default()
                        .entry(f.module[n - 1].clone())
                        .or_default()
                        .insert(other[n - 1].clone());
                }
            }
        }
    }
    // A `use` tree names one module several times (`crate::a::{b, c}`): report it once.
    let mut reported = BTreeSet::new();
    problems.retain(|p| reported.insert(p.clone()));
    for (folder, graph) in &siblings {
        let dir = if folder.is_empty() {
            "src".to_string()
        } else {
            format!("src/{}", folder.join("/"))
        };
        if FILE_CYCLES_TOLERATED.iter().any(|(d, _)| *d == dir) {
            continue;
        }
        for cycle in cycles(graph) {
            problems.push(format!(
                "{dir}: files import each other in a cycle: {}",
                cycle.join(" -> ")
            ));
        }
    }
    (problems, seen)
}

/// Folders whose files may still import each other in a cycle, each with why. Layer rules
/// (1 and 2) apply to them in full; only the sibling-file rule (3) is waived, and only here.
const FILE_CYCLES_TOLERATED: &[(&str, &str)] = &[(
    "src/pipeline",
    "the DStream API (context, stream, fused) and its driver are one unit split across files \
     for size: streams hold the context's graph and the context builds streams; untangling them \
     into a lower `graph` file is a follow-up",
)];

/// Each elementary cycle of `graph` once, as `a -> b -> a` (found from its smallest node).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        let last = path.last().cloned().unwrap_or_default();
        for next in graph.get(&last).into_iter().flatten() {
            if next == start {
                let mut c = path.clone();
                c.push(start.to_string());
                out.push(c);
            } else if next.as_str() > start && !path.contains(next) {
                path.push(next.clone());
                walk(graph, start, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    for start in graph.keys() {
        walk(graph, start, &mut vec![start.clone()], &mut out);
    }
    out
}

// ------------------------------------------------------------------------------- tests

#[test]
fn imports_only_point_down() {
    let files = source_files();
    let (problems, seen) = check(&files);
    // Guards against a check that passes by finding nothing (a moved `src`, a broken lexer).
    assert!(files.len() > 60, "only {} source files found", files.len());
    assert!(seen > 300, "only {seen} crate paths found in src/");
    assert!(
        problems.is_empty(),
        "layering violations (see the Layout section of src/lib.rs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_layer_names_a_module_that_exists() {
    let files = source_files();
    let tops: BTreeSet<&str> = files
        .iter()
        .filter_map(|f| f.module.first().map(String::as_str))
        .collect();
    for (m, _) in LAYERS {
        assert!(
            tops.contains(m),
            "LAYERS names {m}, but src/ has no such module"
        );
    }
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for (m, _) in LAYERS {
        assert!(
            lib.contains(&format!("[`{m}`]")),
            "the Layout section of src/lib.rs does not mention {m}"
        );
    }
}

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

#[test]
fn the_scanner_finds_paths_in_code_and_skips_comments_and_strings() {
    let src = r####"
use crate::a::{b, c::{d, self}, *};
// use crate::zz::x;
/// see [`crate::zz`] and crate::zz::y
/* crate::zz /* nested crate::zz */ still comment */
fn f<'a>(x: &'a str) -> char {
    let _ = "crate::zz::in_string \" crate::zz";
    let _ = r#"crate::zz::raw "quoted" "#;
    let _ = b'{';
    let _ = '}';
    let _ = crate::e::F;
    let _ = 1.5e3;
    crate::Event::new();
    $crate::zz::macro_path;
    pub(crate) fn g() {}
    super::sib::H
}
mod tests {
    use super::*;
    use super::super::k::{L, m::N};
}
use super::after_tests;
"####;
    let found: Vec<(usize, Vec<String>)> = scan(src, &v(&["top", "file"]))
        .into_iter()
        .map(|i| (i.line, i.path))
        .collect();
    assert_eq!(
        found,
        vec![
            (2, v(&["a", "b"])),
            (2, v(&["a", "c", "d"])),
            (2, v(&["a", "c"])),
            (2, v(&["a"])),
            (11, v(&["e", "F"])),
            (13, v(&["Event", "new"])),
            (16, v(&["top", "sib", "H"])),
            (19, v(&["top", "file"])),
            (20, v(&["top", "k", "L"])),
            (20, v(&["top", "k", "m", "N"])),
            (22, v(&["top", "after_tests"])),
        ]
    );
}

#[test]
fn the_check_reports_upward_and_sideways_imports_and_file_cycles() {
    let file = |rel: &str, module: &[&str], text: &str| SourceFile {
        rel: PathBuf::from(rel),
        module: v(module),
        text: text.to_string(),
    };
    let files = vec![
        file(
            "src/wire/mod.rs",
            &["wire"],
            "use crate::rpc::Server;\nuse crate::event::Event;",
        ),
        file(
            "src/source/x.rs",
            &["source", "x"],
            "fn f() { crate::sink::null::g(); }",
        ),
        file(
            "src/pipeline/mod.rs",
            &["pipeline"],
            "use crate::wire::Frame;\nuse crate::channel::C;",
        ),
        file(
            "src/channel/file/a.rs",
            &["channel", "file", "a"],
            "use super::b::B;",
        ),
        file(
            "src/channel/file/b.rs",
            &["channel", "file", "b"],
            "use crate::channel::file::a::A;",
        ),
        file("src/channel/file/mod.rs", &["channel", "file"], "use a::A;"),
        file(
            "src/agent/x.rs",
            &["agent", "x"],
            "use crate::Event;\nuse crate::nowhere::Y;",
        ),
    ];
    let (problems, seen) = check(&files);
    assert_eq!(seen, 9);
    assert_eq!(
        problems,
        vec![
            "src/wire/mod.rs:1: module wire (layer 2) imports rpc (layer 3): upward",
            "src/source/x.rs:1: module source (layer 4) imports sink (layer 4): same layer",
            "src/pipeline/mod.rs:1: module pipeline imports wire; it may import only channel, \
             event, config, metrics, clock",
            "src/agent/x.rs:2: module agent imports crate::nowhere, which has no layer",
            "src/channel/file: files import each other in a cycle: a -> b -> a",
        ]
    );
}
