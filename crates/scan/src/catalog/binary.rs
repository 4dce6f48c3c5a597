//! Executables: Go build info (`.go.buildinfo`) and cargo-auditable dependency lists
//! (`.dep-v0`, zlib-compressed JSON) read from ELF files.

use std::io::Read;

use object::{Object, ObjectSection, ObjectSegment};

use crate::model::Limits;
use crate::model::{Package, PackageKind};

const GO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Packages recorded in an ELF binary. Not an error when there are none.
pub fn parse(path: &str, data: &[u8], limits: &Limits) -> Result<Vec<Package>, String> {
    let Ok(file) = object::File::parse(data) else {
        return Ok(Vec::new());
    };
    let mut packages = Vec::new();
    if let Some(section) = file.section_by_name(".dep-v0") {
        let compressed = section.data().map_err(|e| format!(".dep-v0: {e}"))?;
        packages.extend(parse_auditable(path, compressed, limits.max_member_bytes)?);
    }
    let buildinfo = match file.section_by_name(".go.buildinfo") {
        Some(section) => section.data().ok().map(|d| (d, section.address())),
        None => None,
    };
    if let Some((section_data, _)) = buildinfo {
        packages.extend(parse_go_buildinfo(path, section_data, &file)?);
    } else if let Some(offset) = find_aligned(data, GO_MAGIC) {
        // Stripped binaries without section headers: the blob is 16-byte aligned in a segment.
        packages.extend(parse_go_buildinfo(path, &data[offset..], &file)?);
    }
    Ok(packages)
}

fn find_aligned(data: &[u8], magic: &[u8]) -> Option<usize> {
    (0..data.len().saturating_sub(magic.len()))
        .step_by(16)
        .find(|&i| data[i..].starts_with(magic))
}

fn read_varint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Bytes at a virtual address, looked up in sections then segments.
fn read_at_address<'d>(file: &object::File<'d>, address: u64, len: u64) -> Option<&'d [u8]> {
    for section in file.sections() {
        let start = section.address();
        if address >= start && address.checked_add(len)? <= start + section.size() {
            let data = section.data().ok()?;
            let from = (address - start) as usize;
            return data.get(from..from + len as usize);
        }
    }
    for segment in file.segments() {
        let start = segment.address();
        if address >= start && address.checked_add(len)? <= start + segment.size() {
            let data = segment.data().ok()?;
            let from = (address - start) as usize;
            return data.get(from..from + len as usize);
        }
    }
    None
}

fn read_pointer(data: &[u8], size: usize, big_endian: bool) -> Option<u64> {
    let bytes = data.get(..size)?;
    Some(match (size, big_endian) {
        (4, false) => u64::from(u32::from_le_bytes(bytes.try_into().ok()?)),
        (4, true) => u64::from(u32::from_be_bytes(bytes.try_into().ok()?)),
        (8, false) => u64::from_le_bytes(bytes.try_into().ok()?),
        (8, true) => u64::from_be_bytes(bytes.try_into().ok()?),
        _ => return None,
    })
}

/// A Go string header (pointer, length) at `address`, then its bytes.
fn read_go_string<'d>(
    file: &object::File<'d>,
    address: u64,
    pointer_size: usize,
    big_endian: bool,
) -> Option<&'d [u8]> {
    let header = read_at_address(file, address, 2 * pointer_size as u64)?;
    let data_address = read_pointer(header, pointer_size, big_endian)?;
    let len = read_pointer(&header[pointer_size..], pointer_size, big_endian)?;
    if len > 1 << 24 {
        return None;
    }
    read_at_address(file, data_address, len)
}

/// Parse the build info blob (starting at the magic).
pub fn parse_go_buildinfo(
    path: &str,
    blob: &[u8],
    file: &object::File<'_>,
) -> Result<Vec<Package>, String> {
    if !blob.starts_with(GO_MAGIC) || blob.len() < 32 {
        return Ok(Vec::new());
    }
    let pointer_size = blob[14] as usize;
    let flags = blob[15];
    let big_endian = flags & 1 != 0;
    let (go_version, modinfo) = if flags & 2 != 0 {
        // Go 1.18+: two varint-length-prefixed strings follow the 32-byte header.
        let rest = &blob[32..];
        let (len, used) = read_varint(rest).ok_or("Go build info: bad varint")?;
        let version = rest
            .get(used..used + len as usize)
            .ok_or("Go build info: truncated version")?;
        let rest = &rest[used + len as usize..];
        let (len, used) = read_varint(rest).ok_or("Go build info: bad varint")?;
        let modinfo = rest
            .get(used..used + len as usize)
            .ok_or("Go build info: truncated modinfo")?;
        (version, modinfo)
    } else {
        // Older binaries: two pointers to Go string headers.
        let version_address = read_pointer(&blob[16..], pointer_size, big_endian)
            .ok_or("Go build info: bad pointer")?;
        let modinfo_address = read_pointer(&blob[16 + pointer_size..], pointer_size, big_endian)
            .ok_or("Go build info: bad pointer")?;
        let version =
            read_go_string(file, version_address, pointer_size, big_endian).unwrap_or_default();
        let modinfo =
            read_go_string(file, modinfo_address, pointer_size, big_endian).unwrap_or_default();
        (version, modinfo)
    };
    Ok(go_packages(
        path,
        &String::from_utf8_lossy(go_version),
        &String::from_utf8_lossy(modinfo),
    ))
}

