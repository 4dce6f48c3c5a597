//! A full disk, for real: the recorder's directory on a 2 MiB tmpfs this test mounts
//! (root; skips with the reason elsewhere, fails in CI), a recorder stage in a real
//! pipeline beside a stage that counts what it is handed. First the recording outgrows
//! the filesystem (the recorder deletes its oldest segments to make room), then a
//! ballast file takes every free byte (the recorder sheds blocks and counts them, the
//! catalog's SQLite fails too), then the ballast goes: recording resumes, the gap is a
//! `lost` event with source `recorder`, and what was written reads back whole.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_agent::stages::RecorderStage;
use rampart_agent::{
    Batch, PipelineBuilder, Record, Stage, StageContext, StageError, Subscription,
};
use rampart_event::{Event, LossSource, Payload};
use rampart_recorder::{sample, Query, Recorder, RecorderConfig};

/// Counts the events it is handed: the rest of the pipeline.
struct Counter(Arc<AtomicU64>);

impl Stage for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    fn subscription(&self) -> Subscription {
        Subscription::ALL
    }

    fn when_full(&self) -> rampart_agent::WhenFull {
        rampart_agent::WhenFull::Block
    }

    fn handle(&mut self, batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        let n = batch
            .records
            .iter()
            .filter(|r| matches!(r, Record::Event(_)))
            .count();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A tmpfs mounted for the test, unmounted when dropped (also on a failed assert).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "rampart-rec-full",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mounting a {size} tmpfs needs root: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An event whose path does not compress away, so the bytes on disk add up.
fn event(seq: u64) -> Arc<Event> {
    let h = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Arc::new(sample::event(
        rampart_agent::wall_ns(),
        seq,
        Some("d15cf011d15cf011d15cf011d15cf011d15cf011d15cf011d15cf011d15cf011"),
        (seq % 300) as u32,
        &format!("/data/{h:016x}/{:08x}", h >> 17),
    ))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn seqs(rec: &Arc<Recorder>) -> Vec<u64> {
    let mut v: Vec<u64> = rec
        .query(&Query::new())
        .unwrap()
        .filter_map(|r| match r {
            rampart_recorder::Record::Event(e) if e.process.is_some() => Some(e.seq),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v
}

fn recorded_losses(rec: &Arc<Recorder>) -> u64 {
    rec.query(&Query::new())
        .unwrap()
        .filter_map(|r| match r {
            rampart_recorder::Record::Event(e) => match e.payload {
                Payload::Lost {
                    source: LossSource::Recorder,
                    count,
                    ..
                } => Some(count),
                _ => None,
            },
            _ => None,
        })
        .sum()
}

#[test]
fn a_full_disk_drops_old_segments_then_sheds_and_recording_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = match Mount::tmpfs(tmp.path(), "2m") {
        Ok(m) => m,
        Err(why) => {
            rampart_testbed::skip_or_fail(why);
            return;
        }
    };
    let dir = mount.0.join("recording");
    let config = RecorderConfig {
        segment_bytes: 128 << 10,
        block_bytes: 8 << 10,
        max_block_age: Duration::from_millis(20),
        // Only the filesystem bounds it.
        max_total_bytes: u64::MAX,
        max_age: None,
        sync_on_flush: false,
        ..RecorderConfig::with_dir(&dir)
    };
    let (stage, _report) = RecorderStage::open(config.clone()).unwrap();
    let rec = stage.recorder();
    let counted = Arc::new(AtomicU64::new(0));
    let mut pipeline = PipelineBuilder::new()
        .stage(stage)
        .stage(Counter(counted.clone()))
        .start()
        .unwrap();
    let mut pushed = 0u64;
    let mut push = move |pipeline: &mut rampart_agent::Pipeline, from: u64, n: u64| {
        for chunk in (from..from + n).collect::<Vec<_>>().chunks(200) {
            pipeline.push_events(chunk.iter().map(|&s| event(s)).collect());
            pipeline.flush(rampart_agent::wall_ns());
            // At a pace the writer keeps up with: the losses here are the disk's.
            std::thread::sleep(Duration::from_millis(2));
        }
        pushed += n;
        pushed
    };

    // The recording outgrows the 2 MiB: the oldest segments go to make room.
    let total = push(&mut pipeline, 1, 120_000);
    wait_for("the writer to take phase one", || {
        let s = rec.stats();
        s.appended + s.shed >= total
    });
    wait_for("old segments deleted for room", || {
        rec.stats().segments_deleted > 0
    });
    wait_for("the counting stage", || {
        counted.load(Ordering::Relaxed) == total
    });
    let s = rec.stats();
    assert!(s.write_errors > 0, "{s:?}");
    let got = seqs(&rec);
    eprintln!("phase one: {s:?}, {} read back", got.len());
    assert!(
        got.last().is_some_and(|&l| l > 110_000),
        "the newest records are kept: {:?}",
        got.last()
    );
    assert!(got.first().is_some_and(|&f| f > 1), "the oldest went");

    // Another writer takes every byte that comes free, the segments the recorder
    // deletes included: once it has none left to delete, it sheds blocks and counts.
    let ballast = mount.0.join("ballast");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let filler = {
        let (path, stop) = (ballast.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&path).unwrap();
            let chunk = vec![0x5au8; 4096];
            while !stop.load(Ordering::Relaxed) {
                if f.write_all(&chunk).is_err() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let before = rec.stats().shed_disk_full;
    let mut from = 200_000;
    let mut total = total;
    while rec.stats().shed_disk_full == before && from < 600_000 {
        total = push(&mut pipeline, from, 5_000);
        from += 5_000;
    }
    wait_for("blocks shed for the full disk", || {
        rec.stats().shed_disk_full > before
    });
    wait_for("the counting stage", || {
        counted.load(Ordering::Relaxed) == total
    });
    stop.store(true, Ordering::Relaxed);
    filler.join().unwrap();
    let full = rec.stats();
    eprintln!("disk full: {full:?}");
    assert!(full.shed_disk_full > 0);

    // Space returns: recording resumes, with the gap marked.
    std::fs::remove_file(&ballast).unwrap();
    let total = push(&mut pipeline, 1_000_000, 2_000);
    wait_for("the counting stage", || {
        counted.load(Ordering::Relaxed) == total
    });
    wait_for("the new records catalogued and readable", || {
        let got = seqs(&rec);
        (1_000_000..1_002_000).all(|s| got.binary_search(&s).is_ok())
    });
    let shed_total = {
        let s = rec.stats();
        s.shed + s.shed_disk_full
    };
    // Every record lost is in a mark: marks a full disk shed are passed on (their
    // own record counted too), so the marks that made it cover at least the records
    // shed up to the disk-full phase's end.
    wait_for("the losses marked in the recording", || {
        pipeline.flush(rampart_agent::wall_ns());
        recorded_losses(&rec) > 0
    });
    let marked = recorded_losses(&rec);
    let lost_records = full.shed + full.shed_disk_full;
    // Marks never claim more than the writer counted (a mark passed on is counted
    // again there, so the counters may say more than the marks).
    let counted_now = rec.stats();
    assert!(marked <= counted_now.shed + counted_now.shed_disk_full);
    eprintln!("marked {marked} of {lost_records} counted (marks passed on counted twice there)");
    let stats = pipeline.shutdown();
    assert_eq!(stats.events, total);
    drop(rec);

    // What was written reads back whole: no torn or corrupt frame, the catalog repaired.
    let reopened = Recorder::open(config).unwrap();
    let report = reopened.repair_report();
    assert!(report.corrupt.is_empty(), "{report:?}");
    let got = seqs(&reopened);
    assert!((1_000_000..1_002_000).all(|s| got.binary_search(&s).is_ok()));
    // The marks are on disk, not only in this process's view.
    assert!(recorded_losses(&reopened) >= marked);
    eprintln!(
        "pushed {total}, recorded {} at the end, shed {shed_total} in all, {} segments deleted for room",
        got.len(),
        full.segments_deleted
    );
    drop(reopened);
    drop(mount);
}
