//! Packets around an alert. The kernel copies the packets of captured containers
//! (headers and the first payload bytes, `snaplen` in all) to a ring buffer; here each
//! container keeps the last `seconds` of them, and a capture asked for an alert (or on
//! demand) is written as pcapng for a window from before the alert to after it, once
//! the window has passed. Several captures can be pending at once.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;

use rampart_bpf::netflow::CapturedPacket;
use serde::{Deserialize, Serialize};

const NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Capture every container's packets into its rolling buffer.
    pub enabled: bool,
    /// Seconds of packets kept per container.
    pub seconds: u64,
    /// Bytes kept of each packet, IP header on (headers plus the first payload).
    pub snaplen: u32,
    /// Most packets kept per container (the oldest go first).
    pub max_packets: usize,
    /// A capture for an alert covers this long before it and after it.
    pub before_secs: u64,
    pub after_secs: u64,
    /// Where pcapng files go.
    pub dir: PathBuf,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            seconds: 30,
            // 60 bytes of IPv4 + TCP headers with options, then 128 of payload.
            snaplen: 188,
            max_packets: 50_000,
            before_secs: 30,
            after_secs: 5,
            dir: PathBuf::from("/var/lib/rampart/captures"),
        }
    }
}

/// A capture waiting for its window to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCapture {
    pub name: String,
    pub cgroup_id: u64,
    pub from_ns: u64,
    pub until_ns: u64,
}

/// Per-container rolling packet buffers and pending captures.
#[derive(Debug, Default)]
pub struct CaptureBuffers {
    pub config: CaptureConfig,
    buffers: HashMap<u64, VecDeque<CapturedPacket>>,
    pending: Vec<PendingCapture>,
    pub dropped: u64,
}

impl CaptureBuffers {
    pub fn new(config: CaptureConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    pub fn push(&mut self, p: CapturedPacket) {
        let max = self.config.max_packets;
        let buf = self.buffers.entry(p.flow.cgroup_id).or_default();
        if buf.len() >= max {
            buf.pop_front();
            self.dropped += 1;
        }
        buf.push_back(p);
    }

    /// Drops packets older than the rolling window (the pending captures' windows
    /// are kept).
    pub fn prune(&mut self, now_ns: u64) {
        let keep_from = now_ns.saturating_sub(self.config.seconds * NS);
        for (cg, buf) in &mut self.buffers {
            let oldest_needed = self
                .pending
                .iter()
                .filter(|c| c.cgroup_id == *cg)
                .map(|c| c.from_ns)
                .min()
                .unwrap_or(u64::MAX)
                .min(keep_from);
            while buf.front().is_some_and(|p| p.ts_ns < oldest_needed) {
                buf.pop_front();
            }
        }
        self.buffers.retain(|_, b| !b.is_empty());
    }

    pub fn packets(&self, cgroup_id: u64) -> usize {
        self.buffers.get(&cgroup_id).map_or(0, VecDeque::len)
    }

    /// Asks for a capture of container `cgroup_id` around `at_ns`, written once the
    /// window after it has passed, as `<dir>/<name>.pcapng` (name made safe:
    /// [`rampart_event::capture_file_name`]).
    pub fn request(&mut self, name: &str, cgroup_id: u64, at_ns: u64) {
        self.pending.push(PendingCapture {
            name: name.to_owned(),
            cgroup_id,
            from_ns: at_ns.saturating_sub(self.config.before_secs * NS),
            until_ns: at_ns + self.config.after_secs * NS,
        });
    }

    /// Writes the captures whose window ended; returns their paths.
    pub fn complete(&mut self, now_ns: u64) -> std::io::Result<Vec<PathBuf>> {
        let (due, rest): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|c| c.until_ns <= now_ns);
        self.pending = rest;
        let mut written = Vec::new();
        for c in due {
            std::fs::create_dir_all(&self.config.dir)?;
            let path = self
                .config
                .dir
                .join(rampart_event::capture_file_name(&c.name));
            let packets: Vec<&CapturedPacket> = self
                .buffers
                .get(&c.cgroup_id)
                .map(|b| {
                    b.iter()
                        .filter(|p| p.ts_ns >= c.from_ns && p.ts_ns <= c.until_ns)
                        .collect()
                })
                .unwrap_or_default();
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
            write_pcapng(&mut f, packets, self.config.snaplen)?;
            f.flush()?;
            written.push(path);
        }
        Ok(written)
    }

    pub fn pending(&self) -> &[PendingCapture] {
        &self.pending
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Writes packets (IP header on, no link layer: LINKTYPE_RAW) as pcapng with
/// nanosecond timestamps.
pub fn write_pcapng<'a>(
    w: &mut impl Write,
    packets: impl IntoIterator<Item = &'a CapturedPacket>,
    snaplen: u32,
) -> std::io::Result<()> {
    // Section header block.
    let shb_len: u32 = 28;
    w.write_all(&0x0A0D_0D0Au32.to_le_bytes())?;
    w.write_all(&shb_len.to_le_bytes())?;
    w.write_all(&0x1A2B_3C4Du32.to_le_bytes())?;
    w.write_all(&1u16.to_le_bytes())?;
    w.write_all(&0u16.to_le_bytes())?;
    w.write_all(&u64::MAX.to_le_bytes())?; // section length unknown
    w.write_all(&shb_len.to_le_bytes())?;
    // Interface description block: raw IP, if_tsresol = 9 (ns).
    let idb_len: u32 = 20 + 8 + 4;
    w.write_all(&1u32.to_le_bytes())?;
    w.write_all(&idb_len.to_le_bytes())?;
    w.write_all(&101u16.to_le_bytes())?;
    w.write_all(&0u16.to_le_bytes())?;
    w.write_all(&snaplen.to_le_bytes())?;
    w.write_all(&9u16.to_le_bytes())?;
    w.write_all(&1u16.to_le_bytes())?;
    w.write_all(&[9, 0, 0, 0])?;
    w.write_all(&[0, 0, 0, 0])?; // end of options
    w.write_all(&idb_len.to_le_bytes())?;
    for p in packets {
        let pad = pad4(p.data.len());
        let len = (32 + p.data.len() + pad) as u32;
        w.write_all(&6u32.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&((p.ts_ns >> 32) as u32).to_le_bytes())?;
        w.write_all(&(p.ts_ns as u32).to_le_bytes())?;
        w.write_all(&(p.data.len() as u32).to_le_bytes())?;
        w.write_all(&p.wire_len.max(p.data.len() as u32).to_le_bytes())?;
        w.write_all(&p.data)?;
        w.write_all(&[0u8; 3][..pad])?;
        w.write_all(&len.to_le_bytes())?;
    }
    Ok(())
}
