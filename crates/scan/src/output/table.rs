//! Plain-text table for terminals.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::ScanReport;

fn short_layer(layer: &Option<String>) -> String {
    layer
        .as_deref()
        .map(|l| l.trim_start_matches("sha256:").chars().take(12).collect())
        .unwrap_or_else(|| "-".into())
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count()).min(60);
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let rendered: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c: String = c.chars().take(60).collect();
                format!("{c:<width$}", width = widths[i])
            })
            .collect();
        let _ = writeln!(out, "{}", rendered.join("  ").trim_end());
    };
    line(
        out,
        &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    );
    for row in rows {
        line(out, row);
    }
}

pub fn render(report: &ScanReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Target: {} ({})",
        report.target.name, report.target.kind
    );
    if let Some(os) = &report.os {
        let _ = writeln!(out, "OS: {} {}", os.id, os.version_id);
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for package in &report.packages {
        *by_kind.entry(package.kind.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    let _ = writeln!(
        out,
        "Packages: {} ({})",
        report.packages.len(),
        counts.join(", ")
    );
    if !report.packages.is_empty() {
        let _ = writeln!(out);
        let rows: Vec<Vec<String>> = report
            .packages
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.full_version(),
                    p.kind.as_str().to_string(),
                    p.location.clone(),
                    short_layer(&p.layer),
                ]
            })
            .collect();
        table(
            &mut out,
            &["PACKAGE", "VERSION", "TYPE", "LOCATION", "LAYER"],
            &rows,
        );
    }
    let _ = writeln!(out);
    let warning = report.database.as_ref().and_then(|d| d.warning());
    if let Some(warning) = &warning {
        let _ = writeln!(out, "WARNING: {warning}");
    }
    if report.vulnerabilities.is_empty() {
        if report
            .database
            .as_ref()
            .is_some_and(|d| d.state.checked_nothing())
        {
            let _ = writeln!(out, "Vulnerabilities: not checked.");
        } else {
            let _ = writeln!(out, "No known vulnerabilities found.");
        }
    } else {
        let rows: Vec<Vec<String>> = report
            .vulnerabilities
            .iter()
            .map(|v| {
                vec![
                    v.package_name.clone(),
                    v.package_version.clone(),
                    v.id.clone(),
                    v.severity.as_str().to_uppercase(),
                    v.fixed_version.clone().unwrap_or_default(),
                    short_layer(&v.layer),
                ]
            })
            .collect();
        let _ = writeln!(out, "Vulnerabilities: {}", rows.len());
        table(
            &mut out,
            &["PACKAGE", "VERSION", "ID", "SEVERITY", "FIXED IN", "LAYER"],
            &rows,
        );
    }
    if !report.content_findings.is_empty() {
        let _ = writeln!(out);
        let rows: Vec<Vec<String>> = report
            .content_findings
            .iter()
            .map(|f| {
                vec![
                    f.rule_id.clone(),
                    // Line 0: a whole-file finding (malware).
                    if f.line == 0 {
                        f.path.clone()
                    } else {
                        format!("{}:{}", f.path, f.line)
                    },
                    f.excerpt.clone(),
                    short_layer(&f.layer),
                ]
            })
            .collect();
        let _ = writeln!(out, "Secrets and malware: {}", rows.len());
        table(
            &mut out,
            &["RULE", "LOCATION", "MATCH (REDACTED)", "LAYER"],
            &rows,
        );
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Warnings: {}", report.warnings.len());
        for warning in &report.warnings {
            let _ = writeln!(out, "  {warning}");
        }
    }
    out
}
