//! Faults and bad input: a writer killed with SIGKILL, garbage segments, and a
//! model-based property test of append, seal, retention and read.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rampart_recorder::{sample, Query, Record, Recorder, RecorderConfig, Writer};

const CHILD_DIR: &str = "RAMPART_RECORDER_TEST_CHILD_DIR";
const CHILD_START: &str = "RAMPART_RECORDER_TEST_CHILD_START";
const ROUND: u64 = 1_000_000;

fn seqs(rec: &Arc<Recorder>) -> Vec<u64> {
    rec.query(&Query::new())
        .unwrap()
        .filter_map(|r| match r {
            Record::Event(e) => Some(e.seq),
            _ => None,
        })
        .collect()
}

/// The child side of `kill_9_loses_at_most_the_open_block`: appends events with
/// increasing sequence numbers for ever, flushing every 500 and writing the last
/// flushed sequence number to `progress` after each flush.
#[test]
fn child_writer_appends_until_killed() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return; // Only runs when re-executed by the test below.
    };
    let dir = Path::new(&dir);
    let rec = Recorder::open(RecorderConfig {
        block_bytes: 8 << 10,
        segment_bytes: 256 << 10,
        max_age: None,
        ..RecorderConfig::with_dir(dir.join("rec"))
    })
    .unwrap();
    let w = Writer::start(rec).unwrap();
    let start: u64 = std::env::var(CHILD_START)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut seq = start;
    loop {
        seq += 1;
        let ev = sample::event(
            seq,
            seq,
            Some("feedface"),
            (seq % 50) as u32,
            &format!("/data/{}", seq % 97),
        );
        while !w.try_append_event(Arc::new(ev.clone())) {
            std::thread::yield_now();
        }
        if (seq - start).is_multiple_of(500) {
            w.flush().unwrap();
            let tmp = dir.join("progress.tmp");
            std::fs::write(&tmp, seq.to_string()).unwrap();
            std::fs::rename(&tmp, dir.join("progress")).unwrap();
        }
    }
}

#[test]
fn kill_9_loses_at_most_the_open_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut total_flushed = 0;
    let mut total_before = 0u64;
    for round in 0..3u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "child_writer_appends_until_killed",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_START, (round * ROUND).to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let progress = dir.path().join("progress");
        let _ = std::fs::remove_file(&progress);
        let deadline = Instant::now() + Duration::from_secs(60);
        let start = round * ROUND;
        let target = start + 5_000 + round * 3_000;
        let flushed = loop {
            let p: u64 = std::fs::read_to_string(&progress)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if p >= target || Instant::now() > deadline {
                break p;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Killed in the middle of appends (SIGKILL: no destructor, no flush).
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(flushed > 0, "the child never flushed");
        total_flushed = flushed;

        let rec = Recorder::open(common::config(&dir.path().join("rec"))).unwrap();
        let got = seqs(&rec);
        // This round's events: a prefix of 1.. with everything flushed present and at
        // most the unsealed tail missing (8 KiB blocks of ~10 B/event events, but
        // the queue also held some).
        let this_round: Vec<u64> = got
            .iter()
            .copied()
            .filter(|s| (start..start + ROUND).contains(s))
            .collect();
        let max = *this_round.last().unwrap();
        assert!(max >= flushed, "flushed {flushed} but only {max} read back");
        // Nothing lost before the newest record read back, nothing doubled, in order.
        assert_eq!(
            this_round.len() as u64,
            max - start,
            "a gap in round {round}"
        );
        assert!(
            this_round.windows(2).all(|w| w[1] == w[0] + 1),
            "a gap in round {round}"
        );
        // Earlier rounds are all still there.
        assert_eq!(
            got.iter().filter(|s| **s < start).count() as u64,
            total_before
        );
        total_before += max - start;
        assert!(
            rec.repair_report().corrupt.is_empty(),
            "{:?}",
            rec.repair_report()
        );
        drop(rec);
    }
    assert!(total_flushed > 0);
}

