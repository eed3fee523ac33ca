//! Benchmarks: each prints its figures as ratios against a baseline
//! measured in the same run on the same machine.

use anyhow::Result;

use crate::run;

/// `(package, bench target)` pairs, run in order.
const BENCHES: &[(&str, &str)] = &[("cairn-crypto", "seal"), ("cairn-store", "ingest")];

/// Runs every benchmark.
pub fn run() -> Result<()> {
    for (package, bench) in BENCHES {
        run::step(
            &format!("bench {package}/{bench}"),
            "cargo",
            &["bench", "--locked", "-p", package, "--bench", bench],
        )?;
    }
    Ok(())
}
