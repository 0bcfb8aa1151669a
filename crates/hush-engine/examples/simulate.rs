//! The long run of the account-engine simulation (the test suite runs a fixed set of shorter
//! schedules): random schedules of everything the simulation models — sends, deliveries in any
//! order, losses the archive recovers, held-back messages, duplicates, crashes at any point of
//! the shell, devices added and removed, time passing, and a hostile server — over three
//! accounts, until `--steps` actions have run. Schedules are spread over `--threads` threads
//! (default: every core). Prints the seed of every failing schedule; `--seed SEED` replays one,
//! and `--seed SEED --shrink` also looks for the shortest part of it that still fails. A run
//! stops at the first failure unless `--keep-going` is given (then it counts them all).
//!
//! ```sh
//! cargo run --release -p hush-engine --example simulate -- --steps 1000000
//! cargo run --release -p hush-engine --example simulate -- --seed 1234 --shrink
//! ```

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hush_test_support::simulation;

/// The longest schedule a seed stands for.
const MAX_LEN: usize = 200;

/// Removes actions from a failing schedule as long as it still fails (one at a time, from the
/// end, until no single removal keeps it failing): what is left is a scenario to read.
fn shrink(seed: u64, mut actions: Vec<simulation::Action>) -> (Vec<simulation::Action>, String) {
    let setup = simulation::Setup::for_seed(seed);
    let mut error =
        simulation::simulate_with(seed, &setup, &actions).expect_err("the schedule fails");
    loop {
        let mut smaller = false;
        for i in (0..actions.len()).rev() {
            let mut fewer = actions.clone();
            fewer.remove(i);
            if let Err(e) = simulation::simulate_with(seed, &setup, &fewer) {
                actions = fewer;
                error = e;
                smaller = true;
            }
        }
        if !smaller {
            return (actions, error);
        }
    }
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
        let actions = simulation::schedule(seed, MAX_LEN);
        let setup = simulation::Setup::for_seed(seed);
        return match simulation::simulate_with(seed, &setup, &actions) {
            Ok(()) => {
                println!(
                    "seed {seed}: ok ({} steps, suites {:?})",
                    actions.len(),
                    setup.suites
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                println!("seed {seed}: FAILED: {e}");
                if args.iter().any(|a| a == "--shrink") {
                    let (minimal, error) = shrink(seed, actions);
                    println!(
                        "shrunk to {} actions (suites {:?}): {error}\n{minimal:#?}",
                        minimal.len(),
                        setup.suites
                    );
                }
                std::process::ExitCode::FAILURE
            }
        };
    }
    let budget = value("--steps").unwrap_or(1_000_000);
    let first = value("--first-seed").unwrap_or(0);
    let threads = value("--threads").map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t.max(1) as usize,
    );
    let started = Instant::now();
    // Seeds are handed out in order; a thread takes the next one until the steps are done.
    let next = AtomicU64::new(first);
    let steps = AtomicU64::new(0);
    let runs = AtomicU64::new(0);
    let keep_going = args.iter().any(|a| a == "--keep-going");
    let stop = AtomicBool::new(false);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) && steps.load(Ordering::Relaxed) < budget {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    let (len, result) = simulation::run_seed(seed, MAX_LEN);
                    steps.fetch_add(len as u64, Ordering::Relaxed);
                    runs.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = result {
                        println!("FAILED at seed {seed} (replay: --seed {seed}): {e}");
                        failures.lock().unwrap().push(seed);
                        // The other threads finish the schedule they are on, then stop.
                        if !keep_going {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let (steps, runs) = (steps.into_inner(), runs.into_inner());
    let last = next.into_inner();
    let mut failures = failures.into_inner().unwrap();
    failures.sort_unstable();
    let elapsed = started.elapsed().as_secs_f64();
    if failures.is_empty() {
        println!(
            "{steps} steps in {runs} schedules (seeds {first}..{last}) on {threads} threads, \
             no invariant broken, {elapsed:.1} s"
        );
        std::process::ExitCode::SUCCESS
    } else {
        println!(
            "{steps} steps in {runs} schedules (seeds {first}..{last}) on {threads} threads, \
             {elapsed:.1} s; {} failing seeds: {failures:?}",
            failures.len()
        );
        std::process::ExitCode::FAILURE
    }
}
