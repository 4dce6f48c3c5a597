//! The fuzz targets on stable: the same bodies the cargo-fuzz targets in `fuzz/` run
//! (`rampart_recorder::fuzzing`), over a corpus of real segments and block bodies
//! (the recorded workload, the shipped rules' attack events, alerts and lifecycle
//! records) and seeded mutations of it. Each target runs for `RAMPART_FUZZ_SECS`
//! seconds (default 4, so the suite stays quick; at least `MIN_INPUTS` inputs) or
//! `RAMPART_FUZZ_ITERS` mutated inputs, whichever comes first; the counts are printed.
//! The segment corpus holds the writer's whole segments and segments of one to four
//! of their frames (small inputs: many more per second). Mutated segments also get
//! their checksums recomputed, so the mutations reach decompression and decoding
//! instead of stopping at a CRC. An input that panics is written to
//! `target/fuzz-crashes/` and fails the test.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use rampart_event::{ContainerLifecycle, LifecycleAction};
use rampart_recorder::codec::BlockEncoder;
use rampart_recorder::{fuzzing, Record, Recorder, RecorderConfig};

/// xorshift64*: deterministic, so a failure repeats with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn iterations() -> usize {
    std::env::var("RAMPART_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(usize::MAX)
}

/// Time per target; a slow (debug, shared) machine still runs `MIN_INPUTS`.
fn budget() -> std::time::Duration {
    let secs = std::env::var("RAMPART_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(4.0);
    std::time::Duration::from_secs_f64(secs.max(0.0))
}

/// Mutated inputs per target, whatever the time budget.
const MIN_INPUTS: usize = 300;

fn seed() -> u64 {
    std::env::var("RAMPART_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_2026_1206_0001)
}

/// Records of every type: the attack mix (workload plus every shipped rule's
/// should-fire event, so every payload kind), its live alerts, and lifecycle records.
fn records() -> Vec<Record> {
    let events = common::attack_mix();
    let alerts = common::live_alerts(&events);
    assert!(!alerts.is_empty());
    let mut out: Vec<Record> = Vec::new();
    // The rule test events sit in the middle third; take a slice around them and
    // some of the plain workload.
    let mid = events.len() / 3;
    out.extend(
        events[mid - 200..mid + 600]
            .iter()
            .cloned()
            .map(Record::Event),
    );
    out.extend(events[..300].iter().cloned().map(Record::Event));
    out.extend(
        alerts
            .into_iter()
            .take(50)
            .map(|a| Record::Alert(Box::new(a))),
    );
    for (i, action) in [
        LifecycleAction::Start,
        LifecycleAction::Die { exit_code: 137 },
        LifecycleAction::Stop,
    ]
    .into_iter()
    .enumerate()
    {
        out.push(Record::Lifecycle(ContainerLifecycle {
            ts_ns: 1_000 + i as u64,
            action,
            container_id: format!("{i}abc"),
            name: "web".into(),
            image: "nginx:1".into(),
            labels: Default::default(),
        }));
    }
    out
}

/// Block bodies of a few sizes, and segment files written by a real writer.
fn corpus() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let recs = records();
    let mut bodies = Vec::new();
    let mut enc = BlockEncoder::default();
    for size in [1usize, 3, 17, 64, 250] {
        for chunk in recs.chunks(size).step_by(7).take(6) {
            for r in chunk {
                enc.push(r);
            }
            bodies.push(enc.finish().0);
        }
    }
    let mut segments = Vec::new();
    for block_bytes in [512usize, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::open(RecorderConfig {
            block_bytes,
            ..common::config(dir.path())
        })
        .unwrap();
        let w = rampart_recorder::Writer::start(rec.clone()).unwrap();
        for r in recs.iter().take(400) {
            while !w.try_append(r.clone()) {
                std::thread::yield_now();
            }
        }
        w.close().unwrap();
        drop(rec);
        for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "rseg") {
                segments.push(std::fs::read(e.path()).unwrap());
            }
        }
    }
    assert!(segments.iter().all(|s| s.len() > 1000));
    // The corpus itself reads back whole.
    let n: usize = segments
        .iter()
        .map(|s| rampart_recorder::segment::read_segment_image(s).len())
        .sum();
    assert_eq!(n, 800, "both segment sets hold the 400 records");
    // Segments of one to four consecutive frames of those: the same frames, in
    // inputs a tenth the size.
    let mut small = Vec::new();
    for seg in &segments {
        let frames = frames_of(seg);
        for (i, k) in (0..frames.len())
            .step_by(3)
            .zip([1usize, 2, 3, 4].iter().cycle())
        {
            let mut s = seg[..32].to_vec();
            for f in frames.iter().skip(i).take(*k) {
                s.extend_from_slice(&seg[f.0..f.1]);
            }
            small.push(s);
        }
    }
    assert!(small.len() > 20, "{} small segments", small.len());
    segments.extend(small);
    (bodies, segments)
}

/// The byte ranges of a well-formed segment's frames (the layout `segment.rs`
/// documents: a 32-byte header, frames of a 40-byte header, summary and body).
fn frames_of(seg: &[u8]) -> Vec<(usize, usize)> {
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let mut out = Vec::new();
    let mut pos = 32;
    while pos + 40 <= seg.len() && &seg[pos..pos + 4] == b"RBLK" {
        let end = pos + 40 + le(&seg[pos + 4..]) + le(&seg[pos + 8..]);
        if end > seg.len() {
            break;
        }
        out.push((pos, end));
        pos = end;
    }
    out
}

