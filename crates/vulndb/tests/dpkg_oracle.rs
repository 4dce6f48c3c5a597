//! Cross-checks the dpkg comparator against `dpkg --compare-versions` on a random
//! sample: pairs drawn from the Debian fixture plus generated versions.

use std::cmp::Ordering;
use std::process::Command;

use rampart_vulndb::version::dpkg;

/// Small deterministic PRNG (xorshift64*), so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_part(rng: &mut Rng, alphabet: &[u8], max: usize) -> String {
    let len = 1 + rng.below(max);
    (0..len)
        .map(|_| char::from(alphabet[rng.below(alphabet.len())]))
        .collect()
}

/// A version dpkg accepts: optional epoch, upstream starting with a digit, optional
/// revision.
fn random_version(rng: &mut Rng) -> String {
    let mut v = String::new();
    if rng.below(4) == 0 {
        v.push_str(&format!("{}:", rng.below(3)));
    }
    v.push(char::from(b'0' + rng.below(10) as u8));
    v.push_str(&random_part(rng, b"0123456789..~+abz", 6));
    if rng.below(2) == 0 {
        v.push('-');
        v.push_str(&random_part(rng, b"0123456789.~+abz", 4));
    }
    v
}

fn dpkg_says(a: &str, op: &str, b: &str) -> bool {
    let status = Command::new("dpkg")
        .args(["--compare-versions", a, op, b])
        .status()
        .expect("run dpkg");
    status.success()
}

fn dpkg_order(a: &str, b: &str) -> Ordering {
    if dpkg_says(a, "lt", b) {
        Ordering::Less
    } else if dpkg_says(a, "eq", b) {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

#[test]
fn dpkg_comparator_agrees_with_dpkg_on_a_random_sample() {
    if !rampart_testbed::tool_ready("dpkg", &["--version"], "apt-get install dpkg") {
        return;
    }
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/versions/debian-versions-generated.txt"
    ))
    .unwrap();
    let fixture_versions: Vec<&str> = fixture
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            [p[0], p[2]]
        })
        .collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut pairs = Vec::new();
    for _ in 0..150 {
        let a = fixture_versions[rng.below(fixture_versions.len())].to_string();
        let b = fixture_versions[rng.below(fixture_versions.len())].to_string();
        pairs.push((a, b));
    }
    for _ in 0..150 {
        let a = random_version(&mut rng);
        // Half the time, a near neighbour so that ties and tildes get exercised.
        let b = if rng.below(2) == 0 {
            let mut b = a.clone();
            b.push_str(["~", "+1", "a", ".0", "-1"][rng.below(5)]);
            b
        } else {
            random_version(&mut rng)
        };
        pairs.push((a, b));
    }
    let mut disagreements = Vec::new();
    for (a, b) in &pairs {
        let ours = dpkg::compare(a, b);
        let theirs = dpkg_order(a, b);
        if ours != theirs {
            disagreements.push(format!("{a} vs {b}: ours {ours:?}, dpkg {theirs:?}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} pairs disagree with dpkg:\n{}",
        disagreements.len(),
        pairs.len(),
        disagreements.join("\n")
    );
    eprintln!("{} pairs agree with dpkg --compare-versions", pairs.len());
}
