//! `spec/errors.md` and the code's error catalogue list the same codes.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cairn_wire::CATALOGUE;

#[test]
fn errors_md_matches_the_catalogue() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/errors.md");
    let spec = std::fs::read_to_string(path).unwrap();
    let from_spec: Vec<(u16, String, bool)> = spec
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse::<u16>().ok()?;
            let name = cells.get(2)?.trim_matches('`').to_owned();
            Some((code, name, *cells.get(3)? == "yes"))
        })
        .collect();
    let from_code: Vec<(u16, String, bool)> = CATALOGUE
        .iter()
        .map(|i| (i.code.0, i.name.to_owned(), i.closes_connection))
        .collect();
    assert_eq!(from_spec, from_code);
}

#[test]
fn codes_and_names_are_unique() {
    for (i, a) in CATALOGUE.iter().enumerate() {
        for b in &CATALOGUE[i + 1..] {
            assert_ne!(a.code, b.code);
            assert_ne!(a.name, b.name);
        }
    }
}
