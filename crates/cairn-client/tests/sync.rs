//! The sync engine against a real relay process: a large offline outbox
//! pushed in several rounds, and a device linked later pulling it in
//! several pages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn_client::{Client, Options, Passphrase, Progress};

/// A relay process, killed when dropped.
struct Relay {
    child: Child,
    addr: String,
    admin: String,
    fingerprint: cairn_wire::Fingerprint,
    _data: tempfile::TempDir,
}

impl Relay {
    fn start() -> Self {
        let bin = escargot::CargoBuild::new()
            .package("cairn-relay")
            .bin("cairn-relay")
            .current_release()
            .current_target()
            .run()
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin.path())
            .args(["serve", "--data-dir"])
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let words: Vec<&str> = first.split_whitespace().collect();
        let addr = words[4].to_owned();
        let admin = words[6].trim_end_matches(')').to_owned();
        let second = lines.next().unwrap().unwrap();
        let fingerprint = second
            .strip_prefix("fingerprint ")
            .unwrap()
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            admin,
            fingerprint,
            _data: data,
        }
    }
}

impl Relay {
    /// The relay's count of requests of `kind`, from its metrics.
    fn requests(&self, kind: &str) -> u64 {
        let text = ureq::get(format!("http://{}/metrics", self.admin))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let prefix = format!("cairn_requests_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        relay.fingerprint,
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
        relay.fingerprint,
        laptop.user().unwrap(),
        "phone",
        options(),
    )
    .await
    .unwrap();
    laptop.approve(&code).await.unwrap();
    let (hellos, subscriptions) = (relay.requests("hello"), relay.requests("subscribe"));
    let mut rounds = Rounds::default();
    let report = phone.sync(&mut rounds).await.unwrap();
    assert!(report.linked);
    assert!(rounds.saw_more, "the history came in several pages");
    // The first hello's page said more; the rest of the history came
    // through one catch-up subscription, not a hello per page.
    assert_eq!(relay.requests("subscribe") - subscriptions, 1);
    assert!(relay.requests("hello") - hellos <= 3);
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
