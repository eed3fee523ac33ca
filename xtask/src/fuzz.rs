//! Fuzzing with cargo-fuzz on the nightly toolchain.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::run;

mod ledger;
pub mod uninstrumented;

/// Every fuzz target in `fuzz/fuzz_targets/`: every parser of foreign
/// bytes (wire frames, envelopes, statements, ids; records and their
/// folds; sealed payloads; what users paste; the relay's importer and
/// configuration; and, structure-aware, against a real store: the store's
/// operations with the access rules, and the relay's request handling
/// from authenticated sessions).
pub const TARGETS: &[&str] = &[
    "envelope",
    "frame",
    "statement",
    "id_text",
    "record",
    "fold",
    "payload",
    "client_text",
    "export",
    "config",
    "store_ops",
    "requests",
    "log_record",
];

/// Seconds per target of a campaign unless `--seconds` says otherwise.
const CAMPAIGN_SECONDS: u64 = 600;

/// The time limit per target when `--runs` sets the goal: a bound, so that
/// a slow target cannot hold the campaign for ever.
const RUNS_TIME_LIMIT_SECONDS: u64 = 6 * 3600;

/// What to fuzz and for how long.
#[derive(Debug)]
pub struct Options {
    seconds: u64,
    targets: Vec<String>,
    /// A campaign also minimises each corpus afterwards (`cargo fuzz
    /// cmin`), so that what is kept under `fuzz/corpus/` stays small.
    campaign: bool,
    /// Stop each target after this many executions, if it gets there
    /// before its time is up.
    runs: Option<u64>,
    /// Build without AddressSanitizer (in a target directory of its own):
    /// several times faster for the targets that spend their time in a
    /// real store, at the cost of not catching memory errors in the
    /// dependencies' unsafe code.
    no_sanitizer: bool,
}

impl Options {
    /// `[--campaign] [--seconds N] [--runs N] [--no-sanitizer] [TARGET...]`;
    /// default every
    /// target, 60 seconds each (600 in a campaign, or 6 hours when only
    /// `--runs` bounds it).
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut seconds = None;
        let mut runs = None;
        let mut campaign = false;
        let mut no_sanitizer = false;
        let mut targets = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--seconds" {
                let value = args.next().context("--seconds needs a value")?;
                seconds = Some(value.parse().context("--seconds takes a whole number")?);
            } else if arg == "--runs" {
                let value = args.next().context("--runs needs a value")?;
                runs = Some(value.parse().context("--runs takes a whole number")?);
            } else if arg == "--no-sanitizer" {
                no_sanitizer = true;
            } else if arg == "--campaign" {
                campaign = true;
            } else if TARGETS.contains(&arg.as_str()) {
                targets.push(arg.clone());
            } else {
                bail!(
                    "unknown fuzz target or option `{arg}`; targets: {}",
                    TARGETS.join(", ")
                );
            }
        }
        if targets.is_empty() {
            targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
        }
        let default = match (campaign, runs) {
            (_, Some(_)) => RUNS_TIME_LIMIT_SECONDS,
            (true, None) => CAMPAIGN_SECONDS,
            (false, None) => 60,
        };
        Ok(Self {
            seconds: seconds.unwrap_or(default),
            targets,
            campaign,
            runs,
            no_sanitizer,
        })
    }

    /// Every target for `seconds` each.
    pub fn smoke(seconds: u64) -> Self {
        Self {
            seconds,
            targets: TARGETS.iter().map(|t| (*t).to_owned()).collect(),
            campaign: false,
            runs: None,
            no_sanitizer: false,
        }
    }
}

/// Runs each target over its stored corpus (seeded from the spec's
/// vectors); fails on the first crash. A campaign then minimises each
/// corpus in place.
pub fn run(options: &Options) -> Result<()> {
    ensure_cargo_fuzz()?;
    seed_corpora()?;
    let mut summary = Vec::new();
    for target in &options.targets {
        let stats = fuzz_target(target, options)?;
        let kept = match options.campaign {
            true => format!(
                ", corpus minimised to {} inputs",
                minimise(target, options)?
            ),
            false => String::new(),
        };
        let mut line = format!(
            "{target}: {} executions in {} s ({}/s), coverage {} edges, {} features{kept}",
            stats.runs,
            stats.seconds,
            stats.runs / stats.seconds.max(1),
            stats.coverage,
            stats.features,
        );
        if options.campaign {
            let total = ledger::record(target, &stats, options.no_sanitizer)?;
            line.push_str(&format!(
                "; {total} executions in every campaign run in {}",
                ledger::PATH
            ));
        }
        // Said at once too, so that a long campaign stopped part way still
        // leaves the figures of the targets it finished.
        println!("==> {line}");
        summary.push(line);
    }
    println!("==> fuzz summary\n{}", summary.join("\n"));
    Ok(())
}

/// What one run of a target reached.
#[derive(Debug, Default)]
pub struct Stats {
    pub runs: u64,
    pub seconds: u64,
    pub coverage: u64,
    pub features: u64,
}

