//! A fuzz driver for the stable toolchain (`cargo fuzz` needs nightly):
//! every decoder that reads peer or disk bytes (see `targets.rs`) is fed
//! structure-aware inputs (`gen.rs`, with the `arbitrary` crate) and
//! byte-level mutations of valid encodings (`mutate.rs`), and each result is
//! checked against the invariants it must keep.
//!
//! ```text
//! cargo run --release --example fuzz -- [--seconds N] [--iterations N] [--seed S]
//!     [--target NAME]... [--out DIR] [--replay FILE]
//! ```
//!
//! Without `--seconds` or `--iterations` it runs 10 s. The seed is fixed
//! by default, and each target draws from its own generator, so a run with
//! the same seed and targets makes the same inputs in the same order. What
//! it finds (a panic, a broken invariant, or an input that made the process
//! hold more than [`MEMORY_LIMIT`] beyond its footprint) is printed with the
//! input in hex and saved to `DIR/TARGET-N.hex` (default
//! `target/fuzz-findings`); `--replay FILE --target NAME` runs one saved
//! input again. The exit status is 1 if anything was found.
//!
//! Memory is watched without touching the allocator (the library forbids
//! unsafe code, and a counting allocator needs it): after every batch of
//! inputs the peak resident set (VmHWM, reset through
//! /proc/self/clear_refs) is compared with the resident set before it; a
//! batch that grew past the limit is replayed input by input to name the
//! culprit. The run also prints the process's peak virtual size (VmPeak),
//! which would show an allocation that was reserved but never touched.

#[path = "../common/mod.rs"]
mod common;
mod gen;
mod mutate;
mod targets;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;

use common::{reset_peak_rss, rss};
use mutate::{mutate, Rng};
use targets::{Target, Verdict, TARGETS};

/// The default seed: fixed, so that a failure reproduces.
const DEFAULT_SEED: u64 = 14;
/// Inputs per target before the runner picks the next one.
const BATCH: usize = 512;
/// Valid inputs kept per target as mutation bases.
const CORPUS: usize = 512;
/// Bytes of entropy behind one structure-aware input.
const ENTROPY: usize = 4096;
/// Growth of the resident set within one batch that counts as a finding:
/// no input is larger than a frame (1 MiB), so no decoder should need
/// anywhere near this.
const MEMORY_LIMIT: u64 = 64 << 20;
/// Findings kept per target (the first ones; the count goes on).
const KEEP_FINDINGS: usize = 8;

struct Args {
    seconds: Option<f64>,
    iterations: Option<u64>,
    seed: u64,
    targets: Vec<&'static Target>,
    out: PathBuf,
    replay: Option<PathBuf>,
}

fn usage() -> ! {
    let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
    eprintln!(
        "usage: fuzz [--seconds N] [--iterations N] [--seed S] [--target NAME]... \
         [--out DIR] [--replay FILE]\ntargets: {}",
        names.join(", ")
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: None,
        iterations: None,
        seed: DEFAULT_SEED,
        targets: Vec::new(),
        out: PathBuf::from("target/fuzz-findings"),
        replay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let Some(value) = it.next() else { usage() };
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match arg.as_str() {
            "--seconds" => args.seconds = Some(value.parse().unwrap_or_else(|_| usage())),
            "--iterations" => args.iterations = Some(number()),
            "--seed" => args.seed = number(),
            "--target" => args.targets.push(
                TARGETS
                    .iter()
                    .find(|t| t.name == value)
                    .unwrap_or_else(|| usage()),
            ),
            "--out" => args.out = value.into(),
            "--replay" => args.replay = Some(value.into()),
            _ => usage(),
        }
    }
    if args.targets.is_empty() {
        args.targets = TARGETS.iter().collect();
    }
    if args.seconds.is_none() && args.iterations.is_none() {
        args.seconds = Some(10.0);
    }
    args
}

/// What a panic said, caught by the hook instead of printed.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

thread_local! {
    /// Set while a check runs: its panics are findings, reported with
    /// their input, so the hook stays quiet about them.
    static IN_CHECK: Cell<bool> = const { Cell::new(false) };
}