/// The standard library's version from a Go toolchain name, written as OSV writes Go
/// versions (with a `v`): `go1.21.4` → `v1.21.4`, `go1.27rc2` → `v1.27.0-rc.2` (Go's
/// own mapping), `go1.22.3 X:boringcrypto` and `go1.21.1-custom` → their release.
pub fn go_stdlib_version(go_version: &str) -> Option<String> {
    let version = go_version.trim().strip_prefix("go")?;
    let version = version.split([' ', '-', '+']).next().unwrap_or(version);
    if version.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "v{}",
        rampart_vulndb::version::golang::normalize(&format!("go{version}"))
    ))
}

/// Packages from Go's version string and module info text.
pub fn go_packages(path: &str, go_version: &str, modinfo: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    if let Some(version) = go_stdlib_version(go_version) {
        packages.push(Package::new(PackageKind::Go, "stdlib", version, path));
    }
    // The module info is framed by 16-byte sentinels.
    let text = if modinfo.len() >= 33 && modinfo.as_bytes().get(modinfo.len() - 17) == Some(&b'\n')
    {
        modinfo.get(16..modinfo.len() - 16).unwrap_or(modinfo)
    } else {
        modinfo
    };
    // Index of the dependency a following `=>` line replaces.
    let mut last_dep: Option<usize> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod", module, version, ..] if *version != "(devel)" && !version.is_empty() => {
                packages.push(Package::new(PackageKind::Go, *module, *version, path));
                last_dep = None;
            }
            ["dep", module, version, ..] => {
                packages.push(Package::new(PackageKind::Go, *module, *version, path));
                last_dep = Some(packages.len() - 1);
            }
            ["=>", module, version, ..] => {
                if let Some(package) = last_dep.and_then(|i| packages.get_mut(i)) {
                    package.name = module.to_string();
                    package.version = version.to_string();
                }
                last_dep = None;
            }
            _ => last_dep = None,
        }
    }
    packages
        .retain(|p| !p.version.is_empty() && !p.name.starts_with('.') && !p.name.starts_with('/'));
    packages
}

#[derive(serde::Deserialize)]
struct AuditableDeps {
    packages: Vec<AuditablePackage>,
}

#[derive(serde::Deserialize)]
struct AuditablePackage {
    name: String,
    version: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    root: bool,
}

/// cargo-auditable's `.dep-v0`: zlib-compressed JSON listing the crates built in.
/// Only crates from crates.io are reported: local and git crates have no advisories
/// under their name and could collide with registry names.
pub fn parse_auditable(path: &str, compressed: &[u8], limit: u64) -> Result<Vec<Package>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(limit + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!(".dep-v0: not zlib data: {e}"))?;
    if json.len() as u64 > limit {
        return Err(format!(
            ".dep-v0 expands past the {limit}-byte member limit"
        ));
    }
    let deps: AuditableDeps = serde_json::from_slice(&json).map_err(|e| format!(".dep-v0: {e}"))?;
    Ok(deps
        .packages
        .into_iter()
        .filter(|p| !p.root && p.source == "crates.io")
        .map(|p| Package::new(PackageKind::Cargo, p.name, p.version, path))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_lines() {
        let info = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/text\tv0.3.7\th1:x=\ndep\tgithub.com/a/b\tv1.0.0\th1:y=\n=>\tgithub.com/fork/b\tv1.0.1\th1:z=\nbuild\t-compiler=gc\n";
        let packages = go_packages("bin/app", "go1.21.4", info);
        let names: Vec<(&str, &str)> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("stdlib", "v1.21.4"),
                ("golang.org/x/text", "v0.3.7"),
                ("github.com/fork/b", "v1.0.1")
            ]
        );
    }

    #[test]
    fn release_candidate_toolchains_are_normalised() {
        let packages = go_packages("bin/app", "go1.27rc2", "");
        assert_eq!(packages[0].name, "stdlib");
        assert_eq!(packages[0].version, "v1.27.0-rc.2");
        assert_eq!(
            go_stdlib_version("go1.22.3 X:boringcrypto").unwrap(),
            "v1.22.3"
        );
        assert_eq!(go_stdlib_version("go1.21").unwrap(), "v1.21.0");
        assert_eq!(go_stdlib_version("devel +abc"), None);
    }

    #[test]
    fn auditable_json() {
        use std::io::Write;
        let json = br#"{"packages":[{"name":"app","version":"0.1.0","source":"local","root":true},{"name":"serde","version":"1.0.100","source":"crates.io","kind":"runtime"}]}"#;
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(json).unwrap();
        let packages = parse_auditable("bin/app", &encoder.finish().unwrap(), 1 << 20).unwrap();
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].name, "serde");
        assert!(parse_auditable("x", b"not zlib", 100).is_err());
    }
}
