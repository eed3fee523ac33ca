//! Self-hosting as an operator does it, with real `cairn` clients: serve
//! from an empty data directory on defaults, health and metrics, an online
//! backup restored into a new directory, an export imported into another,
//! and a graceful restart while `cairn watch` subscribers run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use std::net::SocketAddr;
use std::path::Path;

use cairn_testkit::metrics::Metrics;
use cli::{Home, Relay, Watch, link, relay_command};
use serde_json::Value;
use tempfile::TempDir;

/// The sum of a Prometheus metric's samples, whatever their labels.
fn metric(metrics: &str, name: &str) -> f64 {
    Metrics::from_text(metrics).sum(name)
}

/// Serves `dir` on `addr` and checks that a device linked now through it
/// replays exactly `notes`.
fn serve_and_check_notes(dir: TempDir, addr: SocketAddr, laptop: &Home, notes: &Value) -> Relay {
    let relay = Relay::serve(dir, addr);
    let fresh = Home::new();
    link(&relay.target, laptop, &fresh, "fresh");
    assert_eq!(&fresh.json(&["note", "list"]), notes);
    relay
}

#[test]
fn serve_on_defaults_then_backup_restore_and_export_import_keep_the_data() {
    let mut relay = Relay::start();
    for file in ["relay.redb", "relay-cert.pem", "relay-key.pem"] {
        assert!(relay.data_dir().join(file).is_file(), "{file} created");
    }
    let printed = relay.operate(&["fingerprint"]);
    assert_eq!(printed.trim(), relay.target.fingerprint);
    assert_eq!(relay.admin_get("/healthz"), (200, "ok\n".to_owned()));

    let (laptop, phone) = (Home::new(), Home::new());
    let user = laptop.init(&relay.target, "laptop");
    for text in ["first", "second", "third"] {
        laptop.ok(&["note", "add", text]);
    }
    link(&relay.target, &laptop, &phone, "phone");
    let notes = laptop.json(&["note", "list"]);
    assert_eq!(cli::texts(&notes), ["first", "second", "third"]);

    let (status, metrics) = relay.admin_get("/metrics");
    assert_eq!(status, 200);
    // init writes 2 envelopes, the notes 3, the approval 2 more.
    assert!(
        metric(&metrics, "cairn_envelopes_stored_total") >= 7.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "cairn_authenticated_total") >= 3.0,
        "{metrics}"
    );
    assert!(metric(&metrics, "cairn_requests_total") >= 7.0, "{metrics}");
    assert!(!metrics.contains(&user), "metrics never name users");

    let out = TempDir::new().unwrap();
    let backup = out.path().join("relay.backup");
    let backup_arg = backup.to_str().unwrap();
    let banned = cairn_testkit::ident::User::new(9).device(1).id.to_text();
    relay.operate(&["ban", &banned]);
    let written = relay.operate(&["backup", "--out", backup_arg]);
    assert!(written.contains("relay-key.pem"), "{written}");
    relay.terminate();
    let checked = relay.operate(&["check"]);
    assert!(checked.contains("database is consistent"), "{checked}");

    // Into an empty data directory: the backup brings the relay back as
    // itself, with the fingerprint the laptop pinned and its bans.
    let restored = TempDir::new().unwrap();
    let said = relay_command(&["restore", "--from", backup_arg], restored.path());
    assert!(
        said.contains("relay-key.pem: restored from the backup"),
        "{said}"
    );
    let bans = std::fs::read_to_string(restored.path().join("banned-devices.txt")).unwrap();
    assert!(bans.contains(&banned), "{bans}");
    let mut restored = serve_and_check_notes(restored, relay.addr, &laptop, &notes);
    assert_eq!(restored.target.fingerprint, relay.target.fingerprint);
    assert_eq!(laptop.json(&["sync"])["queued"], 0, "the laptop carries on");
    restored.terminate();

    let export = out.path().join("relay.export");
    let export_arg = export.to_str().unwrap();
    restored.operate(&["export", "--out", export_arg]);
    // Into an empty data directory, with the identity the backup carries.
    let imported = TempDir::new().unwrap();
    let said = relay_command(
        &[
            "import",
            "--from",
            export_arg,
            "--identity-from",
            backup_arg,
        ],
        imported.path(),
    );
    assert!(
        said.contains("relay-key.pem: restored from the backup"),
        "{said}"
    );
    let again = out.path().join("again.export");
    relay_command(
        &["export", "--out", again.to_str().unwrap()],
        imported.path(),
    );
    assert_eq!(
        std::fs::read(&export).unwrap(),
        std::fs::read(&again).unwrap(),
        "the import holds exactly what was exported"
    );
    let _imported = serve_and_check_notes(imported, relay.addr, &laptop, &notes);
    phone.ok(&["sync"]);
    assert_eq!(phone.json(&["note", "list"]), notes);
}

