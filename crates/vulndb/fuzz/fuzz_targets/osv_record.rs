//! The OSV reader and the range evaluation never panic on arbitrary input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_vulndb::matching::PreparedAffected;
use rampart_vulndb::osv::{parse_records, RecordFormat};

fuzz_target!(|data: &[u8]| {
    for format in [RecordFormat::Json, RecordFormat::Yaml] {
        if let Ok(records) = parse_records(data, format) {
            for record in records {
                for affected in &record.affected {
                    if let Some(p) = &affected.package {
                        let prepared = PreparedAffected::new(&p.ecosystem, &affected.ranges, &affected.versions);
                        for v in affected.versions.iter().take(4) {
                            let _ = prepared.verdict(v);
                        }
                        let _ = prepared.verdict("1.0.0");
                    }
                }
                let _ = rampart_vulndb::severity::assess(&record);
            }
        }
    }
});
