//! Bounded random-input test of the gitleaks TOML loader (the cheap sibling of
//! the cargo-fuzz target in `fuzz/`): mutated slices of the real gitleaks
//! config and TOML-flavoured noise must load or fail with a positioned error,
//! never panic, and whatever loads must scan without panicking.

mod common;

use common::Fake;
use rampart_secrets::{SecretRulesError, SecretScanner};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/secrets/gitleaks.toml"
);

const ITERATIONS: usize = 250;

/// Characters that matter to TOML and to regex syntax.
const NOISE: &[u8] = b"[]{}()=\"'\n\\.,|*+?^$-_#:0123456789abcdefrulesidregexkeywords ";

fn mutate(f: &mut Fake, mut text: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + f.below(6) {
        if text.is_empty() {
            text.push(NOISE[f.below(NOISE.len())]);
        }
        let at = f.below(text.len());
        match f.below(5) {
            0 => text[at] = NOISE[f.below(NOISE.len())],
            1 => {
                text.remove(at);
            }
            2 => text.insert(at, NOISE[f.below(NOISE.len())]),
            3 => text.truncate(at),
            _ => {
                // Duplicate a short span (repeats tables, keys, quotes).
                let end = (at + 1 + f.below(40)).min(text.len());
                let span = text[at..end].to_vec();
                let to = f.below(text.len() + 1);
                text.splice(to..to, span);
            }
        }
    }
    text
}

fn check(text: &str, iteration: usize) -> (usize, usize) {
    match SecretScanner::from_gitleaks_toml(text) {
        Ok(scanner) => {
            for skipped in scanner.skipped_rules() {
                assert!(!skipped.reason.is_empty(), "iteration {iteration}");
            }
            let _ = scanner.scan("random/input.txt", text.as_bytes());
            (1, 0)
        }
        Err(SecretRulesError::Toml { line, message, .. }) => {
            assert!(line >= 1, "iteration {iteration}: no line for {message}");
            assert!(!message.is_empty());
            (0, 1)
        }
    }
}

#[test]
fn mutated_gitleaks_configs_never_panic() {
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    // Rule boundaries, so each slice holds a few whole rules to mutate.
    let starts: Vec<usize> = fixture.match_indices("[[rules]]").map(|(i, _)| i).collect();
    assert!(starts.len() > 200);
    let mut f = Fake::new(0x5EC2E75);
    let (mut loaded, mut rejected) = (0, 0);
    for iteration in 0..ITERATIONS {
        let first = f.below(starts.len() - 8);
        let count = 1 + f.below(6);
        let slice = &fixture[starts[first]..starts[first + count]];
        let mutated = mutate(&mut f, slice.as_bytes().to_vec());
        let text = String::from_utf8_lossy(&mutated);
        let (ok, err) = check(&text, iteration);
        loaded += ok;
        rejected += err;
    }
    // Both outcomes must occur, or the mutations are not reaching the parser.
    assert!(loaded > 10, "only {loaded} loaded");
    assert!(rejected > 10, "only {rejected} rejected");
}

#[test]
fn toml_noise_never_panics() {
    let mut f = Fake::new(77);
    for iteration in 0..ITERATIONS {
        let length = f.below(300);
        let noise: Vec<u8> = (0..length).map(|_| NOISE[f.below(NOISE.len())]).collect();
        let mut text = String::from("[[rules]]\nid = \"r\"\nregex = '''");
        text.push_str(&String::from_utf8_lossy(&noise));
        text.push_str("'''\n");
        check(&text, iteration);
        check(&String::from_utf8_lossy(&noise), iteration);
    }
}