/// Prints a panic unless it is a check's (a panic of the driver itself is
/// a bug in the driver, and ends the run).
fn quiet_in_checks() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !IN_CHECK.get() {
            default(info);
        }
    }));
}

/// Runs one check; a panic is a finding like a broken invariant.
fn run(target: &Target, input: &[u8]) -> Verdict {
    IN_CHECK.set(true);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| (target.check)(input)));
    IN_CHECK.set(false);
    match caught {
        Ok(verdict) => verdict,
        Err(payload) => Err(format!("panic: {}", panic_text(payload.as_ref()))),
    }
}

/// A /proc/self/status figure in bytes.
fn status_bytes(field: &str) -> u64 {
    let text = rss(field);
    text.trim_end_matches(" kB").parse::<u64>().unwrap_or(0) * 1024
}

/// One target's state and figures.
struct Fuzzed {
    target: &'static Target,
    rng: Rng,
    corpus: Vec<Vec<u8>>,
    execs: u64,
    accepted: u64,
    time: Duration,
    slowest: (Duration, Vec<u8>),
    peak_growth: u64,
    findings: u64,
}

impl Fuzzed {
    fn new(target: &'static Target, seed: u64, index: usize) -> Fuzzed {
        let mut rng = Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        // Let the generator settle: the first draws of a seed are the same
        // across targets otherwise.
        rng.next();
        Fuzzed {
            target,
            rng,
            corpus: Vec::new(),
            execs: 0,
            accepted: 0,
            time: Duration::ZERO,
            slowest: (Duration::ZERO, Vec::new()),
            peak_growth: 0,
            findings: 0,
        }
    }

    /// A structure-aware input: valid, or well-formed but hostile.
    fn fresh(&mut self, entropy: &mut [u8]) -> Vec<u8> {
        self.rng.fill(entropy);
        let mut u = Unstructured::new(entropy);
        (self.target.make)(&mut u).unwrap_or_default()
    }

    /// The next input: a fresh one (1 in 4), or a mutation of a fresh or
    /// kept one.
    fn next_input(&mut self, entropy: &mut [u8]) -> Vec<u8> {
        let choice = self.rng.below(8);
        if choice < 2 || self.corpus.is_empty() {
            let input = self.fresh(entropy);
            if self.corpus.len() < CORPUS {
                self.corpus.push(input.clone());
            } else {
                let slot = self.rng.below(CORPUS);
                self.corpus[slot] = input.clone();
            }
            if choice == 0 {
                return input;
            }
        }
        let mut input = self.corpus[self.rng.below(self.corpus.len())].clone();
        let donor = self.corpus[self.rng.below(self.corpus.len())].clone();
        mutate(&mut self.rng, &mut input, self.target.framed, &donor);
        input
    }
}

/// A finding, reported and saved.
fn report(out: &Path, fuzzed: &mut Fuzzed, input: &[u8], what: &str) {
    fuzzed.findings += 1;
    if fuzzed.findings > KEEP_FINDINGS as u64 {
        return;
    }
    let name = fuzzed.target.name;
    let file = out.join(format!("{name}-{}.hex", fuzzed.findings));
    let hex = hex::encode(input);
    let saved = std::fs::create_dir_all(out).and_then(|_| std::fs::write(&file, &hex));
    let shown = if hex.len() > 512 {
        format!("{}... ({} bytes)", &hex[..512], input.len())
    } else {
        hex
    };
    println!("FOUND in {name}: {what}\n  input: {shown}");
    match saved {
        Ok(()) => println!(
            "  saved: {} (replay: --target {name} --replay {})",
            file.display(),
            file.display()
        ),
        Err(e) => println!("  not saved ({}): {e}", file.display()),
    }
}

