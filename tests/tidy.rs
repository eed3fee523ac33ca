//! Tidy checks in the manner of rust-analyzer's: the documents that
//! describe the code must agree with it, and this test fails when they
//! drift. `ARCHITECTURE.md` lists every crate, its cairn dependencies and
//! its source files; the relay's dependency closure excludes
//! `cairn-crypto`; every file or path the documents name exists or is
//! named by the code. (The error catalogue and `spec/errors.md` are kept
//! equal by `cairn-wire`'s own test.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The crates under `crates/`, by name.
fn crates() -> BTreeSet<String> {
    std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| root().join("crates").join(name).join("Cargo.toml").exists())
        .collect()
}

/// Every `backticked` token of `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The section of `ARCHITECTURE.md` about `crate`: from its heading to the
/// next heading.
fn section<'a>(architecture: &'a str, krate: &str) -> &'a str {
    let heading = format!("### `crates/{krate}`");
    let start = architecture
        .find(&heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section {heading}"));
    let rest = &architecture[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .into_iter()
        .chain(rest.find("\n### "))
        .min();
    &rest[..end.unwrap_or(rest.len())]
}

/// The cairn crates `krate` depends on (normal dependencies).
fn cairn_dependencies(krate: &str) -> BTreeSet<String> {
    let manifest: toml::Table = read(format!("crates/{krate}/Cargo.toml")).parse().unwrap();
    manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|deps| {
            deps.keys()
                .filter(|name| name.starts_with("cairn-"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The dependency table of `ARCHITECTURE.md`: crate → what it depends on.
fn documented_dependencies(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    architecture
        .lines()
        .filter(|line| line.starts_with("| `cairn-"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let krate = cells[1].trim_matches('`').to_owned();
            let deps = backticked(cells[2])
                .into_iter()
                .map(str::to_owned)
                .collect();
            (krate, deps)
        })
        .collect()
}

#[test]
fn architecture_lists_every_crate_and_its_dependencies() {
    let architecture = read("ARCHITECTURE.md");
    let documented = documented_dependencies(&architecture);
    let crates = crates();
    assert_eq!(
        documented.keys().cloned().collect::<BTreeSet<_>>(),
        crates,
        "the dependency table of ARCHITECTURE.md lists other crates than crates/ holds"
    );
    for krate in &crates {
        section(&architecture, krate);
        assert_eq!(
            documented[krate],
            cairn_dependencies(krate),
            "ARCHITECTURE.md gives {krate} other dependencies than its Cargo.toml"
        );
    }
}

#[test]
fn the_relay_does_not_link_the_crypto_crate() {
    let mut seen = BTreeSet::new();
    let mut next = vec!["cairn-relay".to_owned()];
    while let Some(krate) = next.pop() {
        if seen.insert(krate.clone()) {
            next.extend(cairn_dependencies(&krate));
        }
    }
    assert!(
        !seen.contains("cairn-crypto"),
        "cairn-relay links cairn-crypto through {seen:?}"
    );
    assert!(
        seen.contains("cairn-store"),
        "the closure was walked: {seen:?}"
    );
}

/// Source files of a crate, by their path under `src/`.
fn source_files(krate: &str) -> BTreeSet<String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.insert(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
    }
    let src = root().join("crates").join(krate).join("src");
    let mut out = BTreeSet::new();
    walk(&src, &src, &mut out);
    out
}

#[test]
fn every_crate_section_maps_its_source_files() {
    let architecture = read("ARCHITECTURE.md");
    for krate in crates() {
        let named: BTreeSet<&str> = backticked(section(&architecture, &krate))
            .into_iter()
            .filter(|token| token.ends_with(".rs"))
            .collect();
        let files = source_files(&krate);
        let basenames: BTreeSet<&str> = files
            .iter()
            .map(|f| f.rsplit('/').next().unwrap())
            .collect();
        let unnamed: Vec<&String> = files
            .iter()
            .filter(|f| {
                !named.contains(f.as_str()) && !named.contains(f.rsplit('/').next().unwrap())
            })
            .collect();
        assert!(
            unnamed.is_empty(),
            "ARCHITECTURE.md does not map {krate}'s {unnamed:?}"
        );
        let missing: Vec<&&str> = named
            .iter()
            .filter(|token| {
                let base = token.rsplit('/').next().unwrap();
                !basenames.contains(base)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "ARCHITECTURE.md maps {krate} files that do not exist: {missing:?}"
        );
    }
}

/// The documents whose names of files and paths are checked.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("ARCHITECTURE.md"), root().join("README.md")];
    for entry in std::fs::read_dir(root().join("spec")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs
}

/// All text of the crates' sources and the deployment and CI files, where
/// a file name the documents give must appear.
fn code_text() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            if path.is_dir() && name != "target" {
                walk(&path, out);
            } else if path.is_file() {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut text = String::new();
    for krate in crates() {
        walk(&root().join("crates").join(krate).join("src"), &mut text);
    }
    for dir in ["deploy", "xtask/src", ".ci"] {
        walk(&root().join(dir), &mut text);
    }
    text
}

/// Every file of the repository (outside `target/` and `.git/`), by path.
fn repository_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            if path.is_dir() && !["target", ".git"].contains(&name) {
                walk(&path, out);
            } else if path.is_file() {
                out.push(path.to_str().unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    out
}

const DATA_FILE: [&str; 6] = [".redb", ".pem", ".txt", ".toml", ".bak", ".json"];

#[test]
fn files_and_paths_the_documents_name_exist() {
    let code = code_text();
    let files = repository_files();
    let mut wrong = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = doc.parent().unwrap();
        for token in backticked(&text) {
            // `tests/attacks.rs::a_test` names a file and a test in it.
            let token = token.split("::").next().unwrap_or(token);
            let plain = !token.contains([' ', '*', '<', '{', '$']) && !token.is_empty();
            if !plain {
                continue;
            }
            if token
                .split('/')
                .any(|part| part.len() > 1 && part == part.to_uppercase())
            {
                continue; // a placeholder such as `DATA_DIR/admin.json`
            }
            let exists = root().join(token).exists()
                || dir.join(token).exists()
                || files
                    .iter()
                    .any(|file| file.ends_with(&format!("/{token}")));
            let is_path = token.contains('/') && token.rsplit('/').next().unwrap().contains('.');
            let is_document = token.ends_with(".md");
            let is_data_file = DATA_FILE.iter().any(|ext| token.ends_with(ext));
            let ok = if is_path || is_document {
                exists
            } else if is_data_file {
                exists || code.contains(token)
            } else {
                true
            };
            if !ok {
                wrong.push(format!("{}: `{token}`", doc.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "named but neither present nor used by the code:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_specs_name_the_files_the_code_uses() {
    let storage = read("spec/storage.md");
    let relay_db = format!("`{}`", cairn_relay::config::DATABASE_FILE);
    assert!(
        storage.contains(&relay_db),
        "spec/storage.md does not name {relay_db}"
    );
    let client = read("spec/client.md");
    let client_db = format!("`{}`", cairn_client::STORE_FILE);
    assert!(
        client.contains(&client_db),
        "spec/client.md does not name {client_db}"
    );
    assert!(
        !storage.contains(&client_db),
        "spec/storage.md names the client's file {client_db} for the relay's"
    );
}

/// Every test a document names as `path.rs::name` (as the threat model
/// does for each row) is a function of that file: a renamed or removed
/// test cannot leave a row pointing at nothing.
#[test]
fn every_test_the_documents_name_exists() {
    let mut named = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for token in backticked(&text) {
            let Some((file, test)) = token.split_once(".rs::") else {
                continue;
            };
            let source = read(format!("{file}.rs"));
            assert!(
                source.contains(&format!("fn {test}(")),
                "{} names `{token}`, which is not a function of {file}.rs",
                doc.display()
            );
            named += 1;
        }
    }
    assert!(
        named >= 20,
        "the threat model names its tests ({named} found)"
    );
}