/// The texts of the posts among `events`.
fn post_texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "post")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `watch` has printed the post `text`; returns the post
/// texts printed up to it.
fn posts_until(watch: &Watch, text: &str) -> Vec<String> {
    post_texts(&watch.events_until(|e| e["kind"] == "post" && e["text"] == text))
}

#[test]
fn watchers_resume_across_a_graceful_restart_and_see_each_post_once() {
    let mut relay = Relay::start();
    let (alice, bob, carol) = (Home::new(), Home::new(), Home::new());
    let a = alice.init(&relay.target, "alice");
    for (home, name) in [(&bob, "bob"), (&carol, "carol")] {
        let id = home.init(&relay.target, name);
        alice.ok(&["friend", "add", &id, "--name", name]);
        home.ok(&["friend", "add", &a, "--name", "alice"]);
    }
    alice.ok(&[
        "audience", "create", "close", "--member", "bob", "--member", "carol",
    ]);
    let mut watchers = [bob.watch(), carol.watch()];
    alice.ok(&["post", "--to", "close", "before"]);
    for watch in &watchers {
        assert_eq!(posts_until(watch, "before"), ["before"]);
    }

    // Around the restart: one post right before SIGTERM, one while the
    // relay is down (queued), one right after it is back, and one once
    // the watchers said they are live again.
    alice.ok(&["post", "--to", "close", "just before the stop"]);
    relay.terminate();
    let queued = alice.json_offline(&["post", "--to", "close", "while down"]);
    assert_eq!(queued["queued"], true);
    relay.restart();
    let pushed = alice.json(&["post", "--to", "close", "just after the restart"]);
    assert_eq!(pushed["queued"], false);
    for watch in &mut watchers {
        watch.wait_live(2);
    }
    alice.ok(&["post", "--to", "close", "after the watchers resumed"]);
    for watch in &watchers {
        assert_eq!(
            posts_until(watch, "after the watchers resumed"),
            [
                "just before the stop",
                "while down",
                "just after the restart",
                "after the watchers resumed"
            ],
            "each post exactly once, in order"
        );
    }
}

