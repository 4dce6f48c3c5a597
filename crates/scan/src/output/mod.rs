//! Report formats: table, JSON, SARIF 2.1.0, CycloneDX 1.6, SPDX 2.3.

pub mod cyclonedx;
pub mod sarif;
pub mod spdx;
pub mod table;

use crate::model::ScanReport;

/// The report formats (`rampart scan --format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Sarif,
    Cyclonedx,
    Spdx,
}

impl Format {
    /// Every format with the name users give it.
    pub const NAMES: &'static [(&'static str, Format)] = &[
        ("table", Format::Table),
        ("json", Format::Json),
        ("sarif", Format::Sarif),
        ("cyclonedx", Format::Cyclonedx),
        ("spdx", Format::Spdx),
    ];
}

pub const TOOL_NAME: &str = "rampart";
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// RFC 3339 UTC timestamp with second precision (`2024-05-01T12:00:00Z`), as SPDX requires.
pub fn timestamp_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Render a report in the chosen format.
pub fn render(report: &ScanReport, format: Format) -> Result<String, serde_json::Error> {
    match format {
        Format::Table => Ok(table::render(report)),
        Format::Json => serde_json::to_string_pretty(report),
        Format::Sarif => serde_json::to_string_pretty(&sarif::document(report)),
        Format::Cyclonedx => serde_json::to_string_pretty(&cyclonedx::document(report)),
        Format::Spdx => serde_json::to_string_pretty(&spdx::document(report)),
    }
}
