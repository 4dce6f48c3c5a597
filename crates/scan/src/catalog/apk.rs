//! Alpine's package database `lib/apk/db/installed`: stanzas of `X:value` lines.

use crate::model::{Package, PackageKind};

pub fn parse_installed(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let text = String::from_utf8_lossy(data);
    let mut packages = Vec::new();
    let mut current: Option<Package> = None;
    let mut problems = Vec::new();
    let mut stanza_line = 1;
    let finish = |current: &mut Option<Package>,
                  packages: &mut Vec<Package>,
                  problems: &mut Vec<String>,
                  line: usize| {
        if let Some(package) = current.take() {
            if package.name.is_empty() || package.version.is_empty() {
                problems.push(format!("line {line}: stanza without P: and V:"));
            } else {
                packages.push(package);
            }
        }
    };
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            finish(&mut current, &mut packages, &mut problems, stanza_line);
            stanza_line = index + 2;
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            problems.push(format!("line {}: expected KEY:VALUE", index + 1));
            continue;
        };
        let package = current.get_or_insert_with(|| Package::new(PackageKind::Apk, "", "", path));
        match key {
            "P" => package.name = value.to_string(),
            "V" => package.version = value.to_string(),
            "A" => package.arch = Some(value.to_string()),
            "o" => package.source_name = Some(value.to_string()),
            "L" => package.licenses = vec![value.to_string()],
            _ => {}
        }
    }
    finish(&mut current, &mut packages, &mut problems, stanza_line);
    if packages.is_empty() && !problems.is_empty() {
        return Err(format!("malformed apk database: {}", problems.join("; ")));
    }
    for package in &mut packages {
        if package.source_name.is_some() {
            package.source_version = Some(package.version.clone());
        }
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_stanzas() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n";
        let packages = super::parse_installed("lib/apk/db/installed", text.as_bytes()).unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "musl");
        assert_eq!(packages[0].version, "1.2.4-r2");
        assert_eq!(packages[1].source_name.as_deref(), Some("busybox"));
        assert!(super::parse_installed("x", b"nonsense without colon").is_err());
    }
}