/// A relay restored from a backup had lost notes a laptop sent after the
/// backup: the laptop's next change failed for good with `seq_gap`. It
/// now sends again, from its own copies, what the relay lost, and the
/// other devices get every note.
#[test]
fn a_device_sends_again_what_a_restored_relay_lost() {
    let mut relay = Relay::start();
    let (laptop, phone) = (Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    laptop.ok(&["note", "add", "before the backup"]);
    let out = TempDir::new().unwrap();
    let backup = out.path().join("relay.backup");
    let backup_arg = backup.to_str().unwrap();
    relay.operate(&["backup", "--out", backup_arg]);
    for text in ["after one", "after two"] {
        assert_eq!(laptop.json(&["note", "add", text])["queued"], false);
    }
    relay.terminate();
    relay_command(
        &["restore", "--from", backup_arg, "--force"],
        relay.data_dir(),
    );
    relay.restart();

    let added = laptop.json(&["note", "add", "after the restore"]);
    assert_eq!(added["queued"], false, "the laptop is not stuck: {added}");
    assert_eq!(laptop.json(&["status"])["queued"], 0);
    phone.ok(&["sync"]);
    assert_eq!(
        phone.note_texts(),
        [
            "before the backup",
            "after one",
            "after two",
            "after the restore"
        ]
    );
}

/// Sorted, so that devices are compared on what they hold, whatever the
/// order their notes list in.
fn sorted(mut texts: Vec<String>) -> Vec<String> {
    texts.sort();
    texts
}

/// The scenario of a relay restored from a backup while three devices and
/// a friend kept writing and reading: every device ends holding every note
/// and post, none stuck, with nothing but the usual `cairn sync`.
#[test]
fn after_a_restore_every_device_and_friend_converges() {
    let mut relay = Relay::start();
    let (laptop, phone, desktop, bob) = (Home::new(), Home::new(), Home::new(), Home::new());
    let alice_id = laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    link(&relay.target, &laptop, &desktop, "desktop");
    let bob_id = bob.init(&relay.target, "bob");
    laptop.ok(&["friend", "add", &bob_id, "--name", "bob"]);
    bob.ok(&["friend", "add", &alice_id, "--name", "alice"]);
    laptop.ok(&["sync"]);
    laptop.ok(&["audience", "create", "close", "--member", "bob"]);
    laptop.ok(&["note", "add", "before the backup"]);
    for home in [&phone, &desktop, &bob] {
        home.ok(&["sync"]);
    }

    let out = TempDir::new().unwrap();
    let backup = out.path().join("relay.backup");
    let backup_arg = backup.to_str().unwrap();
    relay.operate(&["backup", "--out", backup_arg]);
    for text in ["laptop one", "laptop two", "laptop three"] {
        laptop.ok(&["note", "add", text]);
    }
    laptop.ok(&["post", "--to", "close", "a post after the backup"]);
    // The phone and bob read past what the backup holds.
    phone.ok(&["sync"]);
    bob.ok(&["sync"]);
    assert_eq!(bob.feed_texts(), ["a post after the backup"]);

    relay.terminate();
    let restored = relay_command(
        &["restore", "--from", backup_arg, "--force"],
        relay.data_dir(),
    );
    assert!(
        restored.contains("lacks 4 envelopes in 2 streams"),
        "the restore does not say what it lost: {restored}"
    );
    relay.restart();

    // The desktop writes at the positions the phone had already passed.
    for n in 1..=5 {
        desktop.ok(&["note", "add", &format!("desktop {n}")]);
    }
    let healed = phone.json(&["sync"]);
    assert!(
        healed["relogged"]["rewound"].as_u64().unwrap_or(0) > 0,
        "the phone did not notice the new log: {healed}"
    );
    laptop.ok(&["sync"]);
    for home in [&phone, &desktop, &bob] {
        home.ok(&["sync"]);
    }

    let mut everything: Vec<String> = ["before the backup", "laptop one", "laptop two"]
        .into_iter()
        .chain(["laptop three"])
        .map(String::from)
        .chain((1..=5).map(|n| format!("desktop {n}")))
        .collect();
    everything.sort();
    for (name, home) in [
        ("laptop", &laptop),
        ("phone", &phone),
        ("desktop", &desktop),
    ] {
        assert_eq!(sorted(home.note_texts()), everything, "{name}");
        assert_eq!(home.json(&["status"])["queued"], 0, "{name} is stuck");
    }
    assert_eq!(bob.feed_texts(), ["a post after the backup"]);
    let newcomer = Home::new();
    link(&relay.target, &laptop, &newcomer, "newcomer");
    assert_eq!(
        sorted(newcomer.note_texts()),
        everything,
        "a newly linked device"
    );
}

/// A certificate for `key`, as a CA issues one again at renewal: the same
/// key, another serial number.
fn certificate_for(key: &rcgen::KeyPair, serial: u8) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[serial]));
    params.self_signed(key).unwrap().pem()
}

