//! Printing: text for people, JSON for scripts.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use cairn_client::ErrorKind;
use serde::Serialize;

/// Writes a line to stdout like `println!`, but returns an error (a
/// reader that closed the pipe, above all) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// What [`say!`] does.
pub fn line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Whether `error` is stdout's reader having gone away (`cairn note list
/// | head -1`): not a failure of the command, which then ends quietly.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Prints `value` as one JSON line.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    say!("{}", serde_json::to_string(value)?)?;
    Ok(())
}

/// Prints an error, and what to do about it when there is something: on
/// stderr, as one JSON object under `--json` (`hint` only when there is
/// one).
pub fn error(json: bool, error: &anyhow::Error, kind: Option<ErrorKind>, hint: Option<String>) {
    let message = format!("{error:#}");
    if json {
        let kind = kind.map_or_else(|| "other".to_owned(), |k| format!("{k:?}"));
        let value = match hint {
            Some(hint) => serde_json::json!({ "error": message, "kind": kind, "hint": hint }),
            None => serde_json::json!({ "error": message, "kind": kind }),
        };
        eprintln!("{value}");
    } else {
        eprintln!("cairn: {message}");
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
    }
}

/// A timestamp in ms since the Unix epoch: in the local time zone (`TZ`,
/// with its offset), or with `--utc` as RFC 3339 in UTC, to the second.
pub fn time(ms: u64) -> String {
    let local = !UTC.get().copied().unwrap_or(false);
    let zoned = i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|at| at.to_zoned_datetime(jiff::tz::TimeZone::system()));
    match zoned {
        Some(zoned) if local => zoned.strftime("%Y-%m-%d %H:%M:%S %:z").to_string(),
        _ => {
            let at = UNIX_EPOCH + Duration::from_millis(ms);
            humantime::format_rfc3339_seconds(at).to_string()
        }
    }
}

/// Whether times are shown in UTC (`--utc`); set once at start.
static UTC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Shows times in UTC rather than the local time zone.
pub fn use_utc(utc: bool) {
    let _ = UTC.set(utc);
}

/// A long id shortened for tables: its first 16 characters.
pub fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}
