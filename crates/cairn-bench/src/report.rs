//! What a scenario reports: figures, each against a baseline measured in
//! the same run where there is one, as JSON for `cargo xtask bench` and as
//! text for whoever watches.

use std::time::Duration;

use serde::Serialize;

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Which scenario measured it.
    pub scenario: String,
    /// What was measured, in words.
    pub metric: String,
    /// The measurement.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// What it is compared with, measured in the same run.
    pub baseline: Option<Baseline>,
    /// `value / baseline.value`, when there is a baseline.
    pub ratio: Option<f64>,
    /// What the ratio should reach.
    pub target: Option<Target>,
    /// Whether the ratio meets the target.
    pub met: Option<bool>,
}

/// A reference measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// What it is, in words.
    pub name: String,
    /// The measurement.
    pub value: f64,
    /// Its unit.
    pub unit: String,
}

/// A bound on a ratio.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must be at most this.
    AtMost(f64),
    /// The value itself, in its own unit, must be at most this: for a
    /// figure whose goal is absolute (memory per connection), with or
    /// without a baseline beside it.
    ValueAtMost(f64),
}

impl Target {
    /// Whether `value` (and `ratio`, its ratio to the baseline if there is
    /// one) meets the target; unknown for a ratio target without a ratio.
    fn met_by(self, value: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Self::AtLeast(bound) => ratio.map(|r| r >= bound),
            Self::AtMost(bound) => ratio.map(|r| r <= bound),
            Self::ValueAtMost(bound) => Some(value <= bound),
        }
    }
}

/// Everything one scenario measured, plus how it was set up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The figures, in the order measured.
    pub figures: Vec<Figure>,
    /// How the scenario was set up and anything worth knowing about it.
    pub notes: Vec<String>,
}

impl Figure {
    /// A plain measurement without a baseline.
    pub fn plain(scenario: &str, metric: &str, value: f64, unit: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            metric: metric.to_owned(),
            value,
            unit: unit.to_owned(),
            baseline: None,
            ratio: None,
            target: None,
            met: None,
        }
    }

    /// Adds a baseline (in the same unit unless `unit` says otherwise) and
    /// computes the ratio.
    pub fn against(mut self, name: &str, value: f64, unit: Option<&str>) -> Self {
        self.ratio = (value > 0.0).then(|| self.value / value);
        self.baseline = Some(Baseline {
            name: name.to_owned(),
            value,
            unit: unit.unwrap_or(&self.unit).to_owned(),
        });
        self.met = self.target.and_then(|t| t.met_by(self.value, self.ratio));
        self
    }

    /// Sets the target the figure must meet.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self.met = target.met_by(self.value, self.ratio);
        self
    }

    /// One line for a human.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{:<58} {:>12} {}",
            self.metric,
            format_value(self.value),
            self.unit
        );
        if let (Some(baseline), Some(ratio)) = (&self.baseline, self.ratio) {
            line.push_str(&format!(
                "\n{:<58} {:>12} {}\n{:<58} {ratio:>12.2}x",
                format!("  baseline: {}", baseline.name),
                format_value(baseline.value),
                baseline.unit,
                "  ratio",
            ));
        }
        match (self.target, self.met) {
            (Some(Target::AtLeast(t)), Some(met)) => {
                line.push_str(&format!("  (target >= {t}x: {})", verdict(met)));
            }
            (Some(Target::AtMost(t)), Some(met)) => {
                line.push_str(&format!("  (target <= {t}x: {})", verdict(met)));
            }
            (Some(Target::ValueAtMost(t)), Some(met)) => {
                line.push_str(&format!(
                    "  (target <= {t} {}: {})",
                    self.unit,
                    verdict(met)
                ));
            }
            _ => {}
        }
        line
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// Three significant digits or so, without scientific notation.
fn format_value(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 1.0 => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

/// Latency samples in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    /// Room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Records one sample.
    pub fn record(&mut self, latency: Duration) {
        self.0
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    /// Takes another set's samples.
    pub fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    /// The quantile at `per_mille` thousandths (e.g. [`P99`]), in
    /// milliseconds, nearest rank.
    pub fn quantile_ms(&mut self, per_mille: usize) -> f64 {
        self.0.sort_unstable();
        let last = self.0.len().saturating_sub(1);
        let index = (last * per_mille.min(1000) + 500) / 1000;
        self.0.get(index).map_or(0.0, |&us| f64::from(us) / 1000.0)
    }
}

/// The median, in thousandths.
pub const P50: usize = 500;
/// The 99th percentile, in thousandths.
pub const P99: usize = 990;

/// `count / elapsed`, per second.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_target_follow_the_baseline() {
        let figure = Figure::plain("s", "m", 50.0, "x/s")
            .against("b", 200.0, None)
            .target(Target::AtLeast(0.5));
        assert_eq!(figure.ratio, Some(0.25));
        assert_eq!(figure.met, Some(false));
        let figure = Figure::plain("s", "m", 50.0, "x/s")
            .target(Target::AtMost(1.1))
            .against("b", 50.0, None);
        assert_eq!(figure.met, Some(true));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut latencies = Latencies::default();
        for ms in (1..=100).rev() {
            latencies.record(Duration::from_millis(ms));
        }
        assert!((latencies.quantile_ms(P50) - 51.0).abs() < 1e-9);
        assert!((latencies.quantile_ms(P99) - 99.0).abs() < 1e-9);
        assert!((latencies.quantile_ms(1000) - 100.0).abs() < 1e-9);
        assert_eq!(Latencies::default().quantile_ms(P50), 0.0);
    }
}
