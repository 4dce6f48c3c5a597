//! A DNS message reader for the answers the kernel hands over (at most the first
//! kilobyte of each): the questions, and A/AAAA/CNAME answers to learn which name an
//! address came from. Malformed input ends the parse with what was read so far.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_NULL: u16 = 10;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;

/// What a DNS message said that matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsMessage {
    pub id: u16,
    pub response: bool,
    pub rcode: u8,
    /// (name, type) of each question.
    pub questions: Vec<(String, u16)>,
    /// (owner name, address) of each A/AAAA answer.
    pub addresses: Vec<(String, IpAddr)>,
    /// (alias, canonical name) of each CNAME answer.
    pub cnames: Vec<(String, String)>,
}

impl DnsMessage {
    /// The name a client asked for that `ip` answers, following CNAMEs back to the
    /// question.
    pub fn asked_name_for(&self, ip: &IpAddr) -> Option<&str> {
        let (owner, _) = self.addresses.iter().find(|(_, a)| a == ip)?;
        let mut name: &str = owner.as_str();
        for _ in 0..8 {
            match self.cnames.iter().find(|(_, target)| target == name) {
                Some((alias, _)) => name = alias,
                None => break,
            }
        }
        Some(name)
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Reads a (possibly compressed) name at `pos`; returns it and the position after it.
fn read_name(b: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *b.get(pos)? as usize;
        if len == 0 {
            return Some((name, end.unwrap_or(pos + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let target = ((len & 0x3f) << 8) | *b.get(pos + 1)? as usize;
            end.get_or_insert(pos + 2);
            if target >= pos {
                return None; // pointers only go backwards: no loops
            }
            pos = target;
            continue;
        }
        let label = b.get(pos + 1..pos + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|c| c.to_ascii_lowercase() as char));
        pos += 1 + len;
    }
    None
}

/// Parses what it can of a DNS message (from its header on).
pub fn parse(b: &[u8]) -> Option<DnsMessage> {
    if b.len() < 12 {
        return None;
    }
    let mut m = DnsMessage {
        id: u16_at(b, 0)?,
        response: b[2] & 0x80 != 0,
        rcode: b[3] & 0x0f,
        ..Default::default()
    };
    let qd = u16_at(b, 4)?;
    let an = u16_at(b, 6)?;
    let mut pos = 12;
    for _ in 0..qd.min(16) {
        let Some((name, next)) = read_name(b, pos) else {
            return Some(m);
        };
        let Some(qtype) = u16_at(b, next) else {
            return Some(m);
        };
        m.questions.push((name, qtype));
        pos = next + 4;
    }
    for _ in 0..an.min(64) {
        let Some((name, next)) = read_name(b, pos) else {
            break;
        };
        let (Some(rtype), Some(rdlen)) = (u16_at(b, next), u16_at(b, next + 8)) else {
            break;
        };
        let data = next + 10;
        let Some(rdata) = b.get(data..data + rdlen as usize) else {
            break;
        };
        match (rtype, rdata.len()) {
            (TYPE_A, 4) => {
                let a = Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]);
                m.addresses.push((name, IpAddr::V4(a)));
            }
            (TYPE_AAAA, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(rdata);
                m.addresses.push((name, IpAddr::V6(Ipv6Addr::from(o))));
            }
            (TYPE_CNAME, _) => {
                if let Some((target, _)) = read_name(b, data) {
                    m.cnames.push((name, target));
                }
            }
            _ => {}
        }
        pos = data + rdlen as usize;
    }
    Some(m)
}

/// Encodes a query (tests and the DNS sink): one question, recursion desired.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(name.len() + 18);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        b.push(label.len().min(63) as u8);
        b.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    b.push(0);
    b.extend_from_slice(&qtype.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `www.example.com A` through a CNAME, with compression.
    fn answer() -> Vec<u8> {
        let mut b = encode_query(7, "www.example.com", TYPE_A);
        b[2] = 0x81;
        b[3] = 0x80;
        b[7] = 2; // two answers
                  // www.example.com CNAME edge.example.net
        b.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60]);
        let target: Vec<u8> = [&[4u8][..], b"edge", &[7], b"example", &[3], b"net", &[0]].concat();
        b.extend_from_slice(&(target.len() as u16).to_be_bytes());
        let target_at = b.len();
        b.extend_from_slice(&target);
        // edge.example.net A 93.184.216.34
        b.extend_from_slice(&[0xc0, target_at as u8, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        b.extend_from_slice(&[93, 184, 216, 34]);
        b
    }

    #[test]
    fn reads_question_answers_and_follows_cnames() {
        let m = parse(&answer()).unwrap();
        assert!(m.response);
        assert_eq!(m.questions, vec![("www.example.com".into(), TYPE_A)]);
        let ip: IpAddr = "93.184.216.34".parse().unwrap();
        assert_eq!(m.addresses, vec![("edge.example.net".into(), ip)]);
        assert_eq!(m.asked_name_for(&ip), Some("www.example.com"));
    }

    #[test]
    fn malformed_input_stops_without_panicking() {
        let a = answer();
        for cut in 0..a.len() {
            let _ = parse(&a[..cut]);
        }
        // A pointer to itself.
        let mut b = encode_query(1, "a", TYPE_A);
        b[12] = 0xc0;
        b[13] = 12;
        assert!(parse(&b).unwrap().questions.is_empty());
    }
}