/// `cargo fuzz cmin`: keeps the smallest set of inputs that reaches the
/// same coverage; how many are left.
fn minimise(target: &str, options: &Options) -> Result<usize> {
    let corpus = format!("fuzz/corpus/{target}");
    let mut args = vec!["+nightly", "fuzz", "cmin", "--fuzz-dir", "fuzz"];
    args.extend(build_flags(options, "fuzz/"));
    args.extend([target, &corpus]);
    let env = uninstrumented::environment()?;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run::step_with_env(
        &format!("minimise the {target} corpus"),
        "cargo",
        &args,
        &env,
    )?;
    Ok(fs::read_dir(run::root().join(&corpus))?.count())
}

fn ensure_cargo_fuzz() -> Result<()> {
    if !run::succeeds("rustup", &["run", "nightly", "rustc", "--version"]) {
        bail!("fuzzing needs the nightly toolchain (rustup toolchain install nightly)");
    }
    if run::succeeds("cargo", &["+nightly", "fuzz", "--version"]) {
        return Ok(());
    }
    run::step(
        "install cargo-fuzz",
        "cargo",
        &["install", "cargo-fuzz", "--locked"],
    )
}

/// `cargo fuzz` flags for the build `options` ask for; `fuzz_dir` is the
/// fuzz directory relative to where cargo runs.
fn build_flags(options: &Options, fuzz_dir: &str) -> Vec<&'static str> {
    match (options.no_sanitizer, fuzz_dir) {
        (false, _) => vec![],
        (true, "") => vec!["-s", "none", "--target-dir", "target/no-sanitizer"],
        (true, _) => vec!["-s", "none", "--target-dir", "fuzz/target/no-sanitizer"],
    }
}

/// Runs one target for `options.seconds`, or until it has executed
/// `options.runs` inputs: how many it executed, in how long, and the
/// coverage it reached.
fn fuzz_target(target: &str, options: &Options) -> Result<Stats> {
    let (seconds, runs) = (options.seconds, options.runs);
    match runs {
        Some(runs) => println!("==> fuzz {target} for {runs} executions (at most {seconds} s)"),
        None => println!("==> fuzz {target} for {seconds} s"),
    }
    let corpus = format!("corpus/{target}");
    let seeds = format!("target/seeds/{target}");
    fs::create_dir_all(run::root().join("fuzz").join(&corpus))?;
    let max_time = format!("-max_total_time={seconds}");
    let max_runs = format!(
        "-runs={}",
        runs.map_or(-1, |r| i64::try_from(r).unwrap_or(i64::MAX))
    );
    let output = Command::new("cargo")
        .args(["+nightly", "fuzz", "run"])
        .args(build_flags(options, ""))
        .args([
            target,
            &corpus,
            &seeds,
            "--",
            &max_time,
            &max_runs,
            "-max_len=70000",
            "-print_final_stats=1",
        ])
        .envs(uninstrumented::environment()?)
        .current_dir(run::root().join("fuzz"))
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .context("starting cargo fuzz")?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprintln!("{log}");
        bail!("fuzz target {target} failed; the crashing input is under fuzz/artifacts/{target}/");
    }
    let (done, seconds) = executions(&log);
    // The final statistics count every execution, the corpus's first
    // reading included; "Done" is the fallback.
    let runs = match last_stat(&log, "stat::number_of_executed_units:") {
        0 => done,
        units => units,
    };
    Ok(Stats {
        runs,
        seconds,
        coverage: last_stat(&log, "cov:"),
        features: last_stat(&log, "ft:"),
    })
}

/// libFuzzer ends with "Done N runs in S second(s)".
/// (executions, seconds).
fn executions(log: &str) -> (u64, u64) {
    log.lines()
        .filter_map(|line| line.split("Done ").nth(1))
        .filter_map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words[..] {
                [runs, "runs", "in", seconds, ..] => {
                    Some((runs.parse().ok()?, seconds.parse().ok()?))
                }
                _ => None,
            }
        })
        .next_back()
        .unwrap_or((0, 0))
}

