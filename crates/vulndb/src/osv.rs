//! Reading OSV records (JSON or YAML) from a file, a directory tree or a zip archive.
//!
//! Only the fields Rampart uses are deserialised; unknown fields are ignored, as the OSV
//! schema grows. A file holds one record or a JSON array of records.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One OSV record, reduced to what matching and reporting need.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct OsvRecord {
    pub id: String,
    #[serde(default)]
    pub modified: String,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    #[serde(default)]
    pub affected: Vec<OsvAffected>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct OsvSeverity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct OsvAffected {
    #[serde(default)]
    pub package: Option<OsvPackage>,
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    #[serde(default)]
    pub ecosystem_specific: Option<serde_json::Value>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct OsvPackage {
    pub ecosystem: String,
    pub name: String,
    #[serde(default)]
    pub purl: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct OsvRange {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<OsvEvent>,
}

/// One range event; OSV puts exactly one of these keys in each event object.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq, Default)]
pub struct OsvEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// Why a file could not be read as OSV.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),
    #[error("zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("not an OSV record: {0}")]
    Invalid(String),
}

/// Format of a record file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    Json,
    Yaml,
}

impl RecordFormat {
    pub fn from_path(path: &Path) -> Option<RecordFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(RecordFormat::Json),
            "yaml" | "yml" => Some(RecordFormat::Yaml),
            _ => None,
        }
    }
}

/// Parses the bytes of one file into records.
pub fn parse_records(bytes: &[u8], format: RecordFormat) -> Result<Vec<OsvRecord>, RecordError> {
    let records = match format {
        RecordFormat::Json => {
            let value: serde_json::Value = serde_json::from_slice(bytes)?;
            match value {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<Result<Vec<OsvRecord>, _>>()?,
                other => vec![serde_json::from_value(other)?],
            }
        }
        RecordFormat::Yaml => vec![yaml_serde::from_slice(bytes)?],
    };
    for record in &records {
        if record.id.trim().is_empty() {
            return Err(RecordError::Invalid("empty `id`".into()));
        }
    }
    Ok(records)
}

/// Parses a file leniently: in a JSON array, a malformed element is set aside with
/// its index and the other records are kept.
pub fn parse_records_lenient(bytes: &[u8], format: RecordFormat) -> Result<Parsed, RecordError> {
    if format == RecordFormat::Json {
        if let serde_json::Value::Array(items) = serde_json::from_slice(bytes)? {
            let mut parsed = Parsed::default();
            for (index, item) in items.into_iter().enumerate() {
                match serde_json::from_value::<OsvRecord>(item) {
                    Ok(record) if !record.id.trim().is_empty() => parsed.records.push(record),
                    Ok(_) => parsed
                        .rejected
                        .push((index, RecordError::Invalid("empty `id`".into()))),
                    Err(e) => parsed.rejected.push((index, e.into())),
                }
            }
            return Ok(parsed);
        }
    }
    Ok(Parsed {
        records: parse_records(bytes, format)?,
        rejected: Vec::new(),
    })
}

/// Records parsed from one file, and the elements of it that were not records.
#[derive(Debug, Default)]
pub struct Parsed {
    pub records: Vec<OsvRecord>,
    /// (index in the file's array, why it was rejected)
    pub rejected: Vec<(usize, RecordError)>,
}

/// One file's worth of input: where it came from and its records or why it failed.
pub struct SourceFile {
    /// File path; for a zip member, `archive.zip/member/path`.
    pub path: PathBuf,
    pub records: Result<Parsed, RecordError>,
}

/// Reads every record file under `path` (a file, a directory read recursively, or a
/// `.zip`) and hands each to `sink` as it is parsed, so memory stays bounded by one
/// file. Files that are not `.json`/`.yaml`/`.yml` are skipped. Errors in one file are
/// reported through `sink`; only an unreadable root is an `Err`.
pub fn read_source(path: &Path, sink: &mut dyn FnMut(SourceFile)) -> Result<(), RecordError> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        walk_dir(path, sink)
    } else if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        read_zip(path, sink)
    } else {
        let format = RecordFormat::from_path(path).unwrap_or(RecordFormat::Json);
        let records = std::fs::read(path)
            .map_err(RecordError::from)
            .and_then(|bytes| parse_records_lenient(&bytes, format));
        sink(SourceFile {
            path: path.to_path_buf(),
            records,
        });
        Ok(())
    }
}

fn walk_dir(root: &Path, sink: &mut dyn FnMut(SourceFile)) -> Result<(), RecordError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if dir != root => {
                sink(SourceFile {
                    path: dir,
                    records: Err(e.into()),
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        // Sorted so reports and tests are deterministic.
        paths.sort();
        for path in paths {
            let Ok(file_type) = std::fs::symlink_metadata(&path).map(|m| m.file_type()) else {
                continue;
            };
            if file_type.is_dir() {
                stack.push(path);
            } else if file_type.is_file() {
                if let Some(format) = RecordFormat::from_path(&path) {
                    let records = std::fs::read(&path)
                        .map_err(RecordError::from)
                        .and_then(|bytes| parse_records_lenient(&bytes, format));
                    sink(SourceFile { path, records });
                }
            }
        }
    }
    Ok(())
}

/// Largest member read from a zip; OSV records are a few KiB, so anything far larger is
/// a decompression bomb or not a record.
const MAX_ZIP_MEMBER: u64 = 64 * 1024 * 1024;

fn read_zip(path: &Path, sink: &mut dyn FnMut(SourceFile)) -> Result<(), RecordError> {
    let file = std::fs::File::open(path)?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))?;
    for index in 0..archive.len() {
        let mut member = match archive.by_index(index) {
            Ok(member) => member,
            Err(e) => {
                sink(SourceFile {
                    path: path.join(format!("#{index}")),
                    records: Err(e.into()),
                });
                continue;
            }
        };
        if member.is_dir() {
            continue;
        }
        let name = member.name().to_string();
        let member_path = path.join(&name);
        let Some(format) = RecordFormat::from_path(Path::new(&name)) else {
            continue;
        };
        let mut bytes = Vec::with_capacity(member.size().min(MAX_ZIP_MEMBER) as usize);
        let records = match (&mut member)
            .take(MAX_ZIP_MEMBER + 1)
            .read_to_end(&mut bytes)
        {
            Err(e) => Err(RecordError::from(e)),
            Ok(_) if bytes.len() as u64 > MAX_ZIP_MEMBER => Err(RecordError::Invalid(format!(
                "member larger than {MAX_ZIP_MEMBER} bytes"
            ))),
            Ok(_) => parse_records_lenient(&bytes, format),
        };
        sink(SourceFile {
            path: member_path,
            records,
        });
    }
    Ok(())
}
