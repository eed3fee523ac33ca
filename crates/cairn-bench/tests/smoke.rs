//! Keeps the load generator working: every scenario at a tiny size, in
//! whatever profile the tests build, must finish and report figures that
//! show the work was done (non-zero rates, ordered percentiles, a sync
//! that moved the bytes it names, targets judged by their own bounds).
//! The numbers themselves mean nothing here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

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
    assert_eq!(
        names,
        [
            "seal", "ingest", "fanout", "sync", "connect", "cluster", "soak"
        ]
    );
    for scenario in scenarios {
        let figures = scenario["figures"].as_array().unwrap();
        assert!(!figures.is_empty(), "{scenario}");
        for figure in figures {
            check_figure(figure);
        }
        check_percentiles(figures);
    }
    check_sync_moved_its_backlog(&scenarios[3]);
}

/// The value of the figure whose metric starts with `prefix`.
fn value_of(figures: &[Value], prefix: &str) -> f64 {
    figures
        .iter()
        .find(|f| f["metric"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no figure {prefix:?}"))["value"]
        .as_f64()
        .unwrap()
}

/// Every `... p50` comes with a `... p99` that is not smaller.
fn check_percentiles(figures: &[Value]) {
    for figure in figures {
        let metric = figure["metric"].as_str().unwrap();
        let Some(stem) = metric.strip_suffix(" p50") else {
            continue;
        };
        let p50 = figure["value"].as_f64().unwrap();
        let p99 = value_of(figures, &format!("{stem} p99"));
        assert!(p50 <= p99, "{metric}: p50 {p50} > p99 {p99}");
    }
}

/// The cold sync's rate times its time is the backlog it names: N
/// envelopes of a little over 1 KiB each.
fn check_sync_moved_its_backlog(sync: &Value) {
    let figures = sync["figures"].as_array().unwrap();
    let rate = figures[0]["metric"].as_str().unwrap();
    let envelopes: f64 = rate
        .strip_prefix("cold sync of ")
        .and_then(|rest| rest.strip_suffix(" envelopes"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first sync figure {rate:?}"));
    let megabytes =
        figures[0]["value"].as_f64().unwrap() * value_of(figures, &format!("{rate}: time"));
    let per_envelope = megabytes * 1e6 / envelopes;
    assert!(
        (1024.0..2048.0).contains(&per_envelope),
        "the sync moved {per_envelope} bytes per envelope"
    );
}

fn check_figure(figure: &Value) {
    let value = figure["value"].as_f64().unwrap();
    assert!(value.is_finite() && value > 0.0, "{figure}");
    if let Some(baseline) = figure["baseline"].as_object() {
        let base = baseline["value"].as_f64().unwrap();
        assert!(base.is_finite() && base > 0.0, "{figure}");
        let ratio = figure["ratio"].as_f64().unwrap();
        assert!(
            (ratio - value / base).abs() < 1e-9 * ratio.max(1.0),
            "{figure}"
        );
    }
    if let Some(target) = figure["target"].as_object() {
        let ratio = || figure["ratio"].as_f64().unwrap();
        let bound = |name: &str| target.get(name).and_then(Value::as_f64);
        assert_eq!(target.len(), 1, "a target is one bound: {figure}");
        let met = if let Some(bound) = bound("at_least") {
            ratio() >= bound
        } else if let Some(bound) = bound("at_most") {
            ratio() <= bound
        } else if let Some(bound) = bound("value_at_most") {
            value <= bound
        } else {
            panic!("an unknown target: {figure}")
        };
        assert_eq!(figure["met"].as_bool(), Some(met), "{figure}");
    }
}