/// One mutation of `data` (a splice partner from `other`).
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xfe, 0xff, 0x40, 0x3f];
    if data.is_empty() {
        data.push(rng.next() as u8);
        return;
    }
    match rng.below(9) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let i = rng.below(data.len());
            data[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 => {
            let i = rng.below(data.len() + 1);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(i..i, bytes);
        }
        3 => {
            let i = rng.below(data.len());
            let n = 1 + rng.below((data.len() - i).min(64));
            data.drain(i..i + n);
        }
        4 => {
            // Duplicate a range (repeated records, refs past their tables).
            let i = rng.below(data.len());
            let n = 1 + rng.below((data.len() - i).min(256));
            let copy = data[i..i + n].to_vec();
            let at = rng.below(data.len() + 1);
            data.splice(at..at, copy);
        }
        5 => {
            let n = rng.below(data.len());
            data.truncate(n);
        }
        6 => {
            // Splice: the head of this one, the tail of another.
            if !other.is_empty() {
                let a = rng.below(data.len());
                let b = rng.below(other.len());
                data.truncate(a);
                data.extend_from_slice(&other[b..]);
            }
        }
        7 => {
            // A huge varint where a length or a ref was.
            let i = rng.below(data.len());
            data.splice(
                i..(i + 1).min(data.len()),
                [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            );
        }
        _ => {
            // Overwrite a 4-byte little-endian field with a large or small value.
            if data.len() >= 4 {
                let i = rng.below(data.len() - 3);
                let v: u32 = [0, 1, u32::MAX, 1 << 20, 1 << 30][rng.below(5)];
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// Recomputes every frame's checksums (header and data) where the header's lengths
/// still fit, so mutations inside frames are seen by decompression and decoding.
/// The layout is the one `segment.rs` documents.
fn fix_checksums(data: &mut [u8]) {
    if data.len() >= 32 {
        let crc = crc32c::crc32c(&data[0..28]);
        data[28..32].copy_from_slice(&crc.to_le_bytes());
    }
    let mut pos = 32usize;
    while pos + 40 <= data.len() {
        if &data[pos..pos + 4] != b"RBLK" {
            break;
        }
        let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let summary = le(&data[pos + 4..]);
        let body = le(&data[pos + 8..]);
        let end = pos + 40 + summary + body;
        let hcrc = crc32c::crc32c(&data[pos..pos + 32]);
        data[pos + 32..pos + 36].copy_from_slice(&hcrc.to_le_bytes());
        if end > data.len() {
            break;
        }
        let dcrc = crc32c::crc32c(&data[pos + 40..end]);
        data[pos + 36..pos + 40].copy_from_slice(&dcrc.to_le_bytes());
        pos = end;
    }
}

/// Runs `target` on `input`, saving the input and failing on a panic.
fn run(name: &str, target: fn(&[u8]), input: &[u8], crashes: &mut Vec<String>) {
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-{:016x}", crc32c::crc32c(input)));
        let _ = std::fs::write(&path, input);
        crashes.push(path.display().to_string());
    }
}

fn fuzz(name: &str, target: fn(&[u8]), corpus: &[Vec<u8>], fix: bool) -> (usize, Vec<String>) {
    let mut rng = Rng(seed() ^ crc32c::crc32c(name.as_bytes()) as u64);
    let started = std::time::Instant::now();
    let mut crashes = Vec::new();
    let mut ran = 0;
    for input in corpus {
        run(name, target, input, &mut crashes);
        ran += 1;
    }
    let (limit, budget) = (iterations(), budget());
    let mut n = 0;
    while n < limit && (n < MIN_INPUTS || started.elapsed() < budget) {
        n += 1;
        let mut input = corpus[rng.below(corpus.len())].clone();
        let other = &corpus[rng.below(corpus.len())];
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut input, other);
        }
        if fix && rng.below(4) != 0 {
            fix_checksums(&mut input);
        }
        run(name, target, &input, &mut crashes);
        ran += 1;
    }
    println!(
        "{name}: {ran} inputs ({} corpus, {n} mutated), {} panicked, {:.1} s",
        corpus.len(),
        crashes.len(),
        started.elapsed().as_secs_f64()
    );
    (ran, crashes)
}

#[test]
fn fuzz_targets_survive_the_corpus_and_its_mutations() {
    // The panic hook would print every caught panic; the saved inputs say enough.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let (bodies, segments) = corpus();
    let (a, mut crashes) = fuzz("block_decoder", fuzzing::block_decoder, &bodies, false);
    let (b, more) = fuzz("segment_reader", fuzzing::segment_reader, &segments, true);
    crashes.extend(more);
    std::panic::set_hook(hook);
    for c in &crashes {
        let input = std::fs::read(c).unwrap_or_default();
        let target = if c.contains("block_decoder") {
            fuzzing::block_decoder
        } else {
            fuzzing::segment_reader
        };
        // Again with the hook back, so the panic message shows.
        let _ = catch_unwind(|| target(&input));
    }
    assert!(crashes.is_empty(), "inputs that panicked: {crashes:?}");
    println!("fuzz: {} inputs in all, no panic", a + b);
}
