//! rpm databases: SQLite (`rpmdb.sqlite`), Berkeley DB hash (`Packages`) and NDB
//! (`Packages.db`). All three store the same thing: one rpm header blob per package.
//! The Berkeley DB and NDB readers work on the file's bytes and check every offset.

use crate::model::{Package, PackageKind};

const TAG_NAME: i32 = 1000;
const TAG_VERSION: i32 = 1001;
const TAG_RELEASE: i32 = 1002;
const TAG_EPOCH: i32 = 1003;
const TAG_LICENSE: i32 = 1014;
const TAG_ARCH: i32 = 1022;
const TAG_SOURCERPM: i32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

fn be32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn le32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Fields of one rpm header blob.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RpmHeader {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<u32>,
    pub arch: Option<String>,
    pub source_rpm: Option<String>,
    pub license: Option<String>,
}

impl RpmHeader {
    /// `rpm -qa`'s default rendering: NAME-VERSION-RELEASE[.ARCH].
    pub fn nvra(&self) -> String {
        match &self.arch {
            Some(arch) => format!("{}-{}-{}.{arch}", self.name, self.version, self.release),
            None => format!("{}-{}-{}", self.name, self.version, self.release),
        }
    }
}

/// Parse an rpm header blob as stored in the database (index count, data length,
/// index entries, data store; all big-endian).
pub fn parse_header(blob: &[u8]) -> Result<RpmHeader, String> {
    let index_count = be32(blob, 0).ok_or("header blob shorter than 8 bytes")? as usize;
    let data_len = be32(blob, 4).ok_or("header blob shorter than 8 bytes")? as usize;
    if index_count > 0xffff || data_len > 256 << 20 {
        return Err(format!(
            "header claims {index_count} tags and {data_len} data bytes: not an rpm header"
        ));
    }
    let data_start = 8 + index_count * 16;
    let store = blob
        .get(data_start..data_start + data_len)
        .ok_or_else(|| format!("header blob of {} bytes is truncated", blob.len()))?;
    let mut header = RpmHeader::default();
    for i in 0..index_count {
        let at = 8 + i * 16;
        let (Some(tag), Some(kind), Some(offset), Some(count)) = (
            be32(blob, at),
            be32(blob, at + 4),
            be32(blob, at + 8),
            be32(blob, at + 12),
        ) else {
            return Err("truncated index entry".into());
        };
        let tag = tag as i32;
        let offset = offset as usize;
        if offset >= store.len() || count == 0 {
            continue;
        }
        let string = || -> Option<String> {
            if !matches!(kind, TYPE_STRING | TYPE_I18NSTRING | TYPE_STRING_ARRAY) {
                return None;
            }
            let rest = &store[offset..];
            let end = rest.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        match tag {
            TAG_NAME => header.name = string().unwrap_or_default(),
            TAG_VERSION => header.version = string().unwrap_or_default(),
            TAG_RELEASE => header.release = string().unwrap_or_default(),
            TAG_ARCH => header.arch = string(),
            TAG_SOURCERPM => header.source_rpm = string(),
            TAG_LICENSE => header.license = string(),
            TAG_EPOCH if kind == TYPE_INT32 => header.epoch = be32(store, offset),
            _ => {}
        }
    }
    if header.name.is_empty() {
        return Err("header has no NAME tag".into());
    }
    Ok(header)
}

const TAG_OLDFILENAMES: i32 = 1027;
const TAG_FILEMODES: i32 = 1030;
const TAG_DIRINDEXES: i32 = 1116;
const TAG_BASENAMES: i32 = 1117;
const TAG_DIRNAMES: i32 = 1118;
const TYPE_INT16: u32 = 3;

/// Most files read from one header (a package with more is not listed: its in-use
/// verdict stays unknown rather than resting on part of its files).
const MAX_HEADER_FILES: usize = 100_000;

/// The files (not directories) an rpm header lists: `DIRNAMES[DIRINDEXES[i]] +
/// BASENAMES[i]`, or the old `OLDFILENAMES`; directories are told by `FILEMODES`.
/// None when the header is malformed or lists more than [`MAX_HEADER_FILES`].
pub fn header_files(blob: &[u8]) -> Option<Vec<String>> {
    let index_count = be32(blob, 0)? as usize;
    let data_len = be32(blob, 4)? as usize;
    if index_count > 0xffff || data_len > 256 << 20 {
        return None;
    }
    let data_start = 8 + index_count * 16;
    let store = blob.get(data_start..data_start + data_len)?;
    let strings = |offset: usize, count: usize| -> Option<Vec<String>> {
        if count > MAX_HEADER_FILES {
            return None;
        }
        let mut out = Vec::with_capacity(count);
        let mut at = offset;
        for _ in 0..count {
            let rest = store.get(at..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            at += end + 1;
        }
        Some(out)
    };
    let (mut basenames, mut dirnames, mut dirindexes, mut modes, mut old) =
        (None, None, None, None, None);
    for i in 0..index_count {
        let at = 8 + i * 16;
        let (tag, kind, offset, count) = (
            be32(blob, at)? as i32,
            be32(blob, at + 4)?,
            be32(blob, at + 8)? as usize,
            be32(blob, at + 12)? as usize,
        );
        match (tag, kind) {
            (TAG_BASENAMES, TYPE_STRING_ARRAY) => basenames = Some(strings(offset, count)?),
            (TAG_DIRNAMES, TYPE_STRING_ARRAY) => dirnames = Some(strings(offset, count)?),
            (TAG_OLDFILENAMES, TYPE_STRING_ARRAY) => old = Some(strings(offset, count)?),
            (TAG_DIRINDEXES, TYPE_INT32) if count <= MAX_HEADER_FILES => {
                let values: Option<Vec<u32>> =
                    (0..count).map(|n| be32(store, offset + n * 4)).collect();
                dirindexes = Some(values?);
            }
            (TAG_FILEMODES, TYPE_INT16) if count <= MAX_HEADER_FILES => {
                let values: Option<Vec<u16>> = (0..count)
                    .map(|n| {
                        store
                            .get(offset + n * 2..offset + n * 2 + 2)
                            .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    })
                    .collect();
                modes = Some(values?);
            }
            _ => {}
        }
    }
    let paths: Vec<String> = match (basenames, dirnames, dirindexes, old) {
        (Some(base), Some(dirs), Some(indexes), _) if base.len() == indexes.len() => base
            .iter()
            .zip(&indexes)
            .map(|(name, &dir)| Some(format!("{}{name}", dirs.get(dir as usize)?)))
            .collect::<Option<_>>()?,
        (_, _, _, Some(old)) => old,
        _ => Vec::new(),
    };
    const S_IFMT: u16 = 0o170000;
    const S_IFDIR: u16 = 0o040000;
    Some(
        paths
            .into_iter()
            .enumerate()
            .filter(|(i, _)| {
                modes
                    .as_ref()
                    .and_then(|m| m.get(*i))
                    .is_none_or(|mode| mode & S_IFMT != S_IFDIR)
            })
            .map(|(_, p)| p)
            .collect(),
    )
}

/// Header blobs of an rpm database file, told apart by content.
pub fn database_blobs(path: &std::path::Path, data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if data.starts_with(b"SQLite format 3\0") {
        sqlite_blobs(path)
    } else if data.starts_with(b"RpmP") {
        ndb_blobs(data)
    } else {
        berkeley_blobs(data)
    }
}

/// `name-version-release.src.rpm` → `name`.
fn source_name(source_rpm: &str) -> Option<String> {
    let stem = source_rpm.strip_suffix(".rpm")?;
    let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
    let (rest, _release) = stem.rsplit_once('-')?;
    let (name, _version) = rest.rsplit_once('-')?;
    Some(name.to_string())
}

fn headers_to_packages(path: &str, blobs: Vec<Vec<u8>>) -> Result<Vec<Package>, String> {
    let mut packages = Vec::new();
    let mut problems = Vec::new();
    for (index, blob) in blobs.iter().enumerate() {
        match parse_header(blob) {
            Ok(header) => packages.push(to_package(path, header)),
            Err(e) => problems.push(format!("record {index}: {e}")),
        }
    }
    if packages.is_empty() && !problems.is_empty() {
        return Err(format!("malformed rpm database: {}", problems.join("; ")));
    }
    Ok(packages)
}

fn to_package(path: &str, header: RpmHeader) -> Package {
    let mut package = Package::new(
        PackageKind::Rpm,
        header.name.clone(),
        format!("{}-{}", header.version, header.release),
        path,
    );
    package.epoch = header.epoch;
    package.arch = header.arch.clone();
    package.source_name = header.source_rpm.as_deref().and_then(source_name);
    if package.source_name.is_some() {
        package.source_version = Some(package.version.clone());
    }
    package.licenses = header.license.into_iter().collect();
    package
}

/// All header blobs of an rpm SQLite database file.
pub fn sqlite_blobs(db_path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let uri = format!("file:{}?immutable=1", db_path.display());
    let connection = rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| format!("not an SQLite database: {e}"))?;
    let mut statement = connection
        .prepare("SELECT blob FROM Packages")
        .map_err(|e| format!("no Packages table: {e}"))?;
    let rows = statement
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading Packages: {e}"))
}

/// Packages of an `rpmdb.sqlite` given as bytes (copied to a private temporary file,
/// since SQLite reads files).
pub fn parse_sqlite_bytes(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    if !data.starts_with(b"SQLite format 3\0") {
        return Err("malformed rpm database: not an SQLite file".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let copy = dir.path().join("rpmdb.sqlite");
    std::fs::write(&copy, data).map_err(|e| format!("temporary copy: {e}"))?;
    let blobs = sqlite_blobs(&copy).map_err(|e| format!("malformed rpm database: {e}"))?;
    headers_to_packages(path, blobs)
}

const BDB_HASH_MAGIC: u32 = 0x0006_1561;
const BDB_PAGE_HASH_META: u8 = 8;
const BDB_PAGE_HASH: u8 = 13;
const BDB_PAGE_HASH_UNSORTED: u8 = 2;
const BDB_PAGE_OVERFLOW: u8 = 7;
const BDB_ITEM_OFFPAGE: u8 = 3;
const BDB_PAGE_HEADER: usize = 26;

/// Header blobs of a Berkeley DB hash database (rpm's `Packages` before rpm 4.16).
pub fn berkeley_blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let magic_le = le32(data, 12).ok_or("file shorter than a Berkeley DB metadata page")?;
    let big_endian = if magic_le == BDB_HASH_MAGIC {
        false
    } else if magic_le.swap_bytes() == BDB_HASH_MAGIC {
        true
    } else {
        return Err(format!(
            "not a Berkeley DB hash database (magic {magic_le:#x})"
        ));
    };
    let read32 = |at: usize| -> Option<u32> {
        if big_endian {
            be32(data, at)
        } else {
            le32(data, at)
        }
    };
    let read16 = |page: &[u8], at: usize| -> Option<u16> {
        page.get(at..at + 2).map(|b| {
            if big_endian {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from_le_bytes([b[0], b[1]])
            }
        })
    };
    let page_size = read32(20).ok_or("truncated metadata")? as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("invalid page size {page_size}"));
    }
    if data.get(24) != Some(&0) {
        return Err("encrypted Berkeley DB databases are not supported".into());
    }
    if data.get(25) != Some(&BDB_PAGE_HASH_META) {
        return Err("first page is not a hash metadata page".into());
    }
    let last_page = read32(32).ok_or("truncated metadata")? as usize;
    let page_count = (data.len() / page_size).min(last_page + 1);
    let page =
        |number: usize| -> Option<&[u8]> { data.get(number * page_size..(number + 1) * page_size) };
    let mut blobs = Vec::new();
    for number in 0..page_count {
        let Some(current) = page(number) else { break };
        if current[25] != BDB_PAGE_HASH && current[25] != BDB_PAGE_HASH_UNSORTED {
            continue;
        }
        let entries = read16(current, 20).unwrap_or(0) as usize;
        // Index entries come in key/value pairs; values are at odd positions.
        for value_index in (1..entries).step_by(2) {
            let Some(item_offset) = read16(current, BDB_PAGE_HEADER + value_index * 2) else {
                break;
            };
            let item_offset = item_offset as usize;
            if current.get(item_offset) != Some(&BDB_ITEM_OFFPAGE) {
                continue;
            }
            let (Some(first_page), Some(total_len)) = (
                current
                    .get(item_offset + 4..item_offset + 8)
                    .map(|_| read_u32_in(current, item_offset + 4, big_endian)),
                current
                    .get(item_offset + 8..item_offset + 12)
                    .map(|_| read_u32_in(current, item_offset + 8, big_endian)),
            ) else {
                continue;
            };
            let mut value = Vec::with_capacity((total_len as usize).min(16 << 20));
            let mut next = first_page as usize;
            let mut steps = 0;
            while next != 0 {
                steps += 1;
                if steps > page_count {
                    return Err(format!("overflow page chain from page {number} loops"));
                }
                let overflow = page(next)
                    .ok_or_else(|| format!("overflow page {next} is past the end of the file"))?;
                if overflow[25] != BDB_PAGE_OVERFLOW {
                    return Err(format!("page {next} is not an overflow page"));
                }
                let following = read_u32_in(overflow, 16, big_endian) as usize;
                let chunk = if following == 0 {
                    let used = read16(overflow, 22).unwrap_or(0) as usize;
                    overflow
                        .get(BDB_PAGE_HEADER..BDB_PAGE_HEADER + used)
                        .ok_or_else(|| format!("overflow page {next} claims {used} bytes"))?
                } else {
                    &overflow[BDB_PAGE_HEADER..]
                };
                value.extend_from_slice(chunk);
                next = following;
            }
            blobs.push(value);
        }
    }
    Ok(blobs)
}

