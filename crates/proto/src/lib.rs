//! Rampart's API contract, one set of `.proto` files (`proto/rampart/v1/`) for every
//! service: alerts, events (the nodes' recorders, retro-hunt), inventory, the network
//! graph, baselines, risk, scan results and SBOMs, vulnerabilities, rules and response
//! policies, response actions and audit, sensor health.
//!
//! This crate owns the generated code only: prost messages, tonic server and client
//! stubs, and pbjson serde impls that follow the canonical proto3 JSON mapping
//! (lowerCamelCase names, enums as their names, 64-bit integers as strings). The
//! servers are in `rampart-api`. [`DESCRIPTOR_SET`] is the encoded
//! `FileDescriptorSet`, from which the OpenAPI document is made.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/rampart.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/rampart.v1.serde.rs"));
}

/// The encoded `google.protobuf.FileDescriptorSet` of every Rampart `.proto` file
/// (and the well-known types they import).
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rampart_descriptor.bin"));

/// The package every service lives in.
pub const PACKAGE: &str = "rampart.v1";

#[cfg(test)]
mod tests {
    use super::v1::*;
    use prost::Message;

    #[test]
    fn json_is_the_canonical_mapping_and_round_trips() {
        let a = Alert {
            id: "a1".into(),
            ts_ns: 1_700_000_000_000_000_000,
            severity: Severity::High as i32,
            status: AlertStatus::Open as i32,
            rule: "Read sensitive file".into(),
            ..Default::default()
        };
        let j = serde_json::to_value(&a).unwrap();
        // 64-bit integers are strings, enums are names, fields lowerCamelCase.
        assert_eq!(j["tsNs"], "1700000000000000000");
        assert_eq!(j["severity"], "SEVERITY_HIGH");
        assert_eq!(j["status"], "ALERT_STATUS_OPEN");
        let back: Alert = serde_json::from_value(j).unwrap();
        assert_eq!(back, a);
        let wire = a.encode_to_vec();
        assert_eq!(Alert::decode(wire.as_slice()).unwrap(), a);
    }

    #[test]
    fn the_descriptor_set_names_every_service() {
        let fds = prost_types::FileDescriptorSet::decode(super::DESCRIPTOR_SET).unwrap();
        let services: Vec<String> = fds
            .file
            .iter()
            .filter(|f| f.package() == super::PACKAGE)
            .flat_map(|f| f.service.iter().map(|s| s.name().to_string()))
            .collect();
        for s in [
            "AlertService",
            "EventService",
            "InventoryService",
            "NetworkService",
            "BaselineService",
            "RiskService",
            "ScanService",
            "VulnerabilityService",
            "PolicyService",
            "ResponseService",
            "HealthService",
        ] {
            assert!(services.iter().any(|x| x == s), "{s} missing: {services:?}");
        }
    }
}
