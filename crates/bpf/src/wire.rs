//! Decoding of the records the kernel programs write (mirror of `bpf/rampart.h`).
//! Bounds-checked: a short or garbled record is an error, never a panic.

/// Kind numbers as written by the kernel.
pub mod kind {
    pub const EXEC: u16 = 1;
    pub const FORK: u16 = 2;
    pub const EXIT: u16 = 3;
    pub const OPEN: u16 = 4;
    pub const UNLINK: u16 = 5;
    pub const RENAME: u16 = 6;
    pub const LINK: u16 = 7;
    pub const CHMOD: u16 = 9;
    pub const CHOWN: u16 = 10;
    pub const TRUNCATE: u16 = 11;
    pub const CONNECT: u16 = 12;
    pub const ACCEPT: u16 = 13;
    pub const BIND: u16 = 14;
    pub const LISTEN: u16 = 15;
    pub const DNS: u16 = 16;
    pub const SETID: u16 = 17;
    pub const CAPSET: u16 = 18;
    pub const PTRACE: u16 = 19;
    pub const MOUNT: u16 = 20;
    pub const UMOUNT: u16 = 21;
    pub const UNSHARE: u16 = 22;
    pub const SETNS: u16 = 23;
    pub const INIT_MODULE: u16 = 24;
    pub const FINIT_MODULE: u16 = 25;
    pub const BPF: u16 = 26;
    pub const MEMFD: u16 = 27;
    pub const CHDIR: u16 = 28;
    pub const SOCKET: u16 = 29;
    pub const DUP: u16 = 30;
    pub const PROCESS_VM: u16 = 31;
    pub const IO_URING: u16 = 32;
    pub const EXEC_FAILED: u16 = 33;
    pub const OPEN_BY_HANDLE: u16 = 34;
    pub const RENAME_PROC: u16 = 35;
    pub const CHROOT: u16 = 36;
}

/// `args[5]` of syscall kinds: the syscall came through the 32-bit (ia32) entry.
pub const EVF_COMPAT: u64 = 1;

pub const EXEC_F_MEMFD: u64 = 1;
pub const EXEC_F_DELETED: u64 = 2;
pub const EXEC_F_ARGS_TRUNC: u64 = 4;
pub const EXEC_F_UPPER_LAYER: u64 = 8;

/// Size of `struct ev_hdr`.
pub const HDR_LEN: usize = 144;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("record of {0} bytes is shorter than the {HDR_LEN}-byte header")]
    Short(usize),
    #[error("record declares {declared} bytes but {actual} arrived")]
    SizeMismatch { declared: usize, actual: usize },
    #[error("string {index} runs past the end of the record")]
    StringOverrun { index: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u16),
}

/// The fixed header of every record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub kind: u16,
    pub tgid: u32,
    pub tid: u32,
    pub ppid: u32,
    /// Boot-time clock (CLOCK_BOOTTIME) nanoseconds.
    pub ts: u64,
    /// Start of the process (group leader), boot-time ns.
    pub start: u64,
    /// Start of the parent process, boot-time ns.
    pub pstart: u64,
    pub cgroup_id: u64,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub auid: u32,
    pub tty: u32,
    pub comm: [u8; 16],
    pub args: [u64; 6],
    /// The cpuset controller's cgroup id: the cgroup a container has on v1 hosts,
    /// where the v2 id is the root's for every container.
    pub cpuset_cgroup_id: u64,
}

/// A decoded record: header plus its strings, borrowed from the ring buffer.
#[derive(Debug)]
pub struct Record<'a> {
    pub hdr: Header,
    /// cgroup v2 leaf name.
    pub cgroup_leaf: &'a [u8],
    /// cgroup v1 cpuset leaf name (fallback on hybrid hosts).
    pub cpuset_leaf: &'a [u8],
    strings: &'a [u8],
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_ne_bytes(a)
}

