//! Property test: random interleavings of appends (duplicates, gaps,
//! equivocations, foreign and unknown devices), device and friend
//! statements, acknowledgements and reads, run against a plain in-memory
//! model of the rules in `spec/storage.md` and against both backends: the
//! redb store, and a cluster node's store on a NATS JetStream log
//! (`cairn-cluster`, on a real nats-server on loopback). Every outcome and
//! every read must agree, and the store must verify clean.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_store::{EncodedRead, ItemOutcome, Refusal, StatementOutcome, StatementRefusal, Store};
use cairn_wire::{
    Cursor, DeviceId, Envelope, EnvelopeId, FIRST_IN_STREAM, Scope, StreamId, UserId,
};
use common::{Device, User, fast, temp_store};
use proptest::prelude::*;

const USERS: usize = 3;
const DEVICES: usize = 3;

/// How an envelope of a batch is chosen, resolved against the model when
/// the batch is built so that "next" means next after earlier items.
#[derive(Debug, Clone)]
enum SeqChoice {
    Next,
    Duplicate(usize),
    Gap(u64),
    Equivocate(u64),
    Zero,
    /// The next seq, naming the start of the stream as `prev` (a broken
    /// chain once the device wrote there).
    Restart,
}

#[derive(Debug, Clone)]
struct ItemSpec {
    user: usize,
    device: usize,
    claim: Option<usize>,
    seq: SeqChoice,
    scope: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<ItemSpec>),
    Register(usize, usize, u64),
    Revoke(usize, usize, u64),
    Grant(usize, usize, u64),
    Unfriend(usize, usize, u64),
    Ack(usize, usize, usize, u64),
    Read(usize, usize, u64, usize),
}

fn seq_choice() -> impl Strategy<Value = SeqChoice> {
    prop_oneof![
        6 => Just(SeqChoice::Next),
        2 => any::<usize>().prop_map(SeqChoice::Duplicate),
        1 => (0u64..3).prop_map(SeqChoice::Gap),
        1 => any::<u64>().prop_map(SeqChoice::Equivocate),
        1 => Just(SeqChoice::Zero),
        1 => Just(SeqChoice::Restart),
    ]
}

