//! What a stopped relay's data directory holds, through the operator's
//! own commands: `cairn-relay check` and `cairn-relay export`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cairn_wire::{Envelope, StreamId};

use crate::relay_binary;

/// `cairn-relay check` on `data_dir` must pass.
pub fn assert_check_passes(data_dir: &Path) {
    let check = Command::new(relay_binary())
        .arg("check")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("running cairn-relay check");
    assert!(
        check.status.success(),
        "cairn-relay check failed: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// What `cairn-relay export` found.
#[derive(Debug, Default)]
pub struct Exported {
    /// Every statement's encoding.
    pub statements: Vec<Vec<u8>>,
    /// Every stream's envelope encodings, in position order.
    pub streams: BTreeMap<StreamId, Vec<Vec<u8>>>,
}

/// Exports `data_dir` (relay stopped); positions must be consecutive.
pub fn export(data_dir: &Path) -> Exported {
    let output = Command::new(relay_binary())
        .args(["export", "--out", "-", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("running cairn-relay export");
    assert!(
        output.status.success(),
        "cairn-relay export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut exported = Exported::default();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let bytes = || hex::decode(line["hex"].as_str().unwrap()).unwrap();
        match line["type"].as_str().unwrap() {
            "statement" => exported.statements.push(bytes()),
            "envelope" => {
                let encoding = bytes();
                let stream = Envelope::decode(&encoding).unwrap().stream();
                let entries = exported.streams.entry(stream).or_default();
                entries.push(encoding);
                assert_eq!(
                    line["position"].as_u64(),
                    Some(u64::try_from(entries.len()).unwrap()),
                    "export positions of {stream:?} are not consecutive"
                );
            }
            "header" | "end" => {}
            other => panic!("unknown export line type {other}"),
        }
    }
    exported
}