impl<'a> Record<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < HDR_LEN {
            return Err(WireError::Short(buf.len()));
        }
        let size = u16_at(buf, 2) as usize;
        if size < HDR_LEN || size > buf.len() {
            return Err(WireError::SizeMismatch {
                declared: size,
                actual: buf.len(),
            });
        }
        let buf = &buf[..size];
        let mut comm = [0u8; 16];
        comm.copy_from_slice(&buf[72..88]);
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            *a = u64_at(buf, 88 + i * 8);
        }
        let hdr = Header {
            kind: u16_at(buf, 0),
            tgid: u32_at(buf, 4),
            tid: u32_at(buf, 8),
            ppid: u32_at(buf, 12),
            ts: u64_at(buf, 16),
            start: u64_at(buf, 24),
            pstart: u64_at(buf, 32),
            cgroup_id: u64_at(buf, 40),
            uid: u32_at(buf, 48),
            gid: u32_at(buf, 52),
            euid: u32_at(buf, 56),
            egid: u32_at(buf, 60),
            auid: u32_at(buf, 64),
            tty: u32_at(buf, 68),
            comm,
            args,
            cpuset_cgroup_id: u64_at(buf, 136),
        };
        let mut rec = Record {
            hdr,
            cgroup_leaf: &[],
            cpuset_leaf: &[],
            strings: &buf[HDR_LEN..],
        };
        let mut it = rec.strings();
        rec.cgroup_leaf = it.next().transpose()?.unwrap_or(&[]);
        rec.cpuset_leaf = it.next().transpose()?.unwrap_or(&[]);
        rec.strings = it.rest;
        Ok(rec)
    }

    /// The kind-specific strings, in order.
    pub fn strings(&self) -> Strings<'a> {
        Strings {
            rest: self.strings,
            index: 0,
        }
    }

    /// The first `N` kind-specific strings; missing ones are empty.
    pub fn take<const N: usize>(&self) -> Result<[&'a [u8]; N], WireError> {
        let mut out = [&[][..]; N];
        let mut it = self.strings();
        for slot in out.iter_mut() {
            match it.next() {
                Some(s) => *slot = s?,
                None => break,
            }
        }
        Ok(out)
    }

    pub fn comm(&self) -> &[u8] {
        let end = self.hdr.comm.iter().position(|b| *b == 0).unwrap_or(16);
        &self.hdr.comm[..end]
    }
}

/// Iterator over length-prefixed strings.
pub struct Strings<'a> {
    rest: &'a [u8],
    index: usize,
}

impl<'a> Iterator for Strings<'a> {
    type Item = Result<&'a [u8], WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 2 {
            return None;
        }
        let len = u16_at(self.rest, 0) as usize;
        let index = self.index;
        self.index += 1;
        if self.rest.len() < 2 + len {
            self.rest = &[];
            return Some(Err(WireError::StringOverrun { index }));
        }
        let s = &self.rest[2..2 + len];
        self.rest = &self.rest[2 + len..];
        Some(Ok(s))
    }
}

/// Builds records the way the kernel does; for tests and benchmarks of the decoder.
pub fn encode(hdr: &Header, strings: &[&[u8]]) -> Vec<u8> {
    let mut b = vec![0u8; HDR_LEN];
    b[0..2].copy_from_slice(&hdr.kind.to_ne_bytes());
    b[4..8].copy_from_slice(&hdr.tgid.to_ne_bytes());
    b[8..12].copy_from_slice(&hdr.tid.to_ne_bytes());
    b[12..16].copy_from_slice(&hdr.ppid.to_ne_bytes());
    b[16..24].copy_from_slice(&hdr.ts.to_ne_bytes());
    b[24..32].copy_from_slice(&hdr.start.to_ne_bytes());
    b[32..40].copy_from_slice(&hdr.pstart.to_ne_bytes());
    b[40..48].copy_from_slice(&hdr.cgroup_id.to_ne_bytes());
    for (i, v) in [hdr.uid, hdr.gid, hdr.euid, hdr.egid, hdr.auid, hdr.tty]
        .iter()
        .enumerate()
    {
        b[48 + i * 4..52 + i * 4].copy_from_slice(&v.to_ne_bytes());
    }
    b[72..88].copy_from_slice(&hdr.comm);
    for (i, a) in hdr.args.iter().enumerate() {
        b[88 + i * 8..96 + i * 8].copy_from_slice(&a.to_ne_bytes());
    }
    b[136..144].copy_from_slice(&hdr.cpuset_cgroup_id.to_ne_bytes());
    for s in strings {
        b.extend_from_slice(&(s.len() as u16).to_ne_bytes());
        b.extend_from_slice(s);
    }
    let size = b.len() as u16;
    b[2..4].copy_from_slice(&size.to_ne_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let hdr = Header {
            kind: kind::OPEN,
            tgid: 10,
            tid: 11,
            ppid: 1,
            ts: 5,
            cgroup_id: 77,
            cpuset_cgroup_id: 78,
            comm: *b"cat\0\0\0\0\0\0\0\0\0\0\0\0\0",
            args: [3, 0, 0, 257, 0, 0],
            ..Default::default()
        };
        let buf = encode(&hdr, &[b"leaf", b"", b"/etc/shadow", b""]);
        let rec = Record::parse(&buf).unwrap();
        assert_eq!(rec.hdr, hdr);
        assert_eq!(rec.cgroup_leaf, b"leaf");
        assert_eq!(rec.comm(), b"cat");
        let [path, base] = rec.take::<2>().unwrap();
        assert_eq!((path, base), (&b"/etc/shadow"[..], &b""[..]));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(Record::parse(&[0u8; 10]).unwrap_err(), WireError::Short(10));
        let mut buf = encode(&Header::default(), &[b"a", b"b", b"xyz"]);
        // Lie about a string length.
        let n = buf.len();
        buf[n - 5] = 200;
        let rec = Record::parse(&buf).unwrap();
        assert!(rec.take::<1>().is_err());
        // Random bytes of every length parse or fail cleanly.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Ok(r) = Record::parse(&bytes) {
                for s in r.strings() {
                    let _ = s;
                }
            }
        }
    }
}