fn item_spec() -> impl Strategy<Value = ItemSpec> {
    let claim = prop_oneof![8 => Just(None), 1 => (0..USERS).prop_map(Some)];
    (0..USERS, 0..DEVICES, claim, seq_choice(), 0..4usize).prop_map(
        |(user, device, claim, seq, scope)| ItemSpec {
            user,
            device,
            claim,
            seq,
            scope,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let device = 0..DEVICES;
    let ms = 0u64..5;
    prop_oneof![
        8 => prop::collection::vec(item_spec(), 1..6).prop_map(Op::Append),
        3 => (user.clone(), device.clone(), ms.clone()).prop_map(|(u, d, t)| Op::Register(u, d, t)),
        1 => (user.clone(), device.clone(), ms.clone()).prop_map(|(u, d, t)| Op::Revoke(u, d, t)),
        1 => (user.clone(), user.clone(), ms.clone()).prop_map(|(a, b, t)| Op::Grant(a, b, t)),
        1 => (user.clone(), user.clone(), ms.clone()).prop_map(|(a, b, t)| Op::Unfriend(a, b, t)),
        1 => (user.clone(), device.clone(), 0..4usize, 0u64..8)
            .prop_map(|(u, d, s, p)| Op::Ack(u, d, s, p)),
        2 => (user, 0..4usize, 0u64..6, 1usize..5).prop_map(|(u, s, a, l)| Op::Read(u, s, a, l)),
    ]
}

/// The rules, as plainly as they can be written.
#[derive(Debug, Default)]
struct Model {
    certs: HashMap<(UserId, DeviceId), u64>,
    revoked: HashMap<(UserId, DeviceId), u64>,
    seqs: HashMap<(UserId, DeviceId), Vec<EnvelopeId>>,
    ids: HashMap<EnvelopeId, u64>,
    streams: BTreeMap<StreamId, Vec<Envelope>>,
    friends: HashMap<(UserId, UserId), (u64, u8)>,
    acks: BTreeMap<(DeviceId, StreamId), u64>,
    all: Vec<Envelope>,
    chains: HashMap<(UserId, DeviceId, StreamId), EnvelopeId>,
}

impl Model {
    fn chain_head(&self, user: UserId, device: DeviceId, stream: StreamId) -> EnvelopeId {
        self.chains
            .get(&(user, device, stream))
            .copied()
            .unwrap_or(FIRST_IN_STREAM)
    }

    fn last_seq(&self, user: UserId, device: DeviceId) -> u64 {
        self.seqs.get(&(user, device)).map_or(0, |s| s.len() as u64)
    }

    fn append(&mut self, envelope: &Envelope) -> ItemOutcome {
        let h = envelope.header();
        let key = (h.author, h.device);
        if self.revoked.contains_key(&key) {
            return ItemOutcome::Refused(Refusal::DeviceRevoked);
        }
        if !self.certs.contains_key(&key) {
            let foreign = self.certs.keys().any(|(_, d)| *d == h.device);
            let refusal = if foreign {
                Refusal::NotAuthor
            } else {
                Refusal::UnknownDevice
            };
            return ItemOutcome::Refused(refusal);
        }
        let id = envelope.id();
        if let Some(&position) = self.ids.get(&id) {
            return ItemOutcome::Duplicate { id, position };
        }
        let last = self.last_seq(h.author, h.device);
        if h.seq == 0 || h.seq > last + 1 {
            return ItemOutcome::Refused(Refusal::SeqGap { expected: last + 1 });
        }
        if h.seq <= last {
            let existing = self.seqs[&key][usize::try_from(h.seq - 1).unwrap()];
            return ItemOutcome::Refused(Refusal::Equivocation { existing });
        }
        let head = self.chain_head(h.author, h.device, envelope.stream());
        if h.prev != head {
            return ItemOutcome::Refused(Refusal::BrokenChain { last: head });
        }
        self.chains
            .insert((h.author, h.device, envelope.stream()), id);
        let stream = self.streams.entry(envelope.stream()).or_default();
        stream.push(envelope.clone());
        let position = stream.len() as u64;
        self.ids.insert(id, position);
        self.seqs.entry(key).or_default().push(id);
        self.all.push(envelope.clone());
        ItemOutcome::Stored { id, position }
    }

    fn register(&mut self, user: UserId, device: DeviceId, t: u64) -> StatementOutcome {
        if self.revoked.contains_key(&(user, device)) {
            return StatementOutcome::Refused(StatementRefusal::DeviceRevoked);
        }
        match self.certs.get(&(user, device)) {
            Some(&t0) if t0 == t => StatementOutcome::Unchanged,
            Some(&t0) if t0 > t => StatementOutcome::Refused(StatementRefusal::Stale),
            _ => {
                self.certs.insert((user, device), t);
                StatementOutcome::Applied
            }
        }
    }

    fn revoke(&mut self, user: UserId, device: DeviceId, t: u64) -> StatementOutcome {
        if self.revoked.contains_key(&(user, device)) {
            return StatementOutcome::Unchanged;
        }
        if !self.certs.contains_key(&(user, device)) {
            return StatementOutcome::Refused(StatementRefusal::UnknownDevice);
        }
        self.revoked.insert((user, device), t);
        StatementOutcome::Applied
    }

    /// kind 0: grant, 1: revocation (wins at equal times).
    fn friend(&mut self, granter: UserId, grantee: UserId, t: u64, kind: u8) -> StatementOutcome {
        match self.friends.get(&(granter, grantee)) {
            Some(&stored) if stored == (t, kind) => StatementOutcome::Unchanged,
            Some(&stored) if stored > (t, kind) => {
                StatementOutcome::Refused(StatementRefusal::Stale)
            }
            _ => {
                self.friends.insert((granter, grantee), (t, kind));
                StatementOutcome::Applied
            }
        }
    }

    fn ack(&mut self, device: DeviceId, stream: StreamId, position: u64) -> u64 {
        let head = self.streams.get(&stream).map_or(0, |s| s.len() as u64);
        let old = self.acks.get(&(device, stream)).copied().unwrap_or(0);
        let new = old.max(position.min(head));
        if new > 0 {
            self.acks.insert((device, stream), new);
        }
        new
    }

    fn granters_of(&self, grantee: UserId) -> BTreeSet<UserId> {
        self.friends
            .iter()
            .filter(|((_, e), (_, kind))| *e == grantee && *kind == 0)
            .map(|((g, _), _)| *g)
            .collect()
    }
}

struct World {
    users: Vec<User>,
    devices: Vec<Vec<Device>>,
    counter: u8,
}

impl World {
    fn new() -> Self {
        let users: Vec<User> = (0..USERS).map(|u| User::new(u as u32 + 1)).collect();
        let devices = users
            .iter()
            .enumerate()
            .map(|(u, user)| {
                (0..DEVICES)
                    .map(|d| user.device((u * 10 + d) as u32))
                    .collect()
            })
            .collect();
        Self {
            users,
            devices,
            counter: 0,
        }
    }

    fn stream(&self, owner: usize, scope: usize) -> StreamId {
        let scope = match scope {
            0 => Scope::Private,
            1 => Scope::Friends,
            n => Scope::Direct(self.users[(owner + n) % USERS].id),
        };
        StreamId::new(self.users[owner].id, scope)
    }

    /// Builds the batch item by item, updating `model` as it goes.
    fn batch(
        &mut self,
        model: &mut Model,
        specs: &[ItemSpec],
    ) -> (Vec<Envelope>, Vec<ItemOutcome>) {
        let mut batch = Vec::new();
        let mut expected = Vec::new();
        for spec in specs {
            let envelope = self.envelope(model, spec);
            expected.push(model.append(&envelope));
            batch.push(envelope);
        }
        (batch, expected)
    }

    fn envelope(&mut self, model: &Model, spec: &ItemSpec) -> Envelope {
        let device = &self.devices[spec.user][spec.device];
        let author = self.users[spec.claim.unwrap_or(spec.user)].id;
        let last = model.last_seq(author, device.id);
        let scope = self
            .stream(spec.claim.unwrap_or(spec.user), spec.scope)
            .scope;
        self.counter = self.counter.wrapping_add(1);
        let seq = match spec.seq {
            SeqChoice::Duplicate(i) if !model.all.is_empty() => {
                return model.all[i % model.all.len()].clone();
            }
            SeqChoice::Next | SeqChoice::Duplicate(_) => last + 1,
            SeqChoice::Gap(k) => last + 2 + k,
            SeqChoice::Equivocate(i) if last > 0 => 1 + i % last,
            SeqChoice::Equivocate(_) | SeqChoice::Restart => last + 1,
            SeqChoice::Zero => 0,
        };
        let stream = StreamId::new(author, scope);
        let prev = match spec.seq {
            SeqChoice::Restart => FIRST_IN_STREAM,
            _ => model.chain_head(author, device.id, stream),
        };
        device.envelope_after(author, seq, prev, scope, &[self.counter])
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn run(ops: Vec<Op>) {
    run_with(ops, fast());
}

fn run_with(ops: Vec<Op>, config: cairn_store::Config) {
    let (_dir, store) = temp_store(config);
    runtime().block_on(async {
        run_on(&store, ops).await;
        store.close().await;
    });
}

async fn run_on<S: Store>(store: &S, ops: Vec<Op>) {
    let mut world = World::new();
    let mut model = Model::default();
    for op in ops {
        step(store, &mut world, &mut model, op).await;
    }
    compare_everything(store, &world, &model).await;
}

async fn step<S: Store>(store: &S, world: &mut World, model: &mut Model, op: Op) {
    match op {
        Op::Append(specs) => {
            let (batch, expected) = world.batch(model, &specs);
            assert_eq!(store.append(batch).await.unwrap(), expected);
        }
        Op::Register(u, d, t) => {
            let (user, device) = (&world.users[u], &world.devices[u][d]);
            let got = store
                .register_device(user.certify(device.id, t))
                .await
                .unwrap();
            assert_eq!(got, model.register(user.id, device.id, t));
        }
        Op::Revoke(u, d, t) => {
            let (user, device) = (&world.users[u], &world.devices[u][d]);
            let got = store
                .revoke_device(user.revoke_at(device.id, t))
                .await
                .unwrap();
            assert_eq!(got, model.revoke(user.id, device.id, t));
        }
        Op::Grant(a, b, t) => {
            let (granter, grantee) = (&world.users[a], world.users[b].id);
            let got = store
                .grant_friend(granter.grant_at(grantee, t))
                .await
                .unwrap();
            assert_eq!(got, model.friend(granter.id, grantee, t, 0));
        }
        Op::Unfriend(a, b, t) => {
            let (granter, grantee) = (&world.users[a], world.users[b].id);
            let got = store
                .revoke_friend(granter.unfriend_at(grantee, t))
                .await
                .unwrap();
            assert_eq!(got, model.friend(granter.id, grantee, t, 1));
        }
        Op::Ack(u, d, s, position) => {
            let device = world.devices[u][d].id;
            let stream = world.stream(u, s);
            let got = store
                .ack(device, Cursor { stream, position })
                .await
                .unwrap();
            assert_eq!(got, model.ack(device, stream, position));
        }
        Op::Read(u, s, after, limit) => {
            let stream = world.stream(u, s);
            let read = store.read_stream(stream, after, limit).await.unwrap();
            // The same page as stored bytes is the decoded page encoded.
            let encoded = store
                .read_stream_encoded(stream, after, limit, usize::MAX)
                .await
                .unwrap();
            assert_eq!(encoded, EncodedRead::from(read.clone()));
            let all = model.streams.get(&stream).cloned().unwrap_or_default();
            let expected: Vec<(u64, Envelope)> = all
                .into_iter()
                .zip(1u64..)
                .map(|(e, p)| (p, e))
                .filter(|(p, _)| *p > after)
                .take(limit)
                .collect();
            let got: Vec<(u64, Envelope)> = read
                .entries
                .into_iter()
                .map(|e| (e.position, e.envelope))
                .collect();
            assert_eq!(got, expected);
        }
    }
}

async fn compare_everything<S: Store>(store: &S, world: &World, model: &Model) {
    let heads: Vec<_> = store.all_streams().await.unwrap();
    assert_eq!(heads.len(), model.streams.len());
    for (stream, envelopes) in &model.streams {
        let read = store.read_stream(*stream, 0, usize::MAX).await.unwrap();
        let got: Vec<Envelope> = read.entries.into_iter().map(|e| e.envelope).collect();
        assert_eq!(&got, envelopes);
    }
    for (u, user) in world.users.iter().enumerate() {
        for device in &world.devices[u] {
            let record = store.device(user.id, device.id).await.unwrap();
            let key = (user.id, device.id);
            let known = model.certs.contains_key(&key) || model.revoked.contains_key(&key);
            assert_eq!(record.is_some(), known);
            if let Some(record) = record {
                assert_eq!(record.last_seq, model.last_seq(user.id, device.id));
                assert_eq!(
                    record.revocation.is_some(),
                    model.revoked.contains_key(&key)
                );
            }
            let acked: BTreeMap<_, _> = store
                .acked(device.id)
                .await
                .unwrap()
                .into_iter()
                .map(|c| ((device.id, c.stream), c.position))
                .collect();
            let expected: BTreeMap<_, _> = model
                .acks
                .iter()
                .filter(|((d, _), _)| *d == device.id)
                .map(|(k, v)| (*k, *v))
                .collect();
            assert_eq!(acked, expected);
        }
        let granters: BTreeSet<_> = store
            .granters_of(user.id)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(granters, model.granters_of(user.id));
        let grants = store.grants_by(user.id).await.unwrap().len();
        let expected = model
            .friends
            .iter()
            .filter(|((g, _), (_, k))| *g == user.id && *k == 0);
        assert_eq!(grants, expected.count());
    }
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.envelopes, model.all.len() as u64);
    assert_eq!(stats.streams, model.streams.len() as u64);
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }

    /// The same property on a store that writes and reads on the caller's
    /// thread (`Config::inline`, the fuzz targets' store).
    #[test]
    fn an_inline_store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run_with(ops, cairn_store::Config { inline: true, ..fast() });
    }
}

/// Cases run against a cluster node's store: fewer, since every write is
/// a round trip to the log.
const CLUSTER_CASES: u32 = 16;

/// The same property on a cluster node's store: one nats-server for the
/// whole test, a new log (stream) for each case.
#[test]
fn a_cluster_nodes_store_agrees_with_the_model() {
    use cairn_cluster::{ClusterStore, JetStreamConfig};
    use proptest::test_runner::{Config, TestRunner};

    let nats = cairn_testkit::nats::NatsCluster::start(1);
    let mut runner = TestRunner::new(Config {
        cases: CLUSTER_CASES,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let outcome = runner.run(&prop::collection::vec(op(), 1..40), |ops| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tempfile::tempdir().unwrap();
        let config = JetStreamConfig {
            urls: nats.urls(),
            credentials: None,
            stream: format!("MODEL_{n}"),
            replicas: 1,
            log_retention: std::time::Duration::from_secs(3600),
            node_id: "model".into(),
            request_timeout: std::time::Duration::from_secs(10),
        };
        runtime().block_on(async {
            let store = ClusterStore::open(&dir.path().join("node.redb"), fast(), config)
                .await
                .unwrap();
            run_on(&store, ops).await;
            store.close().await;
        });
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[test]
fn a_scripted_history_agrees_with_the_model() {
    use Op::*;
    let next = |user, device| ItemSpec {
        user,
        device,
        claim: None,
        seq: SeqChoice::Next,
        scope: 0,
    };
    run(vec![
        Register(0, 0, 1),
        Register(0, 1, 1),
        Append(vec![next(0, 0), next(0, 0), next(0, 1), next(0, 2)]),
        Append(vec![ItemSpec {
            seq: SeqChoice::Equivocate(0),
            ..next(0, 0)
        }]),
        Append(vec![ItemSpec {
            seq: SeqChoice::Duplicate(1),
            ..next(0, 0)
        }]),
        Revoke(0, 1, 2),
        Append(vec![
            next(0, 1),
            ItemSpec {
                claim: Some(1),
                ..next(0, 0)
            },
        ]),
        Grant(0, 1, 3),
        Unfriend(0, 1, 3),
        Ack(0, 2, 0, 7),
        Read(0, 0, 1, 2),
    ]);
}
