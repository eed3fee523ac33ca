//! NATS servers with JetStream on loopback, one or a cluster of several,
//! for the tests of relay nodes that share one log.
//!
//! The binary is the pinned one `cargo xtask nats-server` installs in
//! `.tools/` (or the one `CAIRN_NATS_SERVER` names). Every server runs
//! with `sync_interval: always`, as `spec/cluster.md` requires of a
//! deployment, and is stopped by its PID: killed when the cluster is
//! dropped, or on purpose with [`NatsCluster::kill`].

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::WAIT;

/// Where the pinned nats-server is, or a panic that says how to get it.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CAIRN_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(".tools/nats-server");
    assert!(
        path.exists(),
        "no nats-server at {}: run `cargo xtask nats-server` (which `cargo xtask ci` runs) \
         or point CAIRN_NATS_SERVER at one (2.10 or newer)",
        path.display()
    );
    path
}

/// A free TCP port on loopback (free when asked; the server binds it
/// right after), never the same twice in one test process, so that
/// clusters started by tests running side by side do not collide. Another
/// process may still take it first: [`NatsCluster::start`] then starts
/// again on other ports.
fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().expect("a local address").port();
        let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
        if given.insert(port) {
            return port;
        }
    }
}

/// Attempts at starting a cluster whose ports another process took.
const START_ATTEMPTS: usize = 3;

/// One server's ports and files.
#[derive(Debug, Clone)]
struct Node {
    name: String,
    client: u16,
    cluster: u16,
    monitor: u16,
    config: PathBuf,
    log: PathBuf,
}

/// A NATS cluster of one or more JetStream servers on loopback.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    running: Vec<Option<Child>>,
    dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` servers (1, or 3 for a cluster with a quorum) and
    /// waits until JetStream is ready on each.
    pub fn start(size: usize) -> Self {
        assert!(size >= 1, "a cluster has a server");
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(size) {
                Ok(cluster) => return cluster,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "no NATS cluster of {size} started:\n{}",
            failures.join("\n---\n")
        );
    }

    fn try_start(size: usize) -> Result<Self, String> {
        let dir = TempDir::new().expect("a temp dir");
        let nodes: Vec<Node> = (0..size)
            .map(|i| Node {
                name: format!("n{i}"),
                client: free_port(),
                cluster: free_port(),
                monitor: free_port(),
                config: dir.path().join(format!("n{i}.conf")),
                log: dir.path().join(format!("n{i}.log")),
            })
            .collect();
        for node in &nodes {
            let text = config_text(node, &nodes, &dir.path().join(&node.name));
            std::fs::write(&node.config, text).expect("writing a nats config");
        }
        let mut cluster = Self {
            running: nodes.iter().map(|_| None).collect(),
            nodes,
            dir,
        };
        for i in 0..size {
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_ready(i)?;
        }
        Ok(cluster)
    }

    /// The client URLs of every server, running or not.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client))
            .collect()
    }

    /// How many servers the cluster has.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Server `i`'s process id, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.running[i].as_ref().map(Child::id)
    }

    /// SIGKILLs server `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.running[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again on its ports and its JetStream directory,
    /// and waits until it is ready.
    pub fn restart(&mut self, i: usize) {
        assert!(self.running[i].is_none(), "server {i} still runs");
        self.spawn(i);
        if let Err(failure) = self.wait_ready(i) {
            panic!("{failure}");
        }
    }

    /// The name of the server that leads JetStream stream `stream`, as
    /// server `asking` reports it (monitoring endpoint `/jsz`).
    pub fn stream_leader(&self, asking: usize, stream: &str) -> Option<String> {
        let url = format!(
            "http://127.0.0.1:{}/jsz?accounts=true&streams=true",
            self.nodes[asking].monitor
        );
        let body = ureq::get(&url)
            .call()
            .ok()?
            .into_body()
            .read_to_string()
            .ok()?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let accounts = json["account_details"].as_array()?;
        accounts
            .iter()
            .filter_map(|a| a["stream_detail"].as_array())
            .flatten()
            .find(|s| s["name"] == stream)
            .and_then(|s| s["cluster"]["leader"].as_str())
            .map(str::to_owned)
    }

    /// The index of the server named `name` (`n0`, `n1`, ...).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// What server `i` has logged.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// The directory holding every server's configuration and data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("a nats log file");
        let child = Command::new(nats_server_binary())
            .arg("--config")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        self.running[i] = Some(child);
    }

    /// Waits (up to [`WAIT`]) until server `i` reports JetStream healthy
    /// and, in a cluster, knows its metadata leader; what it logged if it
    /// does not.
    fn wait_ready(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.is_ready(i) {
                return Ok(());
            }
            if let Some(child) = self.running[i].as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "nats-server n{i} exited with {status}:\n{}",
                    self.log(i)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nats-server n{i} not ready within {WAIT:?}:\n{}",
                    self.log(i)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl NatsCluster {
    fn is_ready(&self, i: usize) -> bool {
        let monitor = self.nodes[i].monitor;
        let healthy = format!("http://127.0.0.1:{monitor}/healthz?js-enabled-only=true");
        if ureq::get(&healthy).call().is_err() {
            return false;
        }
        if self.nodes.len() == 1 {
            return true;
        }
        let jsz = format!("http://127.0.0.1:{monitor}/jsz");
        let Some(body) = ureq::get(&jsz)
            .call()
            .ok()
            .and_then(|r| r.into_body().read_to_string().ok())
        else {
            return false;
        };
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|json| json["meta_cluster"]["leader"].as_str().map(str::to_owned))
            .is_some_and(|leader| !leader.is_empty())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.running.len() {
            self.kill(i);
        }
    }
}

/// One server's configuration: client, monitoring and (for more than one
/// server) cluster ports on loopback, JetStream on files that are synced
/// at every write, and payloads up to 8 MiB.
fn config_text(node: &Node, all: &[Node], store: &Path) -> String {
    let mut text = format!(
        "server_name: {name}\n\
         listen: 127.0.0.1:{client}\n\
         http: 127.0.0.1:{monitor}\n\
         max_payload: 8MB\n\
         jetstream {{\n  store_dir: \"{store}\"\n  sync_interval: always\n  \
         max_memory_store: 64MB\n  max_file_store: 4GB\n}}\n",
        name = node.name,
        client = node.client,
        monitor = node.monitor,
        store = store.display(),
    );
    if all.len() > 1 {
        let routes: Vec<String> = all
            .iter()
            .filter(|n| n.name != node.name)
            .map(|n| format!("nats-route://127.0.0.1:{}", n.cluster))
            .collect();
        text.push_str(&format!(
            "cluster {{\n  name: cairn\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
            node.cluster,
            routes.join(", ")
        ));
    }
    text
}