/// The last value libFuzzer printed after `name` in its status lines
/// (`#N DONE cov: 1234 ft: 5678 ...`).
fn last_stat(log: &str, name: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split(name).nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// Where the seeds go: generated afresh from the vectors at every run, and
/// kept apart from the stored corpora (under the fuzz crate's ignored
/// `target/`), so that a run leaves `fuzz/corpus/` as it found it unless
/// it finds something new.
const SEEDS: &str = "fuzz/target/seeds";

/// Writes every vector input into the seeds of the target that parses it.
fn seed_corpora() -> Result<()> {
    let root = run::root();
    let valid = read_json(&root.join("spec/vectors/wire-valid.json"))?;
    let invalid = read_json(&root.join("spec/vectors/wire-invalid.json"))?;
    let corpus = root.join(SEEDS);
    for (section, field, target) in [
        ("envelopes", "encoding", "envelope"),
        ("statements", "encoding", "statement"),
        ("frames", "frame", "frame"),
    ] {
        for (i, v) in array(&valid[section]).iter().enumerate() {
            write_seed(
                &corpus.join(target),
                &format!("valid-{i}"),
                &hex_field(v, field)?,
            )?;
        }
    }
    for (i, v) in array(&valid["ids"]).iter().enumerate() {
        let text = v["text"].as_str().unwrap_or_default();
        write_seed(
            &corpus.join("id_text"),
            &format!("valid-{i}"),
            text.as_bytes(),
        )?;
    }
    seed_client(&root, &corpus)?;
    let records = read_json(&root.join("spec/vectors/cluster/records.json"))?;
    for section in ["records", "invalid"] {
        for (i, v) in array(&records[section]).iter().enumerate() {
            write_seed(
                &corpus.join("log_record"),
                &format!("{section}-{i}"),
                &hex_field(v, "hex")?,
            )?;
        }
    }
    seed_payloads(&root, &corpus)?;
    let config = fs::read(root.join("deploy/relay.example.toml"))?;
    write_seed(&corpus.join("config"), "relay-example", &config)?;
    for target in ["export", "store_ops", "requests"] {
        for entry in fs::read_dir(root.join("fuzz/seeds").join(target))? {
            let entry = entry?;
            write_seed(
                &corpus.join(target),
                &entry.file_name().to_string_lossy(),
                &fs::read(entry.path())?,
            )?;
        }
    }
    for (i, v) in array(&invalid).iter().enumerate() {
        let target = match v["kind"].as_str().unwrap_or_default() {
            "envelope" => "envelope",
            "device_certificate" => "statement",
            "request_frame" | "response_frame" => "frame",
            _ => continue,
        };
        write_seed(
            &corpus.join(target),
            &format!("invalid-{i}"),
            &hex_field(v, "hex")?,
        )?;
    }
    Ok(())
}

/// The client's record and text vectors: each record alone (`record`),
/// all of them as one log in each scope (`fold`), and each text
/// (`client_text`).
fn seed_client(root: &Path, corpus: &Path) -> Result<()> {
    let records = read_json(&root.join("spec/vectors/client/records.json"))?;
    let records: Vec<Vec<u8>> = array(&records["records"])
        .iter()
        .map(|v| hex_field(v, "hex"))
        .collect::<Result<_>>()?;
    for (i, record) in records.iter().enumerate() {
        write_seed(&corpus.join("record"), &format!("valid-{i}"), record)?;
    }
    for scope in 0u8..4 {
        let mut log = Vec::new();
        for (seq, record) in records.iter().enumerate() {
            let seq = u8::try_from(seq + 1).unwrap_or(u8::MAX);
            let len = u16::try_from(record.len()).unwrap_or(u16::MAX);
            log.extend([0, 0, scope, seq, 0, seq, 0]);
            log.extend(len.to_be_bytes());
            log.extend(record);
        }
        write_seed(&corpus.join("fold"), &format!("scope-{scope}"), &log)?;
    }
    let texts = read_json(&root.join("spec/vectors/client/texts.json"))?;
    for field in ["link_code", "recovery_code", "fingerprint"] {
        let text = texts[field].as_str().unwrap_or_default();
        write_seed(&corpus.join("client_text"), field, text.as_bytes())?;
    }
    Ok(())
}

/// The crypto vectors' sealed payloads with their headers, which the
/// `payload` target opens with the vectors' keys.
fn seed_payloads(root: &Path, corpus: &Path) -> Result<()> {
    let posts = read_json(&root.join("spec/vectors/crypto/posts.json"))?;
    let grants = read_json(&root.join("spec/vectors/crypto/grants.json"))?;
    let sealed = array(&posts["cases"])
        .iter()
        .chain(["grant", "link", "link_for_code"].map(|k| &grants[k]));
    for (i, v) in sealed.enumerate() {
        let header = hex_field(v, "header_encoding")?;
        let len = u16::try_from(header.len()).unwrap_or(u16::MAX);
        let mut seed = len.to_be_bytes().to_vec();
        seed.extend(header);
        seed.extend(hex_field(v, "payload")?);
        write_seed(&corpus.join("payload"), &format!("valid-{i}"), &seed)?;
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn hex_field(v: &Value, field: &str) -> Result<Vec<u8>> {
    hex::decode(v[field].as_str().unwrap_or_default())
        .with_context(|| format!("bad hex in `{field}`"))
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes).with_context(|| format!("writing seed {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "#4341\tINITED cov: 6465 ft: 28140 corp: 1314/160Kb exec/s: 166 rss: 43Mb
#9000\tREDUCE cov: 6470 ft: 28200 corp: 1315/160Kb lim: 10581 exec/s: 170 rss: 44Mb
Done 9000 runs in 53 second(s)
stat::number_of_executed_units: 9001
stat::average_exec_per_sec:     169
";

    #[test]
    fn a_runs_figures_are_read_from_libfuzzers_last_lines() {
        assert_eq!(executions(LOG), (9000, 53));
        assert_eq!(last_stat(LOG, "stat::number_of_executed_units:"), 9001);
        assert_eq!(last_stat(LOG, "cov:"), 6470);
        assert_eq!(last_stat(LOG, "ft:"), 28200);
    }
}
