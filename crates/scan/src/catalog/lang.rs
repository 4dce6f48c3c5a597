//! Installed language packages: Python dist-info/egg-info, node_modules, Ruby
//! gemspecs, PHP composer `installed.json`.

use crate::model::{Package, PackageKind};

/// Python core metadata (`METADATA`, `PKG-INFO`): RFC 822 headers up to the first blank line.
pub fn parse_python_metadata(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let text = String::from_utf8_lossy(data);
    let (mut name, mut version, mut license) = (None, None, None);
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim();
            match key {
                "Name" => name = Some(value.to_string()),
                "Version" => version = Some(value.to_string()),
                "License-Expression" => license = Some(value.to_string()),
                "License" if license.is_none() && !value.is_empty() && value.len() < 100 => {
                    license = Some(value.to_string())
                }
                _ => {}
            }
        }
    }
    match (name, version) {
        (Some(name), Some(version)) if !name.is_empty() && !version.is_empty() => {
            let mut package = Package::new(PackageKind::Python, name, version, path);
            package.licenses = license.into_iter().filter(|l| l != "UNKNOWN").collect();
            Ok(vec![package])
        }
        _ => Err("Python metadata without Name and Version headers".into()),
    }
}

fn license_of(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Object(o)) => o
            .get("type")
            .and_then(|t| t.as_str())
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => {
                    o.get("type").and_then(|t| t.as_str()).map(str::to_string)
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn parse_json(data: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(data).map_err(|e| {
        format!(
            "invalid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        )
    })
}

/// `node_modules/NAME/package.json`.
pub fn parse_package_json(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let value = parse_json(data)?;
    let name = value.get("name").and_then(|v| v.as_str());
    let version = value.get("version").and_then(|v| v.as_str());
    match (name, version) {
        (Some(name), Some(version)) if !name.is_empty() && !version.is_empty() => {
            let mut package = Package::new(PackageKind::Npm, name, version, path);
            package.licenses = license_of(value.get("license").or_else(|| value.get("licenses")));
            Ok(vec![package])
        }
        // A package.json without name/version (private workspace) is not a package.
        _ => Ok(Vec::new()),
    }
}

fn first_quoted(text: &str) -> Option<&str> {
    let start = text.find(['"', '\''])?;
    let quote = text[start..].chars().next()?;
    let rest = &text[start + 1..];
    let end = rest.find(quote)?;
    Some(&rest[..end])
}

/// Installed gemspecs (`specifications/NAME-VERSION.gemspec`), written by RubyGems as
/// Ruby source: `s.name = "rake".freeze`, `s.version = "13.0.6"`.
pub fn parse_gemspec(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let text = String::from_utf8_lossy(data);
    let (mut name, mut version, mut licenses) = (None, None, Vec::new());
    for line in text.lines() {
        let Some((left, right)) = line.trim().split_once('=') else {
            continue;
        };
        let attribute = left.trim().split('.').nth(1).unwrap_or_default();
        match attribute {
            "name" if name.is_none() => name = first_quoted(right).map(str::to_string),
            "version" if version.is_none() => version = first_quoted(right).map(str::to_string),
            "licenses" | "license" => {
                licenses = right
                    .split(',')
                    .filter_map(first_quoted)
                    .map(str::to_string)
                    .collect()
            }
            _ => {}
        }
    }
    match (name, version) {
        (Some(name), Some(version)) => {
            let mut package = Package::new(PackageKind::Gem, name, version, path);
            package.licenses = licenses;
            Ok(vec![package])
        }
        _ => Err("gemspec without name and version".into()),
    }
}

/// Composer's `vendor/composer/installed.json` (v1: an array; v2: `{"packages": [...]}`)
/// and `composer.lock` (`packages` and `packages-dev`).
pub fn parse_composer_installed(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let value = parse_json(data)?;
    let mut lists: Vec<&Vec<serde_json::Value>> = Vec::new();
    if let Some(array) = value.as_array() {
        lists.push(array);
    }
    for key in ["packages", "packages-dev"] {
        if let Some(array) = value.get(key).and_then(|v| v.as_array()) {
            lists.push(array);
        }
    }
    if lists.is_empty() {
        return Err("expected a package array or a \"packages\" array".into());
    }
    let mut packages = Vec::new();
    for entry in lists.into_iter().flatten() {
        let (Some(name), Some(version)) = (
            entry.get("name").and_then(|v| v.as_str()),
            entry.get("version").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let mut package = Package::new(PackageKind::Composer, name, version, path);
        package.licenses = license_of(entry.get("license"));
        packages.push(package);
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_metadata() {
        let p = parse_python_metadata("a/METADATA", b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n\nbody: x\n").unwrap();
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("requests", "2.31.0")
        );
        assert_eq!(p[0].licenses, vec!["Apache 2.0"]);
        assert!(parse_python_metadata("a", b"garbage").is_err());
    }

    #[test]
    fn gemspec_and_package_json() {
        let spec = "Gem::Specification.new do |s|\n  s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\n  s.required_rubygems_version = Gem::Requirement.new(\">= 1.3.2\")\n  s.licenses = [\"MIT\".freeze]\nend\n";
        let p = parse_gemspec("x.gemspec", spec.as_bytes()).unwrap();
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("rake", "13.0.6")
        );
        assert_eq!(p[0].licenses, vec!["MIT"]);
        let p = parse_package_json(
            "node_modules/@types/node/package.json",
            br#"{"name":"@types/node","version":"20.1.0","license":"MIT"}"#,
        )
        .unwrap();
        assert_eq!(p[0].name, "@types/node");
        assert!(parse_package_json("x", b"{not json")
            .unwrap_err()
            .contains("line 1"));
    }

    #[test]
    fn composer_v1_and_v2() {
        let v2 =
            br#"{"packages":[{"name":"monolog/monolog","version":"2.9.1","license":["MIT"]}]}"#;
        let v1 = br#"[{"name":"psr/log","version":"1.1.4"}]"#;
        assert_eq!(
            parse_composer_installed("i", v2).unwrap()[0].name,
            "monolog/monolog"
        );
        assert_eq!(
            parse_composer_installed("i", v1).unwrap()[0].version,
            "1.1.4"
        );
    }
}
