//! The domain crate's layout, checked: its top-level modules (one concept
//! each: `compliance`, `consent`, `sending`, ...) depend on each other
//! without a cycle, so each can be read, and changed, knowing only what it
//! uses; and no source file grows past what a newcomer can read.
//!
//! The graph is read from the source: every `crate::module` path outside
//! comments and `#[cfg(test)]` modules, `use crate::{a, b::c}` groups
//! included. `Core` (re-exported at the root) is the composition root that
//! every service is given; it is the one edge left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`sending/outbound.rs` -> `sending`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The source without comments and without `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            if let Some(next) = lines.peek() {
                if next.trim_start().starts_with("mod ") && next.trim_end().ends_with('{') {
                    // Skip to the module's closing brace (balanced).
                    let mut depth = 0i32;
                    for l in lines.by_ref() {
                        depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                        if depth <= 0 && l.contains('}') {
                            break;
                        }
                    }
                    continue;
                }
            }
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level modules one file's code names through `crate::`.
fn uses_of(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i + "crate::".len();
        at = start;
        if i > 0 && (bytes[at - "crate::".len() - 1].is_ascii_alphanumeric()) {
            continue; // `$crate::`, `heimdall_crate::`...
        }
        if code[start..].starts_with('{') {
            // A group: its top-level items, each `name` or `name::...`.
            let mut depth = 0;
            let mut item = String::new();
            for c in code[start..].chars() {
                match c {
                    '{' => {
                        depth += 1;
                        if depth == 1 {
                            continue;
                        }
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        record(&item, modules, &mut used);
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth >= 1 {
                    item.push(c);
                }
            }
            record(&item, modules, &mut used);
        } else {
            let name: String = code[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            record(&name, modules, &mut used);
        }
    }
    used
}

fn record(item: &str, modules: &BTreeSet<String>, used: &mut BTreeSet<String>) {
    let name: String = item
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if modules.contains(&name) {
        used.insert(name);
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|m| m != "lib")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" || is_test_module(file) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        let entry = graph.entry(module.clone()).or_default();
        for used in uses_of(&code_of(&text), &modules) {
            if used != module {
                entry.insert(used);
            }
        }
    }
    graph
}

/// A unit-test module in a file of its own (`x/tests.rs`, `x/tests/...`):
/// compiled only for tests, like an inline `#[cfg(test)] mod tests`.
fn is_test_module(file: &Path) -> bool {
    file.strip_prefix(src())
        .expect("under src")
        .components()
        .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs")
}

/// A cycle through `from`, if there is one (depth-first).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        target: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(node).into_iter().flatten() {
            if next == target {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, target, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    let mut seen = BTreeSet::new();
    walk(graph, from, from, &mut path, &mut seen).then_some(path)
}

#[test]
fn the_reader_sees_groups_and_skips_comments_and_tests() {
    let modules: BTreeSet<String> = ["consent", "sending", "channels", "inbound"]
        .into_iter()
        .map(String::from)
        .collect();
    let code = code_of(
        "use crate::{consent, sending::outbound::{self, accept}, Core};\n\
         // crate::inbound is only mentioned\n\
         let x = crate::channels::twilio::X; // and crate::inbound here\n\
         #[cfg(test)]\nmod tests {\n    use crate::inbound;\n    fn f() { if true { } }\n}\n",
    );
    let used = uses_of(&code, &modules);
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["channels", "consent", "sending"]
    );
    // A cycle of three is found.
    let g: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(x, y)| (x.to_string(), BTreeSet::from([y.to_string()])))
        .collect();
    assert_eq!(cycle_from(&g, "a").expect("a cycle"), ["a", "b", "c", "a"]);
}

#[test]
fn the_top_level_modules_have_no_import_cycle() {
    let graph = graph();
    assert!(
        graph.len() >= 20,
        "the layout was not read: {:?}",
        graph.keys()
    );
    // The send path depends on the rules, never the other way round.
    assert!(graph["sending"].contains("compliance"));
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_from(&graph, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between the domain's modules (break each by moving the shared \
         piece down to the module both use):\n{}",
        cycles.join("\n")
    );
}

/// Files still longer than a newcomer can read in one go, each with the
/// length it may not grow past. Splitting one removes its line; a new
/// file over the limit fails.
const LONG_FILES: &[(&str, usize)] = &[];
const LIMIT: usize = 800;

#[test]
fn no_file_grows_past_what_a_newcomer_can_read() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut problems = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        let cap = LONG_FILES
            .iter()
            .find(|(f, _)| *f == rel)
            .map_or(LIMIT, |(_, cap)| *cap);
        if lines > cap {
            problems.push(format!("{rel}: {lines} lines (at most {cap})"));
        }
    }
    // The list is kept true: a file split below the limit leaves it.
    for (file, _) in LONG_FILES {
        match std::fs::read_to_string(src().join(file)) {
            Ok(text) if text.lines().count() > LIMIT => {}
            Ok(_) => problems.push(format!("{file} is no longer long: take it off LONG_FILES")),
            Err(_) => problems.push(format!("{file} is gone: take it off LONG_FILES")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
