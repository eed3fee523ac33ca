//! The sync engine against a real relay process: a large offline outbox
//! pushed in several rounds, and a device linked later pulling it in
//! several pages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use cairn_client::{Client, Options, Passphrase, Progress};
use cairn_testkit::RelayProcess;
use cairn_testkit::metrics::Metrics;
use cairn_testkit::process::RelayOptions;

/// A relay process on its defaults, with its data directory.
struct Relay {
    process: RelayProcess,
    addr: String,
    _data: tempfile::TempDir,
}

impl Relay {
    fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let process = RelayOptions::defaults().spawn(data.path());
        Self {
            addr: process.addr.to_string(),
            process,
            _data: data,
        }
    }

    /// The relay's count of requests of `kind`, from its metrics.
    fn requests(&self, kind: &str) -> f64 {
        let series = format!("cairn_requests_total{{kind=\"{kind}\"}}");
        Metrics::scrape(self.process.admin).value(&series)
    }
}

#[derive(Default)]
struct Rounds {
    updates: u32,
    saw_more: bool,
}

impl Progress for Rounds {
    fn update(&mut self, _: u64, _: u64, more: bool) {
        self.updates += 1;
        self.saw_more |= more;
    }
}

fn options() -> Options {
    Options {
        connect_timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_outbox_and_history_move_in_several_rounds() {
    let relay = Relay::start();
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pass = || Passphrase::new("test".into());
    let mut laptop = Client::init(
        home_a.path(),
        &pass(),
        &relay.addr,
        relay.process.fingerprint,
        "laptop",
        options(),
    )
    .await
    .unwrap();
    let text = "x".repeat(4000);
    for i in 0..300 {
        laptop.add_note(&format!("{i} {text}")).unwrap();
    }
    assert_eq!(laptop.queued().unwrap(), 300);
    let mut rounds = Rounds::default();
    let report = laptop.sync(&mut rounds).await.unwrap();
    assert_eq!(report.pushed, 300);
    assert_eq!(report.queued, 0);
    assert!(rounds.updates >= 2, "the outbox went in several hellos");

    let (mut phone, code) = Client::join(
        home_b.path(),
        &pass(),
        &relay.addr,
        relay.process.fingerprint,
        laptop.user().unwrap(),
        "phone",
        options(),
    )
    .await
    .unwrap();
    laptop.approve(&code, false).await.unwrap();
    let (hellos, subscriptions) = (relay.requests("hello"), relay.requests("subscribe"));
    let mut rounds = Rounds::default();
    let report = phone.sync(&mut rounds).await.unwrap();
    assert!(report.linked);
    assert!(rounds.saw_more, "the history came in several pages");
    // The first hello's page said more; the rest of the history came
    // through one catch-up subscription, not a hello per page.
    assert_eq!(relay.requests("subscribe") - subscriptions, 1.0);
    assert!(relay.requests("hello") - hellos <= 3.0);
    let notes = phone.notes().unwrap();
    assert_eq!(notes.len(), 300);
    assert!(
        notes
            .iter()
            .enumerate()
            .all(|(i, n)| n.text.starts_with(&format!("{i} ")))
    );
    let again = phone.sync(&mut Rounds::default()).await.unwrap();
    assert_eq!(again.pulled, 0);
}
