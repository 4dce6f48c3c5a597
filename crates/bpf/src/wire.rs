//! Decoding of the records the kernel programs write (mirror of `bpf/rampart.h`).
//! Bounds-checked: a short or garbled record is an error, never a panic.

/// Declares wire constants and a table of them by name, so the table the wire test
/// compares with the object's BTF cannot miss one.
macro_rules! wire_consts {
    ($(#[$table_doc:meta])* $table:ident: $t:ty { $($(#[$doc:meta])* $name:ident = $v:expr,)* }) => {
        $($(#[$doc])* pub const $name: $t = $v;)*
        $(#[$table_doc])*
        pub const $table: &[(&str, $t)] = &[$((stringify!($name), $name),)*];
    };
}

/// Kind numbers as written by the kernel (`enum rampart_kind`, `K_<name>`).
pub mod kind {
    wire_consts! {
        /// Every kind by its name here (`K_` and the name in C).
        ALL: u16 {
            EXEC = 1,
            FORK = 2,
            EXIT = 3,
            OPEN = 4,
            UNLINK = 5,
            RENAME = 6,
            LINK = 7,
            CHMOD = 9,
            CHOWN = 10,
            TRUNCATE = 11,
            CONNECT = 12,
            ACCEPT = 13,
            BIND = 14,
            LISTEN = 15,
            DNS = 16,
            SETID = 17,
            CAPSET = 18,
            PTRACE = 19,
            MOUNT = 20,
            UMOUNT = 21,
            UNSHARE = 22,
            SETNS = 23,
            INIT_MODULE = 24,
            FINIT_MODULE = 25,
            BPF = 26,
            MEMFD = 27,
            CHDIR = 28,
            SOCKET = 29,
            DUP = 30,
            PROCESS_VM = 31,
            IO_URING = 32,
            EXEC_FAILED = 33,
            OPEN_BY_HANDLE = 34,
            RENAME_PROC = 35,
            CHROOT = 36,
        }
    }
}

wire_consts! {
    /// `args[5]` flags of syscall kinds (`enum rampart_event_flags`).
    EVENT_FLAGS: u64 {
        /// The syscall came through the 32-bit (ia32) entry.
        EVF_COMPAT = 1,
    }
}

wire_consts! {
    /// `args[0]` flags of exec records (`enum rampart_exec_flags`).
    EXEC_FLAGS: u64 {
        EXEC_F_MEMFD = 1,
        EXEC_F_DELETED = 2,
        EXEC_F_ARGS_TRUNC = 4,
        EXEC_F_UPPER_LAYER = 8,
        EXEC_F_ENV = 16,
        EXEC_F_ENV_TRUNC = 32,
    }
}

/// A C struct's layout as this side reads it: the struct's name and size, and each
/// member's name, offset and size. tests/wire_btf.rs compares it with the object's BTF.
#[derive(Debug)]
pub struct StructLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [FieldLayout],
}

#[derive(Debug)]
pub struct FieldLayout {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// Declares a `#[repr(C)]` mirror of a C struct (C's member names and types) and its
/// [`StructLayout`]: the compiler lays the mirror out by C's rules, so the offsets the
/// decoder reads at are computed, not copied numbers.
macro_rules! mirror {
    ($(#[$doc:meta])* struct $name:ident = $c:literal { $($field:ident: $t:ty,)* }) => {
        $(#[$doc])*
        #[repr(C)]
        #[allow(dead_code)] // never built: only its layout is used
        struct $name { $($field: $t,)* }
        impl $name {
            const LAYOUT: StructLayout = StructLayout {
                name: $c,
                size: core::mem::size_of::<$name>(),
                fields: &[$(FieldLayout {
                    name: stringify!($field),
                    offset: core::mem::offset_of!($name, $field),
                    size: core::mem::size_of::<$t>(),
                },)*],
            };
        }
    };
}

mirror! {
    /// `struct ev_hdr`: the fixed header of every record.
    struct EvHdr = "ev_hdr" {
        kind: u16,
        size: u16,
        tgid: u32,
        tid: u32,
        ppid: u32,
        ts: u64,
        start: u64,
        pstart: u64,
        cgid: u64,
        uid: u32,
        gid: u32,
        euid: u32,
        egid: u32,
        auid: u32,
        tty: u32,
        comm: [u8; 16],
        args: [u64; 6],
        cpuset_cgid: u64,
    }
}

mirror! {
    /// `struct sock_addr_wire`: an address the kernel synthesizes from a socket (the
    /// "wire addr" strings of socket kinds).
    struct SockAddrWire = "sock_addr_wire" {
        family: u16,
        port: u16,
        addr: [u8; 16],
    }
}

/// Every fixed-layout struct the kernel writes into records.
pub const LAYOUTS: &[StructLayout] = &[EvHdr::LAYOUT, SockAddrWire::LAYOUT];

/// Size of `struct ev_hdr`.
pub const HDR_LEN: usize = core::mem::size_of::<EvHdr>();

/// Size of `struct sock_addr_wire`.
pub const SOCK_ADDR_WIRE_LEN: usize = core::mem::size_of::<SockAddrWire>();

/// Offset of a `struct ev_hdr` member.
macro_rules! at {
    ($field:ident) => {
        core::mem::offset_of!(EvHdr, $field)
    };
}

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
        let size = u16_at(buf, at!(size)) as usize;
        if size < HDR_LEN || size > buf.len() {
            return Err(WireError::SizeMismatch {
                declared: size,
                actual: buf.len(),
            });
        }
        let buf = &buf[..size];
        let mut comm = [0u8; 16];
        comm.copy_from_slice(&buf[at!(comm)..at!(comm) + 16]);
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            *a = u64_at(buf, at!(args) + i * 8);
        }
        let hdr = Header {
            kind: u16_at(buf, at!(kind)),
            tgid: u32_at(buf, at!(tgid)),
            tid: u32_at(buf, at!(tid)),
            ppid: u32_at(buf, at!(ppid)),
            ts: u64_at(buf, at!(ts)),
            start: u64_at(buf, at!(start)),
            pstart: u64_at(buf, at!(pstart)),
            cgroup_id: u64_at(buf, at!(cgid)),
            uid: u32_at(buf, at!(uid)),
            gid: u32_at(buf, at!(gid)),
            euid: u32_at(buf, at!(euid)),
            egid: u32_at(buf, at!(egid)),
            auid: u32_at(buf, at!(auid)),
            tty: u32_at(buf, at!(tty)),
            comm,
            args,
            cpuset_cgroup_id: u64_at(buf, at!(cpuset_cgid)),
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
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(at!(kind), &hdr.kind.to_ne_bytes());
    put(at!(tgid), &hdr.tgid.to_ne_bytes());
    put(at!(tid), &hdr.tid.to_ne_bytes());
    put(at!(ppid), &hdr.ppid.to_ne_bytes());
    put(at!(ts), &hdr.ts.to_ne_bytes());
    put(at!(start), &hdr.start.to_ne_bytes());
    put(at!(pstart), &hdr.pstart.to_ne_bytes());
    put(at!(cgid), &hdr.cgroup_id.to_ne_bytes());
    put(at!(uid), &hdr.uid.to_ne_bytes());
    put(at!(gid), &hdr.gid.to_ne_bytes());
    put(at!(euid), &hdr.euid.to_ne_bytes());
    put(at!(egid), &hdr.egid.to_ne_bytes());
    put(at!(auid), &hdr.auid.to_ne_bytes());
    put(at!(tty), &hdr.tty.to_ne_bytes());
    put(at!(comm), &hdr.comm);
    for (i, a) in hdr.args.iter().enumerate() {
        put(at!(args) + i * 8, &a.to_ne_bytes());
    }
    put(at!(cpuset_cgid), &hdr.cpuset_cgroup_id.to_ne_bytes());
    for s in strings {
        b.extend_from_slice(&(s.len() as u16).to_ne_bytes());
        b.extend_from_slice(s);
    }
    let size = b.len() as u16;
    b[at!(size)..at!(size) + 2].copy_from_slice(&size.to_ne_bytes());
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
