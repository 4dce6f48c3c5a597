//! Builders for test images: layer tarballs (including hostile ones), `docker save`
//! archives and OCI layouts, made in code with the `tar` crate.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use rampart_scan::output::Format;
use rampart_scan::{run_job, ScanJob};
use sha2::{Digest, Sha256};

/// A scan job and where its report goes, as `rampart scan` would have them.
pub struct Invocation {
    pub job: ScanJob,
    pub output: Option<PathBuf>,
}

/// A scan job from `rampart scan` arguments (without the program name). Only the flags
/// these tests use; the binary's own parsing is tested in the `rampart` crate.
pub fn args(list: &[&str]) -> Invocation {
    let mut job = ScanJob::new("");
    let mut output = None;
    let mut rest = Vec::new();
    let mut iter = list.iter().copied();
    while let Some(arg) = iter.next() {
        let mut next = || iter.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg {
            "--format" => {
                job.format = match next() {
                    "table" => Format::Table,
                    "json" => Format::Json,
                    "sarif" => Format::Sarif,
                    "cyclonedx" => Format::Cyclonedx,
                    "spdx" => Format::Spdx,
                    other => panic!("format {other}"),
                }
            }
            "--output" | "-o" => output = Some(PathBuf::from(next())),
            "--fail-on" => job.fail_on = Some(next().parse().unwrap()),
            "--ignore-file" => job.ignore_file = Some(PathBuf::from(next())),
            "--db" => job.db = Some(PathBuf::from(next())),
            "--secrets-config" => job.secrets_config = Some(PathBuf::from(next())),
            "--malware-rules" => job.malware_rules = Some(PathBuf::from(next())),
            "--cache-dir" => job.cache_dir = Some(PathBuf::from(next())),
            "--max-file-bytes" => job.max_file_bytes = next().parse().unwrap(),
            "--store-sbom" => job.store_sbom = true,
            "--allow-empty-db" => job.allow_empty_db = true,
            "--max-db-age-days" => {
                job.max_db_age =
                    std::time::Duration::from_secs(next().parse::<u64>().unwrap() * 86_400)
            }
            "--no-secrets" => job.no_secrets = true,
            "--no-cache" => job.no_cache = true,
            "--offline" => {}
            flag if flag.starts_with('-') => panic!("unknown flag {flag}"),
            target => rest.push(target.to_string()),
        }
    }
    assert_eq!(rest.len(), 1, "one target: {rest:?}");
    job.target = rest.remove(0);
    Invocation { job, output }
}

/// Runs the job and writes its report where `rampart scan` would; returns its exit code
/// (0 clean, 1 the threshold tripped).
pub fn run(invocation: Invocation) -> anyhow::Result<i32> {
    let outcome = run_job(&invocation.job)?;
    for line in &outcome.diagnostics {
        eprintln!("{line}");
    }
    match &invocation.output {
        Some(path) => std::fs::write(path, &outcome.text)?,
        None => print!("{}", outcome.text),
    }
    Ok(i32::from(outcome.failed))
}

pub enum Item {
    File(Vec<u8>, u32),
    Dir,
    Symlink(String),
    HardLink(String),
}

/// A layer: (path as written in the header, bytes of the path are used verbatim), item.
pub fn layer(entries: &[(&str, Item)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, item) in entries {
        let mut header = tar::Header::new_gnu();
        // Write the name bytes directly: tar's set_path refuses `..`, and hostile
        // archives are exactly what some tests need.
        let name = &mut header.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match item {
            Item::File(data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder.append(&header, data.as_slice()).unwrap();
            }
            Item::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                header.set_cksum();
                builder.append(&header, std::io::empty()).unwrap();
            }
            Item::Symlink(target) | Item::HardLink(target) => {
                header.set_entry_type(if matches!(item, Item::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                header.set_mode(0o777);
                header.set_size(0);
                let link = &mut header.as_old_mut().linkname;
                link.fill(0);
                link[..target.len()].copy_from_slice(target.as_bytes());
                header.set_cksum();
                builder.append(&header, std::io::empty()).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

pub fn file(data: impl AsRef<[u8]>) -> Item {
    Item::File(data.as_ref().to_vec(), 0o644)
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

fn config_json(layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_path(path).unwrap();
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

/// A classic `docker save` archive: `<id>/layer.tar`, `<config>.json`, `manifest.json`.
pub fn docker_save(layers: &[Vec<u8>], compression: Compression, tag: &str) -> Vec<u8> {
    let config = config_json(layers);
    let config_name = format!("{}.json", sha256(&config).trim_start_matches("sha256:"));
    let mut builder = tar::Builder::new(Vec::new());
    let mut layer_paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("{:064x}/layer.tar", i + 1);
        append_file(&mut builder, &path, &compress(layer, compression));
        layer_paths.push(path);
    }
    append_file(&mut builder, &config_name, &config);
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": layer_paths}]);
    append_file(
        &mut builder,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    builder.into_inner().unwrap()
}

/// Write an OCI image layout into `dir`; returns the files as (path, bytes) too, so
/// the same layout can be packed into a tar.
pub fn oci_layout(
    layers: &[Vec<u8>],
    compression: Compression,
    tag: &str,
) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let config = config_json(layers);
    let mut layer_descriptors = Vec::new();
    for layer in layers {
        let blob = compress(layer, compression);
        let media_type = match compression {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        let digest = sha256(&blob);
        layer_descriptors.push(
            serde_json::json!({"mediaType": media_type, "digest": digest, "size": blob.len()}),
        );
        files.push((
            format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
            blob,
        ));
    }
    let config_digest = sha256(&config);
    files.push((
        format!(
            "blobs/sha256/{}",
            config_digest.trim_start_matches("sha256:")
        ),
        config.clone(),
    ));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layer_descriptors,
    }))
    .unwrap();
    let manifest_digest = sha256(&manifest);
    files.push((
        format!(
            "blobs/sha256/{}",
            manifest_digest.trim_start_matches("sha256:")
        ),
        manifest.clone(),
    ));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    files
}

pub fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (path, data) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, data).unwrap();
    }
}

pub fn pack_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        append_file(&mut builder, path, data);
    }
    builder.into_inner().unwrap()
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ))
}