#[test]
fn a_certificate_renewed_with_the_same_key_keeps_clients_working() {
    let tls = TempDir::new().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let (cert_path, key_path) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&cert_path, certificate_for(&key, 1)).unwrap();
    let env = [
        ("CAIRN_RELAY_TLS__CERT", cert_path.to_str().unwrap()),
        ("CAIRN_RELAY_TLS__KEY", key_path.to_str().unwrap()),
    ];
    let mut relay = Relay::start_with_env(&env);
    let laptop = Home::new();
    laptop.init(&relay.target, "laptop");
    laptop.ok(&["note", "add", "before the renewal"]);

    let renewed = certificate_for(&key, 2);
    assert_ne!(std::fs::read_to_string(&cert_path).unwrap(), renewed);
    std::fs::write(&cert_path, renewed).unwrap();
    // The restart checks that the relay announces the same fingerprint.
    relay.restart_with_env(&env);
    let added = laptop.json(&["note", "add", "after the renewal"]);
    assert_eq!(added["queued"], false, "{added}");
    assert_eq!(laptop.json(&["status"])["queued"], 0);
}

#[test]
fn a_home_follows_its_relay_to_another_address_and_to_another_key() {
    let mut relay = Relay::start();
    let laptop = Home::new();
    laptop.init(&relay.target, "laptop");
    laptop.ok(&["note", "add", "before the move"]);
    let out = TempDir::new().unwrap();
    let backup = out.path().join("relay.backup");
    let backup_arg = backup.to_str().unwrap();
    relay.operate(&["backup", "--out", backup_arg]);
    relay.terminate();

    // The same relay on another machine: the same key, another address.
    let moved_dir = TempDir::new().unwrap();
    relay_command(&["restore", "--from", backup_arg], moved_dir.path());
    let mut moved = Relay::serve(moved_dir, "127.0.0.1:0".parse().unwrap());
    assert_eq!(moved.target.fingerprint, relay.target.fingerprint);
    assert_eq!(laptop.fails(&["sync"]).0, 4, "the old address is gone");
    let said = laptop.ok(&["relay", "set", "--relay", &moved.target.addr]);
    assert!(
        said.contains(&format!(
            "{} (was {})",
            moved.target.addr, relay.target.addr
        )),
        "{said}"
    );
    let added = laptop.json(&["note", "add", "after the move"]);
    assert_eq!(added["queued"], false, "{added}");
    moved.terminate();

    // A relay that starts over with a new key: refused until the operator's
    // new fingerprint is set.
    let rekeyed_dir = TempDir::new().unwrap();
    relay_command(&["restore", "--from", backup_arg], rekeyed_dir.path());
    for file in ["relay-cert.pem", "relay-key.pem"] {
        std::fs::remove_file(rekeyed_dir.path().join(file)).unwrap();
    }
    let rekeyed = Relay::serve(rekeyed_dir, moved.addr);
    assert_ne!(rekeyed.target.fingerprint, relay.target.fingerprint);
    assert_eq!(
        laptop.fails(&["sync"]).0,
        5,
        "a new key is not taken silently"
    );
    laptop.ok(&["relay", "set", "--fingerprint", &rekeyed.target.fingerprint]);
    let shown = laptop.json(&["relay", "show"]);
    assert_eq!(shown["fingerprint"], rekeyed.target.fingerprint.as_str());
    assert_eq!(shown["trust"], "pinned");
    laptop.ok(&["sync"]);
    let mut notes = laptop.note_texts();
    notes.sort();
    assert_eq!(notes, ["after the move", "before the move"]);
}

/// The value of the counter `name` once it has stopped moving for a few
/// retention passes (bounded by the test wait).
fn settled_count(relay: &Relay, name: &str) -> f64 {
    let deadline = std::time::Instant::now() + support::WAIT;
    let read = || metric(&relay.admin_get("/metrics").1, name);
    let (mut value, mut since) = (read(), std::time::Instant::now());
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let now = read();
        if now != value {
            (value, since) = (now, std::time::Instant::now());
        } else if since.elapsed() > std::time::Duration::from_millis(3000) {
            break;
        }
    }
    value
}

