//! The long run of the account-engine simulation (the test suite runs a fixed number of
//! short schedules): random schedules of sends, deliveries in any order, duplicates and
//! crashes over four devices of three accounts, until `--steps` actions have run. Prints the
//! seed of the first failing schedule, which `--seed SEED` replays.
//!
//! ```sh
//! cargo run --release -p hush-engine --example simulate -- --steps 1000000
//! cargo run --release -p hush-engine --example simulate -- --seed 1234
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The schedule a seed stands for: its length and actions come from the seed alone.
fn schedule(seed: u64) -> Vec<support::Action> {
    let mut rng = StdRng::seed_from_u64(seed);
    let len = rng.random_range(1..=200);
    support::random_schedule(&mut rng, len)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(seed) = value("--seed") {
        return match support::simulate(seed, &schedule(seed)) {
            Ok(()) => {
                println!("seed {seed}: ok");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                println!("seed {seed}: FAILED: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let budget = value("--steps").unwrap_or(1_000_000);
    let first = value("--first-seed").unwrap_or(0);
    let started = Instant::now();
    let (mut steps, mut runs) = (0u64, 0u64);
    let mut seed = first;
    while steps < budget {
        let actions = schedule(seed);
        steps += actions.len() as u64;
        runs += 1;
        if let Err(e) = support::simulate(seed, &actions) {
            println!("FAILED at seed {seed} (replay: --seed {seed}): {e}");
            return std::process::ExitCode::FAILURE;
        }
        seed += 1;
    }
    println!(
        "{steps} steps in {runs} schedules (seeds {first}..{seed}), no invariant broken, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::process::ExitCode::SUCCESS
}
