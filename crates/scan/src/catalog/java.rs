//! Java archives (jar/war/ear): `META-INF/maven/**/pom.properties`, `MANIFEST.MF`,
//! and archives nested inside them, all bounded by [`Limits`].

use std::io::{Cursor, Read};

use crate::model::Limits;
use crate::model::{Package, PackageKind};

pub fn parse_archive(path: &str, data: &[u8], limits: &Limits) -> Result<Vec<Package>, String> {
    let mut budget = limits.max_member_bytes.saturating_mul(4);
    let mut packages = Vec::new();
    parse_nested(path, data, limits, 0, &mut budget, &mut packages)?;
    Ok(packages)
}

fn parse_properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn manifest_fields(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(continuation) = line.strip_prefix(' ') {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(continuation);
            }
        } else if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

fn lookup<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `name-1.2.3.jar` → ("name", "1.2.3").
fn name_version_from_file(file: &str) -> Option<(String, String)> {
    let stem = file.rsplit('/').next()?.rsplit_once('.')?.0;
    let split = stem
        .char_indices()
        .find(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))?
        .0;
    Some((stem[..split].to_string(), stem[split + 1..].to_string()))
}

fn read_member(
    file: &mut zip::read::ZipFile<'_, Cursor<&[u8]>>,
    limits: &Limits,
    budget: &mut u64,
    archive: &str,
) -> Result<Vec<u8>, String> {
    let name = file.name().to_string();
    if file.size() > limits.max_member_bytes {
        return Err(format!(
            "{archive}!/{name}: {} bytes is over the member limit of {} bytes",
            file.size(),
            limits.max_member_bytes
        ));
    }
    let mut data = Vec::new();
    // The declared size may lie: bound the actual read as well.
    file.take(limits.max_member_bytes.min(*budget) + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("{archive}!/{name}: {e}"))?;
    if data.len() as u64 > limits.max_member_bytes.min(*budget) {
        return Err(format!(
            "{archive}!/{name}: expands past the decompression limit"
        ));
    }
    *budget -= data.len() as u64;
    Ok(data)
}

fn parse_nested(
    location: &str,
    data: &[u8],
    limits: &Limits,
    depth: u32,
    budget: &mut u64,
    packages: &mut Vec<Package>,
) -> Result<(), String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(data))
        .map_err(|e| format!("not a readable Java archive: {e}"))?;
    let mut found_pom = false;
    let mut manifest: Option<Vec<(String, String)>> = None;
    let mut nested: Vec<String> = Vec::new();
    for index in 0..archive.len().min(200_000) {
        let Ok(mut file) = archive.by_index(index) else {
            continue;
        };
        let name = file.name().to_string();
        if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
            let bytes = read_member(&mut file, limits, budget, location)?;
            let properties = parse_properties(&String::from_utf8_lossy(&bytes));
            if let (Some(group), Some(artifact), Some(version)) = (
                lookup(&properties, "groupId"),
                lookup(&properties, "artifactId"),
                lookup(&properties, "version"),
            ) {
                found_pom = true;
                packages.push(Package::new(
                    PackageKind::Maven,
                    format!("{group}:{artifact}"),
                    version,
                    location,
                ));
            }
        } else if name.eq_ignore_ascii_case("META-INF/MANIFEST.MF") {
            let bytes = read_member(&mut file, limits, budget, location)?;
            manifest = Some(manifest_fields(&String::from_utf8_lossy(&bytes)));
        } else if name.ends_with(".jar") || name.ends_with(".war") {
            nested.push(name);
        }
    }
    if !found_pom {
        // No Maven metadata: fall back on the manifest and the file name.
        let fields = manifest.unwrap_or_default();
        let from_file = name_version_from_file(location);
        let artifact = lookup(&fields, "Implementation-Title")
            .or_else(|| lookup(&fields, "Bundle-SymbolicName"))
            .map(|s| s.split(';').next().unwrap_or(s).to_string())
            .or_else(|| from_file.as_ref().map(|(n, _)| n.clone()));
        let version = lookup(&fields, "Implementation-Version")
            .or_else(|| lookup(&fields, "Bundle-Version"))
            .map(str::to_string)
            .or_else(|| from_file.as_ref().map(|(_, v)| v.clone()));
        if let (Some(artifact), Some(version)) = (artifact, version) {
            let name = match lookup(&fields, "Implementation-Vendor-Id") {
                Some(group) => format!("{group}:{artifact}"),
                None => artifact,
            };
            packages.push(Package::new(PackageKind::Maven, name, version, location));
        }
    }
    if depth + 1 >= limits.max_archive_depth {
        return Ok(());
    }
    for name in nested {
        let Ok(mut file) = archive.by_name(&name) else {
            continue;
        };
        let bytes = read_member(&mut file, limits, budget, location)?;
        let inner = format!("{location}!/{name}");
        // A broken nested archive does not spoil its parent.
        let _ = parse_nested(&inner, &bytes, limits, depth + 1, budget, packages);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn jar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn pom_properties_manifest_and_nested() {
        let inner = jar(&[(
            "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
            b"groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n",
        )]);
        let outer = jar(&[
            (
                "META-INF/MANIFEST.MF",
                b"Manifest-Version: 1.0\nImplementation-Title: app\nImplementation-Version: 1.0\n",
            ),
            ("BOOT-INF/lib/log4j-core-2.14.1.jar", &inner),
        ]);
        let packages = parse_archive("app.jar", &outer, &Limits::default()).unwrap();
        let names: Vec<(&str, &str)> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("app", "1.0"),
                ("org.apache.logging.log4j:log4j-core", "2.14.1")
            ]
        );
        assert_eq!(
            packages[1].location,
            "app.jar!/BOOT-INF/lib/log4j-core-2.14.1.jar"
        );
        assert!(parse_archive("x.jar", b"PK not a zip", &Limits::default()).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut archive = jar(&[(
            "META-INF/MANIFEST.MF",
            b"Implementation-Title: deep\nImplementation-Version: 1\n",
        )]);
        for _ in 0..10 {
            archive = jar(&[("x.jar", &archive)]);
        }
        let limits = Limits {
            max_archive_depth: 3,
            ..Limits::default()
        };
        let packages = parse_archive("a.jar", &archive, &limits).unwrap();
        assert!(packages
            .iter()
            .all(|p| p.location.matches("!/").count() < 3));
    }
}