/// What the relay has logged once it has logged `needle` (or the wait is
/// over).
fn log_with(relay: &Relay, needle: &str) -> String {
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let log = relay.log();
        if log.contains(needle) || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_relay_logs_logins_closes_bans_and_backups_with_ids_and_no_content() {
    let relay = Relay::start();
    let laptop = Home::new();
    let user = laptop.init(&relay.target, "laptop");
    laptop.ok(&["note", "add", "a note the log never shows"]);
    let device = laptop.device_id();
    let out = TempDir::new().unwrap();
    let backup = out.path().join("relay.backup");
    relay.operate(&["backup", "--out", backup.to_str().unwrap()]);
    relay.operate(&["ban", &device]);

    let log = log_with(&relay, "banned by the operator");
    for line in [
        "authenticated",
        "registered=true",
        "connection closed",
        "backup written",
        "banned by the operator",
    ] {
        assert!(log.contains(line), "no {line:?} in the log: {log}");
    }
    assert!(log.contains(&user) && log.contains(&device), "{log}");
    assert!(!log.contains("a note the log never shows"), "{log}");
    let (code, _) = laptop.fails(&["sync"]);
    assert_eq!(code, 12);
    let log = log_with(&relay, "authentication refused");
    assert!(log.contains("authentication refused"), "{log}");
}

/// Every series an operator can alert on, described and at zero before
/// the first connection.
const DESCRIBED: [&str; 18] = [
    "cairn_connections_total",
    "cairn_connections_open",
    "cairn_authenticated_total",
    "cairn_requests_total",
    "cairn_request_duration_seconds",
    "cairn_refusals_total",
    "cairn_envelopes_stored_total",
    "cairn_envelopes_expired_total",
    "cairn_live_deliveries_total",
    "cairn_subscriber_catch_ups_total",
    "cairn_subscriptions_open",
    "cairn_address_validations_total",
    "cairn_connection_attempts_refused_total",
    "cairn_registrations_total",
    "cairn_build_info",
    "cairn_process_resident_memory_bytes",
    "cairn_process_open_fds",
    "cairn_database_bytes",
];

#[test]
fn a_fresh_relay_describes_every_metric_and_times_requests_by_kind() {
    let relay = Relay::start();
    let (status, text) = relay.admin_get("/metrics");
    assert_eq!(status, 200);
    for name in DESCRIBED {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
    }
    let fresh = Metrics::from_text(text.as_str());
    assert_eq!(fresh.value("cairn_envelopes_stored_total"), 0.0, "{text}");
    assert_eq!(fresh.value("cairn_requests_total{kind=\"hello\"}"), 0.0);
    assert!(
        text.contains("cairn_requests_total{kind=\"hello\"} 0"),
        "{text}"
    );
    let version = format!(
        "cairn_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(fresh.value(&version), 1.0, "{text}");
    assert!(
        fresh.value("cairn_process_resident_memory_bytes") > 1e6,
        "{text}"
    );
    assert!(fresh.value("cairn_process_open_fds") >= 3.0, "{text}");
    let database = std::fs::metadata(relay.data_dir().join("relay.redb")).unwrap();
    assert!(fresh.value("cairn_database_bytes") > 0.0, "{text}");
    assert!(fresh.value("cairn_database_bytes") <= database.len() as f64 * 4.0);

    let laptop = Home::new();
    laptop.init(&relay.target, "laptop");
    laptop.ok(&["note", "add", "timed"]);
    let (_, text) = relay.admin_get("/metrics");
    let busy = Metrics::from_text(text.as_str());
    let hellos = busy.value("cairn_request_duration_seconds_count{kind=\"hello\"}");
    assert!(hellos >= 1.0, "{text}");
    assert_eq!(
        busy.value("cairn_request_duration_seconds_bucket{kind=\"hello\",le=\"+Inf\"}"),
        hellos
    );
    assert!(
        busy.value("cairn_requests_total{kind=\"authenticate\"}") >= 2.0,
        "{text}"
    );
    assert!(busy.value("cairn_connections_total") >= 2.0, "{text}");
    assert!(busy.value("cairn_envelopes_stored_total") >= 3.0, "{text}");
}

/// The registration policy and limits in the configuration file change at
/// `SIGHUP` or `cairn-relay reload`, without a restart; a reload names what
/// only a restart applies, and a file that does not load changes nothing.
#[test]
fn a_configuration_file_edited_takes_effect_at_reload() {
    let files = TempDir::new().unwrap();
    let file = files.path().join("relay.toml");
    std::fs::write(&file, "[registration]\npolicy = \"open\"\n").unwrap();
    let relay = Relay::start_with_env(&[("CAIRN_RELAY_CONFIG", file.to_str().unwrap())]);
    let target = &relay.target;
    Home::new().init(target, "first");

    let invite_only = "[registration]\npolicy = \"invite\"\ninvites = [\"from-the-file\"]\n";
    std::fs::write(&file, invite_only).unwrap();
    relay.hangup();
    let log = log_with(&relay, "registration.policy");
    assert!(
        log.contains(r#"registration.policy: "open" -> "invite""#),
        "{log}"
    );
    assert!(
        !log.contains("from-the-file"),
        "invite codes stay out of logs: {log}"
    );
    let second = Home::new();
    let init = [
        "init",
        "--relay",
        &target.addr,
        "--fingerprint",
        &target.fingerprint,
    ];
    let (code, message) = second.fails(&init);
    assert_eq!(code, 6, "registration refused after the reload: {message}");
    second.create(&["init", "--invite", "from-the-file"], target, "second");

    std::fs::write(&file, "this is = not toml [").unwrap();
    relay.hangup();
    log_with(&relay, "reload failed");
    second.ok(&["note", "add", "still admitted"]);
    let third = Home::new();
    assert_eq!(third.fails(&init).0, 6, "a broken file changed nothing");

    let back_open = "[registration]\npolicy = \"open\"\n[limits]\nuser_quota_bytes = 5\n";
    std::fs::write(&file, back_open).unwrap();
    let said: Value = serde_json::from_str(&relay.operate(&["reload"])).unwrap();
    let applied = said["applied"].to_string();
    assert!(applied.contains("registration.policy"), "{said}");
    assert!(
        applied.contains("registration.invites: 1 codes -> 0 codes"),
        "{said}"
    );
    let later = said["at_restart"].to_string();
    assert!(later.contains("limits.user_quota_bytes"), "{said}");
    third.init(target, "third");
    third.ok(&["note", "add", "the quota waits for a restart"]);
}

/// A certificate authority of the operator's own (standing in for a
/// public one) and a relay certificate for 127.0.0.1 it issues, with a new
/// key each time, as CAs renew.
struct Authority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Authority {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cairn test authority");
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// Writes a new key and a certificate for it to `cert` and `key`.
    fn issue(&self, cert: &Path, key: &Path) {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let leaf = params.signed_by(&leaf_key, &self.issuer).unwrap();
        std::fs::write(cert, leaf.pem()).unwrap();
        std::fs::write(key, leaf_key.serialize_pem()).unwrap();
    }
}

/// `cairn ARGS...` in `home` with `ca_file` as the system's authorities;
/// the exit code and stdout or stderr.
fn with_authorities(home: &Home, ca_file: &Path, args: &[&str]) -> (i32, String) {
    let output = home
        .cmd(args)
        .env("SSL_CERT_FILE", ca_file)
        .output()
        .unwrap();
    let text = match output.status.success() {
        true => output.stdout,
        false => output.stderr,
    };
    let code = output.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&text).into_owned())
}

#[test]
fn a_relay_with_a_ca_issued_certificate_needs_no_fingerprint_and_survives_a_new_key() {
    let tls = TempDir::new().unwrap();
    let authority = Authority::new();
    let ca_file = tls.path().join("authorities.pem");
    std::fs::write(&ca_file, &authority.pem).unwrap();
    let (cert, key) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    authority.issue(&cert, &key);
    let env = [
        ("CAIRN_RELAY_TLS__CERT", cert.to_str().unwrap()),
        ("CAIRN_RELAY_TLS__KEY", key.to_str().unwrap()),
    ];
    let mut relay = Relay::start_with_env(&env);
    let addr = relay.target.addr.clone();
    let init = ["init", "--relay", &addr, "--name", "laptop"];

    // Without the authority among the system's, nothing is trusted.
    let stranger = Home::new();
    let empty = tls.path().join("no-authorities.pem");
    std::fs::write(&empty, "").unwrap();
    let (code, said) = with_authorities(&stranger, &empty, &init);
    assert_eq!(code, 5, "{said}");
    assert!(
        said.contains("not trusted by this system's certificate authorities"),
        "{said}"
    );
    assert!(
        said.contains("--fingerprint"),
        "the hint names the other way: {said}"
    );

    let laptop = Home::new();
    let (code, said) = with_authorities(&laptop, &ca_file, &init);
    assert_eq!(code, 0, "{said}");
    let (_, shown) = with_authorities(&laptop, &ca_file, &["--json", "relay", "show"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["trust"], "authorities", "{shown}");
    with_authorities(&laptop, &ca_file, &["note", "add", "before the renewal"]);

    // Renewed with a new key: a pinned home would refuse it; this one
    // goes on.
    let before = std::fs::read(&key).unwrap();
    authority.issue(&cert, &key);
    assert_ne!(std::fs::read(&key).unwrap(), before);
    relay.restart_as(&env);
    let (code, said) = with_authorities(&laptop, &ca_file, &["--json", "note", "add", "after"]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(
        serde_json::from_str::<Value>(&said).unwrap()["queued"],
        false
    );

    // A pin set later replaces the authorities, and they can come back.
    let pinned = relay.operate(&["fingerprint"]);
    with_authorities(
        &laptop,
        &ca_file,
        &["relay", "set", "--fingerprint", pinned.trim()],
    );
    let (code, said) = with_authorities(&laptop, &ca_file, &["relay", "show"]);
    assert!(code == 0 && said.contains(pinned.trim()), "{said}");
    let (code, said) = with_authorities(&laptop, &ca_file, &["relay", "set", "--authorities"]);
    assert!(
        code == 0 && said.contains("certificate authorities, for 127.0.0.1"),
        "{said}"
    );
    let (code, said) = with_authorities(&laptop, &ca_file, &["sync"]);
    assert_eq!(code, 0, "{said}");
}

/// Retention in force: a relay keeps friends and direct streams for
/// seconds here (days in practice). What expired goes while a subscriber
/// stays connected and keeps receiving; a device that reads later is told
/// what it can no longer read, its history checks pass, private notes are
/// all there, and `check` is clean.
#[test]
fn retention_expires_old_posts_and_grants_while_a_subscriber_stays_connected() {
    let mut relay = Relay::start_with_env(&[
        ("CAIRN_RELAY_RETENTION__FRIENDS", "6s"),
        ("CAIRN_RELAY_RETENTION__DIRECT", "6s"),
        ("CAIRN_RELAY_RETENTION__EVERY", "1s"),
    ]);
    let (alice, bob) = (Home::new(), Home::new());
    let a = alice.init(&relay.target, "alice");
    let b = bob.init(&relay.target, "bob");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    alice.ok(&["note", "add", "a note kept for good"]);
    alice.ok(&["audience", "create", "close", "--member", "bob"]);
    let watch = bob.watch();
    alice.ok(&["post", "--to", "close", "an old post"]);
    assert_eq!(posts_until(&watch, "an old post"), ["an old post"]);

    // The post and the key grant to bob expire, over one pass or more;
    // bob stays subscribed.
    let log = log_with(&relay, "expired envelopes");
    assert!(log.contains("expired envelopes"), "{log}");
    let expired = settled_count(&relay, "cairn_envelopes_expired_total");
    assert!(expired >= 2.0, "the grant and the post at least: {expired}");

    // A device linked now reads alice's friends stream after it expired.
    let phone = Home::new();
    let linked = link(&relay.target, &alice, &phone, "phone");
    assert!(linked["expired"].as_u64().unwrap() >= 1, "{linked}");
    alice.ok(&["post", "--to", "close", "a new post"]);
    assert_eq!(posts_until(&watch, "a new post"), ["a new post"]);
    phone.ok(&["sync"]);
    assert_eq!(phone.note_texts(), ["a note kept for good"]);
    let feed = phone.json(&["feed"]).to_string();
    assert!(
        feed.contains("a new post") && !feed.contains("an old post"),
        "{feed}"
    );
    assert_eq!(phone.json(&["sync"])["expired"], 0, "told once");
    bob.ok(&["sync"]);

    relay.terminate();
    let checked = relay.operate(&["check"]);
    assert!(checked.contains("database is consistent"), "{checked}");
}

/// A relay out of space (a full disk, or here `[storage]
/// max_database_bytes`) refuses new writes with `storage_full` and keeps
/// serving reads and live subscriptions; it says so once in its log, in
/// `/healthz` and in `cairn_storage_full`. Clients keep their changes
/// queued and say why. Raising the limit by a reload lets everything in
/// at once, without a restart, and a watch running throughout gets it.
#[test]
fn a_full_relay_keeps_serving_reads_and_takes_writes_again_when_room_returns() {
    let files = TempDir::new().unwrap();
    let file = files.path().join("relay.toml");
    std::fs::write(&file, "").unwrap();
    let relay = Relay::start_with_env(&[("CAIRN_RELAY_CONFIG", file.to_str().unwrap())]);
    let (laptop, phone, desktop) = (Home::new(), Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    link(&relay.target, &laptop, &desktop, "desktop");
    desktop.ok(&["sync"]);
    let watch = desktop.watch();
    laptop.ok(&["note", "add", "before the disk filled"]);

    // The database may use the free pages it has, and grow no more.
    let size = std::fs::metadata(relay.data_dir().join("relay.redb"))
        .unwrap()
        .len();
    std::fs::write(&file, format!("[storage]\nmax_database_bytes = {size}\n")).unwrap();
    relay.hangup();
    log_with(&relay, "storage.max_database_bytes");
    let big = "x".repeat(60_000);
    let mut queued = Vec::new();
    while queued.len() < 2 {
        let output = laptop
            .cmd(&["--json", "note", "add", &big])
            .output()
            .unwrap();
        assert!(output.status.success(), "saved means saved: {output:?}");
        let added: Value = serde_json::from_slice(&output.stdout).unwrap();
        if added["queued"] == true {
            let warning = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(warning.contains("out of storage space"), "{warning}");
            queued.push(added["id"].as_str().unwrap().to_owned());
        }
        assert!(
            queued.len() + 50 > laptop.note_texts().len(),
            "the limit never bit"
        );
    }

    // Reads go on: the phone pulls what was stored before.
    let pulled = phone.json(&["sync"]);
    assert!(pulled["pulled"].as_u64().unwrap() >= 1, "{pulled}");
    assert_eq!(
        pulled["relay_full"], false,
        "the phone sent nothing: {pulled}"
    );
    assert!(
        phone
            .note_texts()
            .contains(&"before the disk filled".to_owned())
    );
    let synced = laptop.json(&["sync"]);
    assert_eq!(synced["relay_full"], true, "{synced}");
    assert_eq!(synced["queued"], 2, "{synced}");
    let said = laptop.ok(&["sync"]);
    assert!(
        said.contains("out of storage space: 2 changes stay queued"),
        "{said}"
    );
    let (status, health) = relay.admin_get("/healthz");
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("storage full"), "{health}");
    let metrics = Metrics::from_text(relay.admin_get("/metrics").1);
    assert_eq!(metrics.value("cairn_storage_full"), 1.0);
    let log = log_with(&relay, "out of space");
    assert_eq!(
        log.matches("the database is out of space").count(),
        1,
        "said once: {log}"
    );

    // Room again: the queued notes go in at the next sync, and the watch
    // running throughout prints them.
    std::fs::write(&file, "").unwrap();
    relay.hangup();
    log_with(&relay, "max_database_bytes: ");
    let synced = laptop.json(&["sync"]);
    assert_eq!(synced["relay_full"], false, "{synced}");
    assert_eq!(synced["queued"], 0, "{synced}");
    let last = queued.last().unwrap().as_str();
    watch.events_until(|e| e["kind"] == "note" && e["id"] == last);
    phone.ok(&["sync"]);
    assert_eq!(phone.note_texts(), laptop.note_texts());
    assert_eq!(relay.admin_get("/healthz"), (200, "ok\n".to_owned()));
    let metrics = Metrics::from_text(relay.admin_get("/metrics").1);
    assert_eq!(metrics.value("cairn_storage_full"), 0.0);
    log_with(&relay, "has room again");
    drop(watch);
    let mut relay = relay;
    relay.terminate();
    let checked = relay.operate(&["check"]);
    assert!(checked.contains("database is consistent"), "{checked}");
}
