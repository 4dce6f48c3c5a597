//! The TLS ClientHello the kernel read from a flow's first egress data: the server
//! name (SNI) and the JA4 client fingerprint (FoxIO's JA4, the `t` (TCP) variant:
//! `t13d1516h2_<ciphers hash>_<extensions hash>`).

use sha2::{Digest, Sha256};

/// What a ClientHello says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub ja4: String,
}

/// GREASE values (RFC 8701) are left out of JA4.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }
}

fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Parses a TLS record holding a ClientHello (from its record header on). A
/// ClientHello cut short by the kernel's copy still yields what was read.
pub fn parse_client_hello(record: &[u8]) -> Option<ClientHello> {
    let mut r = Reader { b: record, pos: 0 };
    if r.u8()? != 0x16 {
        return None;
    }
    let _record_version = r.u16()?;
    let _record_len = r.u16()?;
    if r.u8()? != 1 {
        return None;
    }
    r.take(3)?; // handshake length
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    let sid = r.u8()? as usize;
    r.take(sid)?;
    let cs_len = r.u16()? as usize;
    let cs = r.take(cs_len)?;
    let ciphers: Vec<u16> = cs
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .filter(|c| !grease(*c))
        .collect();
    let comp = r.u8()? as usize;
    r.take(comp)?;
    let mut sni = None;
    let mut alpn = Vec::new();
    let mut exts: Vec<u16> = Vec::new();
    let mut sig_algs: Vec<u16> = Vec::new();
    let mut version = legacy_version;
    if let Some(ext_len) = r.u16() {
        let end = (r.pos + ext_len as usize).min(record.len());
        while r.pos + 4 <= end {
            let (Some(t), Some(l)) = (r.u16(), r.u16()) else {
                break;
            };
            let Some(data) = r.take(l as usize) else {
                break;
            };
            if grease(t) {
                continue;
            }
            exts.push(t);
            let mut d = Reader { b: data, pos: 0 };
            match t {
                0 => {
                    // server_name list: the first host_name.
                    let _list = d.u16();
                    if d.u8() == Some(0) {
                        if let Some(n) = d.u16().and_then(|n| d.take(n as usize)) {
                            sni = Some(String::from_utf8_lossy(n).to_ascii_lowercase());
                        }
                    }
                }
                16 => {
                    let _list = d.u16();
                    while let Some(n) = d.u8() {
                        match d.take(n as usize) {
                            Some(p) => alpn.push(String::from_utf8_lossy(p).into_owned()),
                            None => break,
                        }
                    }
                }
                13 => {
                    let n = d.u16().unwrap_or(0) as usize / 2;
                    for _ in 0..n {
                        match d.u16() {
                            Some(v) => sig_algs.push(v),
                            None => break,
                        }
                    }
                }
                43 => {
                    let n = d.u8().unwrap_or(0) as usize / 2;
                    let mut best = 0;
                    for _ in 0..n {
                        match d.u16() {
                            Some(v) if !grease(v) => best = best.max(v),
                            _ => {}
                        }
                    }
                    if best > 0 {
                        version = best;
                    }
                }
                _ => {}
            }
        }
    }
    let ver = match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        _ => "00",
    };
    let alpn_code = alpn
        .first()
        .map(|a| {
            let b = a.as_bytes();
            match (b.first(), b.last()) {
                (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() => {
                    format!("{}{}", *f as char, *l as char)
                }
                (Some(f), Some(l)) => format!("{:x}{:x}", f >> 4, l & 0xf),
                _ => "00".into(),
            }
        })
        .unwrap_or_else(|| "00".into());
    let a = format!(
        "t{ver}{}{:02}{:02}{alpn_code}",
        if sni.is_some() { 'd' } else { 'i' },
        ciphers.len().min(99),
        exts.len().min(99)
    );
    let mut sorted_ciphers = ciphers.clone();
    sorted_ciphers.sort_unstable();
    let b = hash12(
        &sorted_ciphers
            .iter()
            .map(|c| format!("{c:04x}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    let mut sorted_exts: Vec<u16> = exts
        .iter()
        .copied()
        .filter(|e| *e != 0 && *e != 16)
        .collect();
    sorted_exts.sort_unstable();
    let mut c_in = sorted_exts
        .iter()
        .map(|e| format!("{e:04x}"))
        .collect::<Vec<_>>()
        .join(",");
    if !sig_algs.is_empty() {
        c_in.push('_');
        c_in.push_str(
            &sig_algs
                .iter()
                .map(|s| format!("{s:04x}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    let c = hash12(&c_in);
    Some(ClientHello {
        sni,
        alpn,
        ja4: format!("{a}_{b}_{c}"),
    })
}

/// Builds a minimal ClientHello (tests).
pub fn build_client_hello(sni: Option<&str>, ciphers: &[u16], alpn: Option<&str>) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let n = name.as_bytes();
        let mut d = Vec::new();
        d.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
        d.push(0);
        d.extend_from_slice(&(n.len() as u16).to_be_bytes());
        d.extend_from_slice(n);
        exts.extend_from_slice(&0u16.to_be_bytes());
        exts.extend_from_slice(&(d.len() as u16).to_be_bytes());
        exts.extend_from_slice(&d);
    }
    if let Some(p) = alpn {
        let mut d = Vec::new();
        d.extend_from_slice(&((p.len() + 1) as u16).to_be_bytes());
        d.push(p.len() as u8);
        d.extend_from_slice(p.as_bytes());
        exts.extend_from_slice(&16u16.to_be_bytes());
        exts.extend_from_slice(&(d.len() as u16).to_be_bytes());
        exts.extend_from_slice(&d);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&((ciphers.len() * 2) as u16).to_be_bytes());
    for c in ciphers {
        body.extend_from_slice(&c.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sni_alpn_and_fingerprints_without_grease() {
        let a = build_client_hello(Some("Example.COM"), &[0x1301, 0x1302, 0x0a0a], Some("h2"));
        let h = parse_client_hello(&a).unwrap();
        assert_eq!(h.sni.as_deref(), Some("example.com"));
        assert_eq!(h.alpn, vec!["h2".to_string()]);
        assert!(h.ja4.starts_with("t12d0202h2_"), "{}", h.ja4);
        // GREASE does not change the fingerprint; the cipher set does.
        let b = build_client_hello(Some("example.com"), &[0x1302, 0x1301], Some("h2"));
        assert_eq!(parse_client_hello(&b).unwrap().ja4, h.ja4);
        let c = build_client_hello(Some("example.com"), &[0x1301], Some("h2"));
        assert_ne!(parse_client_hello(&c).unwrap().ja4, h.ja4);
        let bare = parse_client_hello(&build_client_hello(None, &[0x1301], None)).unwrap();
        assert!(
            bare.sni.is_none() && bare.ja4.starts_with("t12i0100"),
            "{}",
            bare.ja4
        );
        for cut in 0..a.len() {
            let _ = parse_client_hello(&a[..cut]);
        }
    }
}