#[test]
fn garbage_segments_never_panic_the_reader() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // A valid segment to mutate.
    let dir = tempfile::tempdir().unwrap();
    {
        let rec = Recorder::open(common::config(dir.path())).unwrap();
        common::record(&rec, &common::workload()[..3000]);
    }
    let seg_path = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "rseg"))
        .unwrap();
    let valid = std::fs::read(&seg_path).unwrap();
    assert_eq!(
        rampart_recorder::segment::read_segment_image(&valid).len(),
        3000
    );
    for round in 0..300 {
        let mut data = if round % 3 == 0 {
            (0..(next() % 4096) as usize)
                .map(|_| next() as u8)
                .collect::<Vec<u8>>()
        } else {
            let mut d = valid.clone();
            for _ in 0..(1 + next() % 8) {
                let i = (next() as usize) % d.len();
                d[i] ^= (next() as u8) | 1;
            }
            if round % 5 == 0 {
                d.truncate((next() as usize) % d.len());
            }
            d
        };
        if round % 7 == 0 && data.len() > 32 {
            // Garbage after a valid header.
            data[..32].copy_from_slice(&valid[..32]);
        }
        let got = rampart_recorder::segment::read_segment_image(&data);
        assert!(got.len() <= 3000);
        // Through the directory path too (repair on open, then a query) every so often.
        if round % 20 == 0 {
            let d2 = tempfile::tempdir().unwrap();
            std::fs::write(d2.path().join("seg-0000000000000001.rseg"), &data).unwrap();
            let rec = Recorder::open(common::config(d2.path())).unwrap();
            let n = rec.query(&Query::new()).unwrap().count();
            assert!(n <= 3000);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append { container: u8, n: u16 },
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 1u16..400).prop_map(|(container, n)| Op::Append { container, n }),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

fn model_config(dir: &Path) -> RecorderConfig {
    RecorderConfig {
        block_bytes: 2 << 10,
        segment_bytes: 8 << 10,
        max_total_bytes: 40 << 10,
        max_age: None,
        max_open_blocks: 3,
        ..RecorderConfig::with_dir(dir)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The model: a list of flushed batches of sequence numbers. After every flush the
    /// recorder must hold, with nothing invented or duplicated, in time order, every
    /// record of every batch after the oldest one retention touched, and stay within
    /// its size bound.
    #[test]
    fn append_seal_retention_read_match_the_model(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = model_config(dir.path());
        let mut rec = Recorder::open(cfg.clone()).unwrap();
        let mut w = Some(Writer::start(rec.clone()).unwrap());
        let mut seq = 0u64;
        let mut batches: Vec<Vec<u64>> = vec![Vec::new()];
        let mut all = BTreeSet::new();
        for op in ops {
            match op {
                Op::Append { container, n } => {
                    for _ in 0..n {
                        seq += 1;
                        let c = format!("{container:x}{}", "0".repeat(63));
                        let ev = sample::event(seq * 1000, seq, Some(&c), (seq % 7) as u32, &format!("/p/{}", seq % 13));
                        let wr = w.as_ref().unwrap();
                        while !wr.try_append_event(Arc::new(ev.clone())) {
                            std::thread::yield_now();
                        }
                        batches.last_mut().unwrap().push(seq);
                        all.insert(seq);
                    }
                }
                Op::Flush | Op::Reopen => {
                    if matches!(op, Op::Flush) {
                        w.as_ref().unwrap().flush().unwrap();
                    } else {
                        w.take().unwrap().close().unwrap();
                        drop(rec);
                        rec = Recorder::open(cfg.clone()).unwrap();
                        w = Some(Writer::start(rec.clone()).unwrap());
                    }
                    batches.push(Vec::new());
                    let got: Vec<u64> = rec.query(&Query::new()).unwrap().map(|r| r.ts_ns() / 1000).collect();
                    // Time order, no duplicates, nothing invented.
                    prop_assert!(got.windows(2).all(|p| p[0] < p[1]));
                    prop_assert!(got.iter().all(|s| all.contains(s)));
                    let present: BTreeSet<u64> = got.iter().copied().collect();
                    // Every batch after the one holding the oldest record read back is
                    // whole (retention deletes the oldest segments only).
                    let oldest = got.first().copied();
                    let from = match oldest {
                        Some(o) => batches.iter().position(|b| b.contains(&o)).unwrap() + 1,
                        None => batches.len() - 1,
                    };
                    for b in &batches[from..] {
                        for s in b {
                            prop_assert!(present.contains(s), "seq {} of a later batch missing", s);
                        }
                    }
                    // The newest flushed batch is always whole.
                    if let Some(b) = batches.iter().rev().nth(1) {
                        for s in b {
                            prop_assert!(present.contains(s), "newest batch lost seq {}", s);
                        }
                    }
                    if rec.stats().segments_deleted == 0 && rec.repair_report().segments_missing.is_empty() && !matches!(op, Op::Reopen) {
                        // Nothing deleted in this life of the recorder: read-back is exact.
                        let expected_min = present.iter().next().copied();
                        prop_assert!(expected_min.is_none() || got.len() == all.range(expected_min.unwrap()..).count());
                    }
                    prop_assert!(rec.disk_bytes().unwrap() <= cfg.max_total_bytes + 2 * cfg.segment_bytes);
                }
            }
        }
        if let Some(w) = w.take() {
            w.close().unwrap();
        }
    }
}

const CHILD_FULL: &str = "RAMPART_RECORDER_TEST_CHILD_FULL";

/// The child side of `full_disk_write_errors_are_counted_and_frames_stay_whole`: a file size
/// limit (RLIMIT_FSIZE, so no root and no mount is needed) makes segment writes fail
/// part-way, as a full disk does; the writer must cut the partial frame, count the
/// error, carry on in a new segment and not panic.
#[test]
fn child_writer_on_a_full_disk() {
    let Ok(dir) = std::env::var(CHILD_FULL) else {
        return;
    };
    // SAFETY: plain libc calls on this (child) process with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: 1 << 20,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let rec = Recorder::open(RecorderConfig {
        block_bytes: 32 << 10,
        segment_bytes: 8 << 20,
        max_age: None,
        ..RecorderConfig::with_dir(&dir)
    })
    .unwrap();
    let w = Writer::start(rec.clone()).unwrap();
    for seq in 1..=200_000u64 {
        let ev = sample::event(
            seq,
            seq,
            Some("fu11"),
            (seq % 50) as u32,
            &format!("/data/{seq}/{}", seq * 7919),
        );
        while !w.try_append_event(Arc::new(ev.clone())) {
            std::thread::yield_now();
        }
    }
    let s = w.close().unwrap();
    println!(
        "STATS {} {} {} {}",
        s.appended, s.shed_disk_full, s.write_errors, s.blocks
    );
}

#[test]
fn full_disk_write_errors_are_counted_and_frames_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_writer_on_a_full_disk", "--exact", "--nocapture"])
        .env(CHILD_FULL, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("STATS "))
        .expect("stats line");
    let n: Vec<u64> = line[6..].split(' ').map(|x| x.parse().unwrap()).collect();
    let (appended, shed, errors, blocks) = (n[0], n[1], n[2], n[3]);
    assert_eq!(appended, 200_000);
    assert!(errors > 0, "{line}");
    // What was written reads back whole: every frame checks out.
    let rec = Recorder::open(common::config(dir.path())).unwrap();
    assert!(
        rec.repair_report().corrupt.is_empty(),
        "{:?}",
        rec.repair_report()
    );
    assert!(
        rec.repair_report().torn_tails.is_empty(),
        "{:?}",
        rec.repair_report()
    );
    let got = seqs(&rec);
    assert_eq!(got.len() as u64, appended - shed);
    assert!(blocks > 0);
}
