//! The replay behind `rampart bench baseline`, buildable with this crate alone
//! (`cargo run --release -p rampart-baseline --example replay_bench [SECONDS [SCORE_SECONDS]]`): the same
//! source file, so the figures are the same code's, without building the whole binary.

#[path = "../../bench/src/baseline.rs"]
mod baseline;

fn main() {
    let mut o = baseline::BaselineBenchOptions::default();
    if let Some(s) = std::env::args().nth(1).and_then(|s| s.parse().ok()) {
        o.seconds = s;
    }
    if let Some(s) = std::env::args().nth(2).and_then(|s| s.parse().ok()) {
        o.score_seconds = s;
    }
    let r = baseline::baseline(&o);
    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
}
