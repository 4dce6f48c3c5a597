//! `ListVulnerabilities`' answer from the store's page of the fleet's findings
//! (`rampart_store::reports::VulnPage`): the store filters, groups, bounds and counts
//! in SQL, layers, first-seen times and "new since the database update" included, so
//! no scan report is read here.

use rampart_proto::v1 as pb;
use rampart_store::reports::{VulnPage, VulnRecord};

use crate::convert;

/// The response for a page.
pub fn response(page: VulnPage) -> pb::ListVulnerabilitiesResponse {
    pb::ListVulnerabilitiesResponse {
        db_updated_ns: page.db_updated_ns,
        new_since_db_update: page.new_since_db_update,
        vulnerabilities: page
            .vulnerabilities
            .into_iter()
            .map(vulnerability)
            .collect(),
    }
}

/// One finding; an unknown layer index is -1.
fn vulnerability(v: VulnRecord) -> pb::Vulnerability {
    pb::Vulnerability {
        id: v.id,
        aliases: v.aliases,
        package: v.package,
        version: v.version,
        ecosystem: v.ecosystem,
        fixed_version: v.fixed_version.unwrap_or_default(),
        severity: convert::severity(v.severity) as i32,
        summary: v.summary,
        images: v.images,
        in_use: v.in_use,
        layer_digest: v.layer.unwrap_or_default(),
        layer_index: v
            .layer_index
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(-1),
        layer_command: v.layer_command.unwrap_or_default(),
        first_seen_ns: v.first_seen_ns,
        new_since_db_update: v.new_since_db_update,
    }
}
