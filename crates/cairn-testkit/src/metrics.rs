//! The relay's metrics, scraped from its Prometheus text.

use std::net::SocketAddr;

use crate::WAIT;

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Metrics {
    text: String,
}

impl Metrics {
    /// `GET http://ADDR/metrics` (bounded by [`WAIT`]). Blocking: from async
    /// code, use [`Metrics::scrape_async`].
    pub fn scrape(addr: SocketAddr) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(WAIT))
            .build()
            .into();
        let text = agent
            .get(format!("http://{addr}/metrics"))
            .call()
            .unwrap_or_else(|e| panic!("scraping {addr}: {e}"))
            .body_mut()
            .read_to_string()
            .expect("a metrics body");
        Self { text }
    }

    /// [`Metrics::scrape`] off the async runtime's threads.
    pub async fn scrape_async(addr: SocketAddr) -> Self {
        tokio::task::spawn_blocking(move || Self::scrape(addr))
            .await
            .expect("the scrape panicked")
    }

    /// Metrics from Prometheus text already fetched.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    /// The value of the sample `series` (a name, or a name with its
    /// labels as exposed, e.g. `cairn_requests_total{kind="hello"}`);
    /// 0 when absent, as Prometheus counters start.
    pub fn value(&self, series: &str) -> f64 {
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The sum of every sample of the metric `name`, whatever its labels.
    pub fn sum(&self, name: &str) -> f64 {
        self.text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| line.split(['{', ' ']).next() == Some(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The Prometheus text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let metrics = Metrics::from_text(
            "# TYPE cairn_connections gauge\ncairn_connections 3\n\
             cairn_requests_total{kind=\"hello\"} 7\ncairn_connections_total 9\n",
        );
        assert_eq!(metrics.value("cairn_connections"), 3.0);
        assert_eq!(metrics.value("cairn_requests_total{kind=\"hello\"}"), 7.0);
        assert_eq!(metrics.value("cairn_requests_total{kind=\"read\"}"), 0.0);
        assert_eq!(metrics.value("cairn_absent"), 0.0);
        assert_eq!(metrics.sum("cairn_requests_total"), 7.0);
        assert_eq!(metrics.sum("cairn_connections"), 3.0);
    }
}