fn read_u32_in(page: &[u8], at: usize, big_endian: bool) -> u32 {
    if big_endian {
        be32(page, at).unwrap_or(0)
    } else {
        le32(page, at).unwrap_or(0)
    }
}

pub fn parse_berkeley(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let blobs = berkeley_blobs(data).map_err(|e| format!("malformed rpm database: {e}"))?;
    headers_to_packages(path, blobs)
}

const NDB_HEADER_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const NDB_SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const NDB_BLOB_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const NDB_SLOTS_PER_PAGE: usize = 4096 / 16;

/// Header blobs of an NDB database (`Packages.db`, SUSE's rpm format).
pub fn ndb_blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if le32(data, 0) != Some(NDB_HEADER_MAGIC) || le32(data, 4) != Some(0) {
        return Err("not an NDB database (bad magic or version)".into());
    }
    let slot_pages = le32(data, 12).ok_or("truncated header")? as usize;
    if slot_pages == 0 || slot_pages > 2048 {
        return Err(format!("implausible slot page count {slot_pages}"));
    }
    // The first two slot-sized records are the database header itself.
    let slot_count = slot_pages * NDB_SLOTS_PER_PAGE - 2;
    let mut blobs = Vec::new();
    for slot in 0..slot_count {
        let at = 32 + slot * 16;
        let (Some(magic), Some(package_index), Some(block_offset)) =
            (le32(data, at), le32(data, at + 4), le32(data, at + 8))
        else {
            return Err(format!("slot {slot} is past the end of the file"));
        };
        if magic != NDB_SLOT_MAGIC {
            return Err(format!("slot {slot} has a bad magic {magic:#x}"));
        }
        if package_index == 0 {
            continue;
        }
        let blob_at = block_offset as usize * 16;
        let (Some(blob_magic), Some(blob_index), Some(blob_len)) = (
            le32(data, blob_at),
            le32(data, blob_at + 4),
            le32(data, blob_at + 12),
        ) else {
            return Err(format!(
                "blob of package {package_index} is past the end of the file"
            ));
        };
        if blob_magic != NDB_BLOB_MAGIC || blob_index != package_index {
            return Err(format!("blob of package {package_index} has a bad header"));
        }
        let blob = data
            .get(blob_at + 16..blob_at + 16 + blob_len as usize)
            .ok_or_else(|| format!("blob of package {package_index} is truncated"))?;
        blobs.push(blob.to_vec());
    }
    Ok(blobs)
}

