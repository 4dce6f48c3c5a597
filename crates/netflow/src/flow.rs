//! One flow as the graph and the detectors see it: a container's connection to a
//! named peer, with its counters.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The L4 protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    /// Another IP protocol, by number.
    Other(u8),
}

impl Proto {
    pub fn from_number(n: u8) -> Self {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            n => Proto::Other(n),
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Other(n) => n,
        }
    }

    pub fn name(self) -> String {
        match self {
            Proto::Tcp => "tcp".into(),
            Proto::Udp => "udp".into(),
            Proto::Other(n) => format!("ip{n}"),
        }
    }

    /// Parses `tcp`, `udp` or `ipN`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            other => other
                .strip_prefix("ip")
                .and_then(|n| n.parse().ok())
                .map(Proto::from_number),
        }
    }
}

impl Serialize for Proto {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Proto {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Proto::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?}: expected tcp, udp or ipN")))
    }
}

/// Who opened the flow, from the container's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The container opened it.
    Outbound,
    /// The peer opened it.
    Inbound,
    /// First seen mid-stream.
    Unknown,
}

/// The far end of a flow, named.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Peer {
    /// Another container on this node.
    Container {
        id: String,
        name: String,
        image: String,
        /// Its workload key (see [`crate::ContainerInfo::workload`]).
        workload: String,
    },
    /// The node itself (one of its addresses).
    Host,
    /// The container's own loopback.
    Loopback,
    /// Anything else, with the DNS name the container resolved it from, when seen.
    External {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dns_name: Option<String>,
    },
}

/// The process that opened (or accepted) a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub comm: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exe: String,
}

/// What a TLS ClientHello said.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TlsInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    pub ja4: String,
}

/// A container's flow with a named peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub cgroup_id: u64,
    /// The container's id (empty: a cgroup the directory does not know, e.g. the host).
    #[serde(default)]
    pub container_id: String,
    /// The container's workload key.
    #[serde(default)]
    pub workload: String,
    pub proto: Proto,
    pub local_ip: IpAddr,
    pub local_port: u16,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub direction: Direction,
    pub bytes_out: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub packets_in: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// TCP flags seen each way (FIN 1, SYN 2, RST 4, ACK 16).
    #[serde(default)]
    pub tcp_flags_out: u8,
    #[serde(default)]
    pub tcp_flags_in: u8,
    pub peer: Peer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
}

impl Flow {
    /// The port of the side that accepted the connection (the service port).
    pub fn service_port(&self) -> u16 {
        match self.direction {
            Direction::Inbound => self.local_port,
            Direction::Outbound => self.remote_port,
            // Mid-stream: the lower port is most likely the service's.
            Direction::Unknown => self.local_port.min(self.remote_port),
        }
    }

    /// A TCP connection that was refused or never answered: SYN out, no SYN back.
    pub fn tcp_unanswered(&self) -> bool {
        self.proto == Proto::Tcp
            && self.direction == Direction::Outbound
            && self.tcp_flags_out & 2 != 0
            && self.tcp_flags_in & 2 == 0
    }

    /// A TCP connection's state in words.
    pub fn state(&self) -> &'static str {
        if self.proto != Proto::Tcp {
            return "";
        }
        let all = self.tcp_flags_out | self.tcp_flags_in;
        if all & 4 != 0 {
            if self.tcp_unanswered() {
                "refused"
            } else {
                "reset"
            }
        } else if self.tcp_flags_out & 1 != 0 && self.tcp_flags_in & 1 != 0 {
            "closed"
        } else if self.tcp_unanswered() {
            "syn_sent"
        } else {
            "established"
        }
    }
}
