//! Post sealing: a 1 KiB post sealed for an audience of 1 member and for
//! an audience of 1000 with `cairn_crypto::seal_post`. The post key is
//! wrapped once per audience, not per member, so the two should cost the
//! same. The two alternate for several rounds and each keeps its fastest
//! round, as `cairn-crypto`'s own seal benchmark does.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn_crypto::{Audience, DeviceKeys, ExchangeSecret, Member, RootKey, seal_post};
use cairn_wire::{EnvelopeHeader, Scope};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::report::{Figure, Report, Target};

const SCENARIO: &str = "seal";
const POST_LEN: usize = 1024;

/// How many seals.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Rounds of each audience, alternating.
    pub rounds: usize,
    /// Seals per round.
    pub per_round: u32,
}

impl Size {
    /// The figures of record.
    pub const FULL: Self = Self {
        rounds: 15,
        per_round: 2000,
    };
    /// A quick check that the scenario still works.
    pub const SMOKE: Self = Self {
        rounds: 2,
        per_round: 20,
    };
}

/// Seals for both audiences and compares.
pub fn run(size: Size) -> Result<Report> {
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
    let small = audience_of(&mut rng, 1)?;
    let large = audience_of(&mut rng, 1000)?;
    let post = vec![0x5a; POST_LEN];
    let mut seal = |audience: &Audience| per_seal(&mut rng, &header, &post, audience, size);
    seal(&small)?;
    let (mut one, mut thousand) = (Duration::MAX, Duration::MAX);
    for _ in 0..size.rounds.max(1) {
        one = one.min(seal(&small)?);
        thousand = thousand.min(seal(&large)?);
    }
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let figures = vec![
        Figure::plain(
            SCENARIO,
            "seal a 1 KiB post for an audience of 1000",
            micros(thousand),
            "µs",
        )
        .target(Target::AtMost(1.1))
        .against("the same post for an audience of 1", micros(one), None),
    ];
    let notes = vec![format!(
        "fastest of {} alternating rounds of {} seals each",
        size.rounds, size.per_round
    )];
    Ok(Report { figures, notes })
}

fn audience_of(rng: &mut StdRng, members: usize) -> Result<Audience> {
    let mut audience = Audience::new(rng, "bench")?;
    for _ in 0..members {
        let user = RootKey::generate(rng).user_id();
        let exchange_key = ExchangeSecret::generate(rng).public_key();
        audience.add_member(Member { user, exchange_key })?;
    }
    Ok(audience)
}

/// The mean time of one seal over a round.
fn per_seal(
    rng: &mut StdRng,
    header: &EnvelopeHeader,
    post: &[u8],
    audience: &Audience,
    size: Size,
) -> Result<Duration> {
    let started = Instant::now();
    for _ in 0..size.per_round {
        black_box(seal_post(
            rng,
            header,
            black_box(post),
            &[audience.target()],
        )?);
    }
    Ok(started.elapsed() / size.per_round.max(1))
}
