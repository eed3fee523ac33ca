//! Keeps the load generator working: every scenario at a tiny size, in
//! whatever profile the tests build, must finish and report sane figures.
//! The numbers themselves mean nothing here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use serde_json::Value;

#[test]
fn every_scenario_reports_sane_figures_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let status = Command::new(env!("CARGO_BIN_EXE_cairn-load"))
        .args(["all", "--smoke", "--json"])
        .arg(&json)
        .status()
        .unwrap();
    assert!(status.success(), "cairn-load failed: {status}");

    let output: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let scenarios = output["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["seal", "ingest", "fanout", "sync", "connect"]);
    for scenario in scenarios {
        let figures = scenario["figures"].as_array().unwrap();
        assert!(!figures.is_empty(), "{scenario}");
        for figure in figures {
            check_figure(figure);
        }
    }
}

fn check_figure(figure: &Value) {
    let value = figure["value"].as_f64().unwrap();
    assert!(value.is_finite() && value >= 0.0, "{figure}");
    if let Some(baseline) = figure["baseline"].as_object() {
        let base = baseline["value"].as_f64().unwrap();
        assert!(base.is_finite() && base > 0.0, "{figure}");
        let ratio = figure["ratio"].as_f64().unwrap();
        assert!(
            (ratio - value / base).abs() < 1e-9 * ratio.max(1.0),
            "{figure}"
        );
    }
    if !figure["target"].is_null() {
        assert!(figure["met"].is_boolean(), "{figure}");
    }
}
