//! The campaign ledger, `fuzz/CAMPAIGNS.md`: one row per target per
//! campaign run, so that a campaign resumed from its stored corpus over
//! several runs still adds up to a count anyone can check.

use std::fs;
use std::io::Write;
use std::process::Command;

use anyhow::{Context, Result};

use super::Stats;
use crate::run;

/// Where the ledger is, from the repository's root.
pub const PATH: &str = "fuzz/CAMPAIGNS.md";

const HEADER: &str = "# Fuzz campaigns

One row per target per `cargo xtask fuzz --campaign` run, added by the
run itself. Each run starts from the target's stored corpus under
`fuzz/corpus/`, so consecutive runs of a target continue one campaign:
its executions are the sum of its rows. `edges` and `features` are
libFuzzer's coverage at the end of the run. `build` says whether the
target ran under AddressSanitizer, and whether redb was left without
coverage instrumentation (`xtask/src/fuzz/uninstrumented.rs`), so that
its edges and features count every crate but redb.

| date (UTC) | target | executions | seconds | executions/s | edges | features | build |
|---|---|---:|---:|---:|---:|---:|---|
";

/// Adds `stats` for `target` to the ledger; the target's executions over
/// every row.
pub fn record(target: &str, stats: &Stats, no_sanitizer: bool) -> Result<u64> {
    let path = run::root().join(PATH);
    // A ledger that exists but cannot be read is an error, never a fresh
    // one: starting over would lose the rows it holds.
    let mut text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_owned(),
        Err(e) => return Err(e).with_context(|| format!("reading {PATH}")),
    };
    let sanitizer = if no_sanitizer { "no sanitizer" } else { "ASan" };
    let build = format!("{sanitizer}, redb uninstrumented");
    text.push_str(&format!(
        "| {} | {target} | {} | {} | {} | {} | {} | {build} |\n",
        today()?,
        stats.runs,
        stats.seconds,
        stats.runs / stats.seconds.max(1),
        stats.coverage,
        stats.features,
    ));
    fs::File::create(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("writing {PATH}"))?;
    Ok(executions_of(&text, target))
}

/// The executions of `target` over every row of `ledger`.
fn executions_of(ledger: &str, target: &str) -> u64 {
    ledger
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            match cells[..] {
                ["", _, name, runs, ..] if name == target => runs.parse::<u64>().ok(),
                _ => None,
            }
        })
        .sum()
}

fn today() -> Result<String> {
    let out = Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .context("running date")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_executions_add_up_over_its_rows_only() {
        let mut ledger = HEADER.to_owned();
        ledger.push_str("| 2026-12-01 | store_ops | 1000 | 10 | 100 | 5 | 6 | ASan |\n");
        ledger.push_str("| 2026-12-01 | requests | 7 | 10 | 0 | 5 | 6 | ASan |\n");
        ledger.push_str("| 2026-12-02 | store_ops | 234 | 10 | 23 | 5 | 6 | no sanitizer |\n");
        assert_eq!(executions_of(&ledger, "store_ops"), 1234);
        assert_eq!(executions_of(&ledger, "requests"), 7);
        assert_eq!(executions_of(&ledger, "frame"), 0);
    }
}
