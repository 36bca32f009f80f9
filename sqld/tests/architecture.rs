//! Dependencies between sqld's modules point one way: no module reaches,
//! through `crate::` or `super::` paths, a module that reaches it back. A
//! reader can then follow "run a statement" without reading replication,
//! and replication's two sides without each other. (A module and the
//! modules it declares are one unit here: a parent naming its children is
//! structure, not a dependency.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`replication::link`) -> its source.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut name: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if name.last().is_some_and(|n| n == "mod") {
                name.pop();
            }
            let name = name.join("::");
            if name == "lib" || name == "main" {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            // Unit tests may reach anywhere.
            let source = match source.find("#[cfg(test)]\nmod tests") {
                Some(i) => source[..i].to_owned(),
                None => source,
            };
            out.insert(name, source);
        }
    }
    out
}

/// The paths a source names after `prefix` (`crate::` or `super::`).
fn paths_after<'a>(source: &'a str, prefix: &str) -> Vec<&'a str> {
    source
        .match_indices(prefix)
        .map(|(i, _)| {
            let rest = &source[i + prefix.len()..];
            let end = rest
                .find(|c: char| {
                    !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
                })
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches(':')
        })
        .collect()
}

/// The longest module named by `path`, if any.
fn module_of(path: &str, modules: &BTreeMap<String, String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

fn is_within(module: &str, ancestor: &str) -> bool {
    module == ancestor || module.starts_with(&format!("{ancestor}::"))
}

fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut graph = BTreeMap::new();
    for (name, source) in &modules {
        let parent = name.rsplit_once("::").map(|(p, _)| p.to_owned());
        let mut deps = BTreeSet::new();
        let mut named: Vec<String> = paths_after(source, "crate::")
            .into_iter()
            .map(str::to_owned)
            .collect();
        for path in paths_after(source, "super::") {
            named.push(match &parent {
                Some(p) => format!("{p}::{path}"),
                None => path.to_owned(),
            });
        }
        for path in named {
            if let Some(target) = module_of(&path, &modules) {
                let related = is_within(name, &target) || is_within(&target, name);
                if !related {
                    deps.insert(target);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    start: &str,
    graph: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|m| m == start) {
        let mut cycle = path[i..].to_vec();
        cycle.push(start.to_owned());
        return Some(cycle);
    }
    if done.contains(start) {
        return None;
    }
    path.push(start.to_owned());
    for next in &graph[start] {
        if let Some(cycle) = cycle_from(next, graph, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(start.to_owned());
    None
}

#[test]
fn no_module_depends_on_a_module_that_depends_on_it() {
    let graph = dependency_graph();
    assert!(
        graph.contains_key("replication::link"),
        "modules were found"
    );
    for (module, deps) in graph.iter().filter(|(m, _)| is_within(m, "scheduler")) {
        assert!(
            deps.iter().all(|d| !is_within(d, "replication")),
            "the scheduler runs statements without knowing replication: {module} uses {deps:?}"
        );
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    let cycle = cycle_from("a", &graph, &mut Vec::new(), &mut BTreeSet::new());
    assert_eq!(cycle.unwrap(), ["a", "b", "c", "a"]);
}
