//! Reconciles a million statement lines against a million book entries with breaks planted
//! (`tests/scenario`), checks every result, and prints the conditions and the figures.
//!
//! `cargo run --release -p paymesh-recon --example bench [-- SLOTS]` (default 1,000,000).

#[path = "../tests/scenario/mod.rs"]
mod scenario;

use std::process::ExitCode;
use std::time::Instant;

use paymesh_recon::{Options, reconcile};

fn main() -> ExitCode {
    let slots = match std::env::args().nth(1).map(|a| a.replace('_', "").parse()) {
        None => 1_000_000,
        Some(Ok(slots)) => slots,
        Some(Err(_)) => {
            eprintln!("usage: bench [SLOTS]");
            return ExitCode::FAILURE;
        }
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {}, {cores} cores available", cpu_model());

    let started = Instant::now();
    let scenario = scenario::build(slots, 42);
    println!(
        "input: {} lines, {} book entries built in {:.2} s; peak RSS so far {} MiB",
        scenario.lines.len(),
        scenario.book.len(),
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    for (plant, count) in &scenario.planted {
        println!("  planted {count:>7} x {plant:?}");
    }

    let rss_before = rss_mib();
    let started = Instant::now();
    let result = reconcile(
        &scenario.lines,
        &scenario.book,
        &Options::default(),
        &scenario::find_references,
    );
    let elapsed = started.elapsed();
    println!(
        "reconcile: {:.3} s single-threaded; RSS {rss_before} MiB before, peak RSS {} MiB (input included)",
        elapsed.as_secs_f64(),
        peak_rss_mib()
    );
    println!("summary: {:?}", result.summary);

    match scenario::check(&scenario, &result) {
        Ok(()) => {
            println!("check: every planted break found, nothing else flagged");
            ExitCode::SUCCESS
        }
        Err(wrong) => {
            eprintln!("check failed: {wrong}");
            ExitCode::FAILURE
        }
    }
}

/// A field of /proc/self/status in MiB (Linux only; 0 elsewhere).
fn status_mib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024)
}

fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

fn rss_mib() -> u64 {
    status_mib("VmRSS:")
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}