pub fn parse_ndb(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let blobs = ndb_blobs(data).map_err(|e| format!("malformed rpm database: {e}"))?;
    headers_to_packages(path, blobs)
}

/// Headers of any of the three formats, told apart by content (used by tests and fuzzing).
pub fn read_headers(data: &[u8]) -> Result<Vec<RpmHeader>, String> {
    let blobs = if data.starts_with(b"SQLite format 3\0") {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let copy = dir.path().join("rpmdb.sqlite");
        std::fs::write(&copy, data).map_err(|e| e.to_string())?;
        sqlite_blobs(&copy)?
    } else if data.starts_with(b"RpmP") {
        ndb_blobs(data)?
    } else {
        berkeley_blobs(data)?
    };
    blobs.iter().map(|b| parse_header(b)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn source_rpm_names() {
        assert_eq!(
            super::source_name("openssl-libs-3.0.7-1.el9.src.rpm"),
            Some("openssl-libs".into())
        );
        assert_eq!(super::source_name("bogus"), None);
    }

    #[test]
    fn garbage_headers_are_errors() {
        assert!(super::parse_header(&[0, 0, 0, 1]).is_err());
        assert!(super::parse_header(&[0xff; 64]).is_err());
        assert!(super::berkeley_blobs(&[0u8; 100]).is_err());
        assert!(super::ndb_blobs(b"RpmP\0\0\0\0\0\0\0\0\xff\xff\xff\xff").is_err());
    }
}
