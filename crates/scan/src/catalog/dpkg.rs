//! dpkg's database: `var/lib/dpkg/status` and the per-package files of `status.d/`.

use crate::model::{Package, PackageKind};

/// Iterate RFC 822-style stanzas (blank-line separated, continuation lines start with
/// whitespace). Yields `(first line number, fields)`.
pub(crate) fn stanzas(text: &str) -> Vec<(usize, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut start = 1;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                out.push((start, std::mem::take(&mut fields)));
            }
            start = index + 2;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    if !fields.is_empty() {
        out.push((start, fields));
    }
    out
}

fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Installed packages of a dpkg status file. Entries whose `Status` is not
/// `installed` (removed with config files left, half-installed) are not packages on disk.
pub fn parse_status(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let text = std::str::from_utf8(data)
        .map_err(|e| format!("dpkg status is not UTF-8 (byte {})", e.valid_up_to()))?;
    let mut packages = Vec::new();
    let mut problems = Vec::new();
    let all = stanzas(text);
    if !text.trim().is_empty() && !all.iter().any(|(_, f)| field(f, "Package").is_some()) {
        return Err("malformed dpkg status: no `Package:` stanza found".into());
    }
    for (line, fields) in all {
        let (Some(name), Some(version)) = (field(&fields, "Package"), field(&fields, "Version"))
        else {
            problems.push(format!("line {line}: stanza without Package and Version"));
            continue;
        };
        // status.d/ files of distroless images have no Status field: they are installed.
        if let Some(status) = field(&fields, "Status") {
            if status.split_whitespace().last() != Some("installed") {
                continue;
            }
        }
        let mut package = Package::new(PackageKind::Deb, name, version, path);
        package.arch = field(&fields, "Architecture").map(str::to_string);
        if let Some(source) = field(&fields, "Source") {
            // "Source: name" or "Source: name (version)"
            let mut parts = source.splitn(2, ' ');
            let source_name = parts.next().unwrap_or_default().to_string();
            let source_version = parts.next().map(|v| {
                v.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .to_string()
            });
            package.source_name = Some(source_name);
            package.source_version = source_version.or_else(|| Some(version.to_string()));
        }
        packages.push(package);
    }
    if packages.is_empty() && !problems.is_empty() {
        return Err(format!("malformed dpkg status: {}", problems.join("; ")));
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_source_and_skips_removed() {
        let text = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u4\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.2-1\n";
        let packages = parse_status("var/lib/dpkg/status", text.as_bytes()).unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].source_name.as_deref(), Some("glibc"));
        assert_eq!(packages[0].source_version.as_deref(), Some("2.36-9"));
        assert_eq!(packages[1].name, "bash");
        assert_eq!(packages[1].source_name, None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_status("s", b"this is not\na status file").is_err());
        assert!(parse_status("s", &[0xff, 0xfe, 0x00]).is_err());
    }
}
