//! Sealing a 1 KiB post for an audience of 1 member and of 1000 members.
//!
//! The post key is wrapped once per audience, not once per member, so the
//! two must cost the same; the benchmark prints both and their ratio
//! (measured in the same run, so that the machine's noise cancels). For
//! contrast it also prints what a rotation costs the owner once: sealing
//! the new epoch key to every remaining member.
//!
//! Run with `cargo bench -p cairn-crypto --bench seal`.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn_crypto::{Audience, DeviceKeys, ExchangeSecret, Member, RootKey, seal_grant, seal_post};
use cairn_wire::{EnvelopeHeader, Scope};
use rand::SeedableRng;
use rand::rngs::StdRng;

const POST_LEN: usize = 1024;
const ROUNDS: usize = 15;
const ITERATIONS: usize = 2000;

fn main() {
    let mut rng = StdRng::seed_from_u64(1);
    let root = RootKey::generate(&mut rng);
    let device = DeviceKeys::generate(&mut rng);
    let header = EnvelopeHeader::new(
        root.user_id(),
        device.device_id(),
        1,
        cairn_wire::FIRST_IN_STREAM,
        0,
        Scope::Friends,
    );
    let small = audience_of(&mut rng, 1);
    let large = audience_of(&mut rng, 1000);
    let plaintext = vec![0x5au8; POST_LEN];

    // Warm up, then interleave the two so that frequency scaling and
    // neighbours hit both alike; keep each one's fastest round, the one
    // least disturbed by other work on the machine.
    per_seal(&mut rng, &header, &plaintext, &small);
    let (mut one, mut thousand) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        one.push(per_seal(&mut rng, &header, &plaintext, &small));
        thousand.push(per_seal(&mut rng, &header, &plaintext, &large));
    }
    let (one, thousand) = (fastest(&one), fastest(&thousand));
    println!(
        "seal 1 KiB post, audience of    1 member : {:>8.2} µs",
        micros(one)
    );
    println!(
        "seal 1 KiB post, audience of 1000 members: {:>8.2} µs",
        micros(thousand)
    );
    println!(
        "ratio 1000 / 1: {:.3}x (target: at most 1.1x)",
        thousand.as_secs_f64() / one.as_secs_f64()
    );

    let rotation = time_rotation_grants(&mut rng, &root, &device, &large);
    println!(
        "once per rotation, not per post: sealing the new epoch key to 1000 members: {:.2} ms",
        rotation.as_secs_f64() * 1e3
    );
}

fn audience_of(rng: &mut StdRng, members: usize) -> Audience {
    let mut audience = Audience::new(rng, "bench").unwrap();
    for _ in 0..members {
        let user = RootKey::generate(rng).user_id();
        let exchange_key = ExchangeSecret::generate(rng).public_key();
        audience.add_member(Member { user, exchange_key }).unwrap();
    }
    audience
}

fn per_seal(
    rng: &mut StdRng,
    header: &EnvelopeHeader,
    plaintext: &[u8],
    audience: &Audience,
) -> Duration {
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        black_box(seal_post(rng, header, black_box(plaintext), &[audience.target()]).unwrap());
    }
    start.elapsed() / u32::try_from(ITERATIONS).unwrap()
}

fn time_rotation_grants(
    rng: &mut StdRng,
    root: &RootKey,
    device: &DeviceKeys,
    audience: &Audience,
) -> Duration {
    let grant = [audience.current_grant()];
    let certificate = root.certify_device(device.device_id(), device.exchange_key(), 0);
    let start = Instant::now();
    for member in audience.members() {
        let header = EnvelopeHeader::new(
            root.user_id(),
            device.device_id(),
            2,
            cairn_wire::FIRST_IN_STREAM,
            0,
            Scope::Direct(member.user),
        );
        black_box(seal_grant(rng, &header, &member.exchange_key, &certificate, &grant).unwrap());
    }
    start.elapsed()
}

fn fastest(samples: &[Duration]) -> Duration {
    samples.iter().copied().min().unwrap_or_default()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
