//! What the two structure-aware targets (`store_ops`, `requests`) share:
//! a cast of a few users and their devices, whose signed envelopes and
//! statements are remembered, and an empty store copied for each input.
//!
//! Signing is remembered because ed25519 is deterministic: an envelope or
//! statement made twice from the same parts is the same bytes, so the
//! memo changes no outcome. It matters because the fuzzer's inputs are
//! mutations of one another and keep asking for the same ones, and
//! coverage instrumentation makes each signature several times slower.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use cairn_store::{Config, RedbStore};
use cairn_testkit::{Device, User};
use cairn_wire::{
    DeviceCertificate, DeviceRevocation, Envelope, EnvelopeId, FriendGrant, FriendRevocation,
    Scope, StreamId, UserId,
};

pub const USERS: usize = 3;
pub const DEVICES: usize = 2;

/// Past this many remembered signatures of one kind, the memo starts over
/// (a few tens of megabytes at most).
const MEMO_ENTRIES: usize = 100_000;

/// A statement by `signer` about user `subject` (or its device `device`),
/// dated `when`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct StatementKey {
    signer: usize,
    subject: usize,
    device: usize,
    when: u64,
}

/// An envelope by device `d` of user `u`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct EnvelopeKey {
    u: usize,
    d: usize,
    seq: u64,
    prev: EnvelopeId,
    selector: u8,
}

#[derive(Default)]
struct Memo {
    envelopes: HashMap<EnvelopeKey, Envelope>,
    certificates: HashMap<StatementKey, DeviceCertificate>,
    revocations: HashMap<StatementKey, DeviceRevocation>,
    grants: HashMap<StatementKey, FriendGrant>,
    unfriends: HashMap<StatementKey, FriendRevocation>,
}

/// `map[key]`, made by `make` the first time.
fn remembered<K, V>(map: &mut HashMap<K, V>, key: K, make: impl FnOnce() -> V) -> V
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    if map.len() >= MEMO_ENTRIES {
        map.clear();
    }
    map.entry(key).or_insert_with(make).clone()
}

/// A few users with a few devices each, from key domain `domain`.
pub struct Cast {
    pub users: Vec<User>,
    pub devices: Vec<Vec<Device>>,
    memo: Mutex<Memo>,
}

impl Cast {
    pub fn new(domain: u8) -> Self {
        let users: Vec<User> = (0..USERS as u32)
            .map(|n| User::in_domain(domain, n))
            .collect();
        let devices = users
            .iter()
            .map(|u| (0..DEVICES as u32).map(|d| u.device(d)).collect())
            .collect();
        Self {
            users,
            devices,
            memo: Mutex::default(),
        }
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The scope `selector` picks for an envelope by user `author`: its
    /// private or friends stream, its own direct audience or the next
    /// user's.
    pub fn scope(&self, selector: u8, author: usize) -> Scope {
        match selector % 4 {
            0 => Scope::Private,
            1 => Scope::Friends,
            2 => Scope::Direct(self.users[author].id),
            _ => Scope::Direct(self.users[(author + 1) % USERS].id),
        }
    }

    /// The stream of user `u` that `selector` picks.
    pub fn stream(&self, selector: u8, u: usize) -> StreamId {
        StreamId::new(self.users[u].id, self.scope(selector, u))
    }

    /// An envelope by device `d` of user `u` at `seq` after `prev`, in the
    /// scope `selector` picks, whose 16-byte payload is `selector`.
    pub fn envelope(
        &self,
        u: usize,
        d: usize,
        seq: u64,
        prev: EnvelopeId,
        selector: u8,
    ) -> Envelope {
        let key = EnvelopeKey {
            u,
            d,
            seq,
            prev,
            selector,
        };
        remembered(&mut self.memo().envelopes, key, || {
            let scope = self.scope(selector, u);
            self.devices[u][d].envelope_after(self.users[u].id, seq, prev, scope, &[selector; 16])
        })
    }

    /// User `signer` certifies device `device` of user `subject`.
    pub fn certify(
        &self,
        signer: usize,
        subject: usize,
        device: usize,
        when: u64,
    ) -> DeviceCertificate {
        let key = StatementKey {
            signer,
            subject,
            device,
            when,
        };
        remembered(&mut self.memo().certificates, key, || {
            self.users[signer].certify(self.devices[subject][device].id, when)
        })
    }

    /// User `signer` revokes device `device` of user `subject`.
    pub fn revoke(
        &self,
        signer: usize,
        subject: usize,
        device: usize,
        when: u64,
    ) -> DeviceRevocation {
        let key = StatementKey {
            signer,
            subject,
            device,
            when,
        };
        remembered(&mut self.memo().revocations, key, || {
            self.users[signer].revoke_at(self.devices[subject][device].id, when)
        })
    }

    /// User `signer` grants user `friend` its friends stream.
    pub fn grant(&self, signer: usize, friend: usize, when: u64) -> FriendGrant {
        let key = StatementKey {
            signer,
            subject: friend,
            device: 0,
            when,
        };
        remembered(&mut self.memo().grants, key, || {
            self.users[signer].grant_at(self.users[friend].id, when)
        })
    }

    /// User `signer` withdraws its grant to user `friend`.
    pub fn unfriend(&self, signer: usize, friend: usize, when: u64) -> FriendRevocation {
        let key = StatementKey {
            signer,
            subject: friend,
            device: 0,
            when,
        };
        remembered(&mut self.memo().unfriends, key, || {
            self.users[signer].unfriend_at(self.users[friend].id, when)
        })
    }

    /// The id of user `u`.
    pub fn user(&self, u: usize) -> UserId {
        self.users[u].id
    }
}

/// A fresh, empty store made once, copied for each input: creating one
/// costs syncs and renames that would dominate every run. Kept in memory
/// (`/dev/shm`) where there is one.
pub struct Template {
    dir: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
}

impl Template {
    pub fn new() -> Self {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("a temp dir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let store = RedbStore::open(dir.path().join("template.redb")).expect("a store");
        runtime.block_on(store.close());
        Self { dir, runtime }
    }

    /// The directory the copies live in.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A copy of the empty store, opened without syncs, with a small page
    /// cache, and writing and reading on this thread: handing each request
    /// to the writer thread or the blocking pool and back cost more than
    /// the request.
    pub fn fresh_store(&self) -> RedbStore {
        let path = self.dir.path().join("run.redb");
        std::fs::copy(self.dir.path().join("template.redb"), &path).expect("a copy");
        let config = Config {
            durable: false,
            cache_bytes: 1 << 20,
            inline: true,
            ..Config::default()
        };
        RedbStore::open_with(&path, config).expect("a store")
    }
}

impl Default for Template {
    fn default() -> Self {
        Self::new()
    }
}