/// Runs one batch of `n` inputs of one target; returns the peak resident
/// set during it.
fn batch(out: &Path, fuzzed: &mut Fuzzed, n: usize, entropy: &mut [u8]) -> u64 {
    let before = status_bytes("VmRSS:");
    reset_peak_rss();
    let start = Instant::now();
    let inputs: Vec<Vec<u8>> = (0..n).map(|_| fuzzed.next_input(entropy)).collect();
    for input in &inputs {
        let began = Instant::now();
        let verdict = run(fuzzed.target, input);
        let took = began.elapsed();
        if took > fuzzed.slowest.0 {
            fuzzed.slowest = (took, input.clone());
        }
        match verdict {
            Ok(accepted) => fuzzed.accepted += u64::from(accepted),
            Err(what) => report(out, fuzzed, input, &what),
        }
    }
    fuzzed.time += start.elapsed();
    fuzzed.execs += n as u64;
    let peak = status_bytes("VmHWM:");
    let growth = peak.saturating_sub(before);
    fuzzed.peak_growth = fuzzed.peak_growth.max(growth);
    if growth > MEMORY_LIMIT {
        for input in &inputs {
            let before = status_bytes("VmRSS:");
            reset_peak_rss();
            let _ = run(fuzzed.target, input);
            let grew = status_bytes("VmHWM:").saturating_sub(before);
            if grew > MEMORY_LIMIT {
                let what = format!("held {} MiB more while decoding", grew >> 20);
                report(out, fuzzed, input, &what);
            }
        }
    }
    peak
}

fn replay(target: &Target, file: &Path) -> ! {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", file.display());
        std::process::exit(2)
    });
    let input = hex::decode(text.trim()).unwrap_or_else(|e| {
        eprintln!("{} is not hex: {e}", file.display());
        std::process::exit(2)
    });
    quiet_in_checks();
    match run(target, &input) {
        Ok(accepted) => {
            let word = if accepted { "accepted" } else { "rejected" };
            println!("{}: {word}, every invariant held", target.name);
            std::process::exit(0)
        }
        Err(what) => {
            println!("{}: {what}", target.name);
            std::process::exit(1)
        }
    }
}

fn main() {
    let args = parse_args();
    gen::check_mirror();
    if let Some(file) = &args.replay {
        if args.targets.len() != 1 {
            eprintln!("--replay needs one --target");
            std::process::exit(2);
        }
        replay(args.targets[0], file);
    }
    quiet_in_checks();
    let mut all: Vec<Fuzzed> = args
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| Fuzzed::new(t, args.seed, i))
        .collect();
    let mut entropy = vec![0u8; ENTROPY];
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut left = args.iterations.unwrap_or(u64::MAX);
    let start = Instant::now();
    let mut peak = 0;
    println!(
        "fuzzing {} targets, seed {}, {}",
        all.len(),
        args.seed,
        match (args.seconds, args.iterations) {
            (Some(s), Some(n)) => format!("{s} s or {n} executions"),
            (Some(s), None) => format!("{s} s"),
            (None, Some(n)) => format!("{n} executions"),
            (None, None) => unreachable!("a default is set"),
        }
    );
    // Each target gets the same share of time (making its inputs
    // included): the next batch goes to the one that had the least.
    while left > 0 && deadline.is_none_or(|d| Instant::now() < d) {
        let fuzzed = all.iter_mut().min_by_key(|f| f.time).expect("a target");
        let n = BATCH.min(left as usize);
        peak = peak.max(batch(&args.out, fuzzed, n, &mut entropy));
        left -= n as u64;
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "\n{:<13} {:>11} {:>10} {:>9} {:>11} {:>10} {:>8}",
        "target", "executions", "exec/s", "accepted", "slowest µs", "peak +MiB", "found"
    );
    let (mut execs, mut found) = (0, 0);
    for f in &all {
        println!(
            "{:<13} {:>11} {:>10.0} {:>8.1}% {:>11} {:>10.1} {:>8}",
            f.target.name,
            f.execs,
            f.execs as f64 / f.time.as_secs_f64().max(1e-9),
            100.0 * f.accepted as f64 / f.execs.max(1) as f64,
            f.slowest.0.as_micros(),
            f.peak_growth as f64 / (1 << 20) as f64,
            f.findings
        );
        execs += f.execs;
        found += f.findings;
    }
    println!(
        "{:<13} {:>11} {:>10.0}   ({wall:.1} s; process peak RSS {} MiB, peak virtual {} MiB)",
        "all",
        execs,
        execs as f64 / wall,
        peak >> 20,
        status_bytes("VmPeak:") >> 20
    );
    if found > 0 {
        println!(
            "{found} finding(s); inputs saved under {}",
            args.out.display()
        );
        std::process::exit(1);
    }
    println!("nothing found");
}
