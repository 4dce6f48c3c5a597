//! Lockfiles and manifests read in directory (project) scans.

use crate::catalog::lang::{parse_composer_installed, parse_json};
use crate::model::{Package, PackageKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockfileKind {
    PackageLock,
    YarnLock,
    PnpmLock,
    PoetryLock,
    PipfileLock,
    Requirements,
    GoMod,
    CargoLock,
    GemfileLock,
    ComposerLock,
    PomXml,
}

pub fn kind_for(file_name: &str) -> Option<LockfileKind> {
    Some(match file_name {
        "package-lock.json" | "npm-shrinkwrap.json" => LockfileKind::PackageLock,
        "yarn.lock" => LockfileKind::YarnLock,
        "pnpm-lock.yaml" => LockfileKind::PnpmLock,
        "poetry.lock" => LockfileKind::PoetryLock,
        "Pipfile.lock" => LockfileKind::PipfileLock,
        "go.mod" => LockfileKind::GoMod,
        "Cargo.lock" => LockfileKind::CargoLock,
        "Gemfile.lock" => LockfileKind::GemfileLock,
        "composer.lock" => LockfileKind::ComposerLock,
        "pom.xml" => LockfileKind::PomXml,
        name if name.starts_with("requirements") && name.ends_with(".txt") => {
            LockfileKind::Requirements
        }
        _ => return None,
    })
}

pub fn parse(kind: LockfileKind, path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    parse_with_warnings(kind, path, data).map(|(packages, _)| packages)
}

/// Packages of one lockfile or manifest, and a warning for each line that was skipped
/// (requirements that pin no version, unreadable `go.mod` directives).
pub fn parse_with_warnings(
    kind: LockfileKind,
    path: &str,
    data: &[u8],
) -> Result<(Vec<Package>, Vec<String>), String> {
    let text = String::from_utf8_lossy(data);
    let mut warnings = Vec::new();
    let mut packages = match kind {
        LockfileKind::PackageLock => package_lock(path, data)?,
        LockfileKind::YarnLock => yarn_lock(path, &text),
        LockfileKind::PnpmLock => pnpm_lock(path, &text)?,
        LockfileKind::PoetryLock => toml_packages(path, &text, PackageKind::Python)?,
        LockfileKind::PipfileLock => pipfile_lock(path, data)?,
        LockfileKind::Requirements => requirements(path, &text, &mut warnings),
        LockfileKind::GoMod => go_mod(path, &text, &mut warnings),
        LockfileKind::CargoLock => toml_packages(path, &text, PackageKind::Cargo)?,
        LockfileKind::GemfileLock => gemfile_lock(path, &text),
        LockfileKind::ComposerLock => parse_composer_installed(path, data)?,
        LockfileKind::PomXml => pom_xml(path, &text)?,
    };
    packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    packages.dedup_by(|a, b| a.name == b.name && a.version == b.version);
    Ok((packages, warnings))
}

fn package_lock(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let value = parse_json(data)?;
    let mut packages = Vec::new();
    if let Some(map) = value.get("packages").and_then(|v| v.as_object()) {
        // lockfileVersion 2 and 3: keys are install paths.
        for (key, entry) in map {
            let Some(position) = key.rfind("node_modules/") else {
                continue;
            };
            if entry.get("link").and_then(|v| v.as_bool()) == Some(true) {
                continue;
            }
            let name = entry
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or(&key[position + "node_modules/".len()..]);
            if let Some(version) = entry.get("version").and_then(|v| v.as_str()) {
                packages.push(Package::new(PackageKind::Npm, name, version, path));
            }
        }
    } else if let Some(map) = value.get("dependencies").and_then(|v| v.as_object()) {
        // lockfileVersion 1: a nested tree.
        let mut stack: Vec<&serde_json::Map<String, serde_json::Value>> = vec![map];
        while let Some(level) = stack.pop() {
            for (name, entry) in level {
                if let Some(version) = entry.get("version").and_then(|v| v.as_str()) {
                    if !version.starts_with("file:") && !version.starts_with("link:") {
                        packages.push(Package::new(PackageKind::Npm, name, version, path));
                    }
                }
                if let Some(nested) = entry.get("dependencies").and_then(|v| v.as_object()) {
                    stack.push(nested);
                }
            }
        }
    } else {
        return Err("package-lock.json without \"packages\" or \"dependencies\"".into());
    }
    Ok(packages)
}

/// `@scope/name@range` or `name@npm:range` → name.
fn npm_spec_name(spec: &str) -> &str {
    let spec = spec.trim().trim_matches('"');
    let search_from = usize::from(spec.starts_with('@'));
    match spec[search_from..].find('@') {
        Some(at) => &spec[..at + search_from],
        None => spec,
    }
}

/// yarn.lock, classic (v1) and berry (YAML-like) formats.
fn yarn_lock(path: &str, text: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            current = line.strip_suffix(':').and_then(|header| {
                let first = header.split(',').next()?;
                let name = npm_spec_name(first);
                (!name.is_empty() && name != "__metadata" && !header.contains("@workspace:"))
                    .then(|| name.to_string())
            });
            continue;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("version") {
            if let Some(name) = current.take() {
                let version = rest.trim_start_matches(':').trim().trim_matches('"');
                if !version.is_empty() && !version.contains("use.local") {
                    packages.push(Package::new(PackageKind::Npm, name, version, path));
                }
            }
        }
    }
    packages
}

fn pnpm_lock(path: &str, text: &str) -> Result<Vec<Package>, String> {
    let value: yaml_serde::Value =
        yaml_serde::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let mut packages = Vec::new();
    let Some(map) = value.get("packages").and_then(|v| v.as_mapping()) else {
        return Ok(packages);
    };
    for key in map.keys().filter_map(|k| k.as_str()) {
        // v5: /name/1.0.0 or /@scope/name/1.0.0_peer; v6: /name@1.0.0; v9: name@1.0.0(peer)
        let key = key.trim_start_matches('/');
        let key = key.split('(').next().unwrap_or(key);
        let search_from = usize::from(key.starts_with('@'));
        let (name, version) = if let Some(at) = key[search_from..].rfind('@') {
            (&key[..at + search_from], &key[at + search_from + 1..])
        } else if let Some(slash) = key.rfind('/') {
            (&key[..slash], &key[slash + 1..])
        } else {
            continue;
        };
        let version = version.split('_').next().unwrap_or(version);
        if !name.is_empty() && !version.is_empty() {
            packages.push(Package::new(PackageKind::Npm, name, version, path));
        }
    }
    Ok(packages)
}

/// poetry.lock and Cargo.lock: `[[package]]` tables with name and version.
fn toml_packages(path: &str, text: &str, kind: PackageKind) -> Result<Vec<Package>, String> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        version: String,
        #[serde(default)]
        source: Option<String>,
    }
    let lock: Lock = toml::from_str(text).map_err(|e| format!("invalid TOML: {e}"))?;
    Ok(lock
        .package
        .into_iter()
        // Cargo: only registry crates (path and git crates have no advisories by name).
        .filter(|e| {
            kind != PackageKind::Cargo
                || e.source
                    .as_deref()
                    .is_some_and(|s| s.starts_with("registry+"))
        })
        .map(|e| Package::new(kind, e.name, e.version, path))
        .collect())
}

fn pipfile_lock(path: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let value = parse_json(data)?;
    let mut packages = Vec::new();
    for section in ["default", "develop"] {
        if let Some(map) = value.get(section).and_then(|v| v.as_object()) {
            for (name, entry) in map {
                if let Some(version) = entry.get("version").and_then(|v| v.as_str()) {
                    let version = version.trim_start_matches("==");
                    packages.push(Package::new(PackageKind::Python, name, version, path));
                }
            }
        }
    }
    Ok(packages)
}

/// Pinned requirements only (`name==1.2.3`, `name === 1.2.3`); ranges do not name an
/// installed version. Requirement lines follow PEP 508: whitespace anywhere between the
/// name, extras, operator and version, an environment marker after `;`; pip's line
/// continuations (`\`) and per-requirement options (`--hash=...`) are understood. Every
/// other line that names something is skipped with a warning saying why.
fn requirements(path: &str, text: &str, warnings: &mut Vec<String>) -> Vec<Package> {
    let mut packages = Vec::new();
    let mut logical = String::new();
    let mut first_line = 0;
    let lines: Vec<&str> = text.lines().collect();
    for (index, raw) in lines.iter().enumerate() {
        if logical.is_empty() {
            first_line = index + 1;
        }
        // pip strips comments (`#` at the start or after whitespace) before joining.
        let without_comment = match raw.find('#') {
            Some(0) => "",
            Some(at) if raw[..at].ends_with([' ', '\t']) => &raw[..at],
            _ => raw,
        };
        if let Some(head) = without_comment.trim_end().strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            if index + 1 < lines.len() {
                continue;
            }
        } else {
            logical.push_str(without_comment);
        }
        let line = std::mem::take(&mut logical);
        match requirement_line(&line) {
            Ok(Some((name, version))) => {
                packages.push(Package::new(PackageKind::Python, name, version, path))
            }
            Ok(None) => {}
            Err(reason) => warnings.push(format!(
                "{path}:{first_line}: skipped `{}`: {reason}",
                line.trim()
            )),
        }
    }
    packages
}

/// One logical requirements line: `Ok(Some((name, version)))` for a pinned requirement,
/// `Ok(None)` for a blank line, `Err(why)` for anything skipped.
fn requirement_line(line: &str) -> Result<Option<(String, String)>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if line.starts_with('-') {
        return Err(match line.split_whitespace().next().unwrap_or(line) {
            "-r" | "--requirement" | "-c" | "--constraint" => {
                "other requirement files are not followed".to_string()
            }
            "-e" | "--editable" => "an editable install pins no version".to_string(),
            _ => "a pip option, not a requirement".to_string(),
        });
    }
    // Per-requirement options (`--hash=...`) and the marker follow the specifier.
    let requirement = line.split(" --").next().unwrap_or(line);
    let requirement = requirement.split(';').next().unwrap_or(requirement).trim();
    let name_end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .unwrap_or(requirement.len());
    let name = &requirement[..name_end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("not a PEP 508 requirement (a URL or a path?)".to_string());
    }
    let mut rest = requirement[name_end..].trim_start();
    if let Some(extras) = rest.strip_prefix('[') {
        let Some(close) = extras.find(']') else {
            return Err("unclosed extras `[`".to_string());
        };
        rest = extras[close + 1..].trim_start();
    }
    if rest.starts_with('@') {
        return Err("a direct URL reference pins no version".to_string());
    }
    if rest.is_empty() {
        return Err("no version pinned (use `==`)".to_string());
    }
    let rest = rest
        .strip_prefix('(')
        .and_then(|r| r.trim_end().strip_suffix(')'))
        .unwrap_or(rest);
    let specifiers: Vec<&str> = rest
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [specifier] = specifiers.as_slice() else {
        return Err(format!(
            "a range (`{rest}`) pins no single version (use `==`)"
        ));
    };
    let version = specifier
        .strip_prefix("===")
        .or_else(|| specifier.strip_prefix("=="))
        .map(str::trim)
        .ok_or_else(|| format!("`{specifier}` pins no single version (use `==`)"))?;
    if version.is_empty() || version.contains('*') || version.contains(char::is_whitespace) {
        return Err(format!("`{specifier}` pins no single version"));
    }
    Ok(Some((name.to_string(), version.to_string())))
}

/// `go.mod`: the `require`d modules with `replace` directives applied as Go applies
/// them (a replacement without a version on the left replaces every version; a
/// replacement by a local directory leaves no registry module to match, so the module
/// is dropped), and the standard library at the `toolchain` version, else the `go`
/// version (as osv-scanner reports it).
fn go_mod(path: &str, text: &str, warnings: &mut Vec<String>) -> Vec<Package> {
    let mut requires: Vec<(String, String)> = Vec::new();
    let mut replaces: Vec<(String, Option<String>, String, Option<String>)> = Vec::new();
    let mut go_line: Option<String> = None;
    let mut toolchain: Option<String> = None;
    let mut block: Option<&str> = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.split("//").next().unwrap_or(line).trim();
        if line.is_empty() {
            continue;
        }
        let (verb, entry) = match block {
            Some(verb) => {
                if line == ")" {
                    block = None;
                    continue;
                }
                (verb, line)
            }
            None => {
                let (verb, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let rest = rest.trim();
                let verb = match verb {
                    "require" => "require",
                    "replace" => "replace",
                    "go" => {
                        go_line = Some(rest.to_string());
                        continue;
                    }
                    "toolchain" => {
                        toolchain = Some(rest.to_string());
                        continue;
                    }
                    _ => continue,
                };
                if rest == "(" {
                    block = Some(verb);
                    continue;
                }
                (verb, rest)
            }
        };
        let fields: Vec<&str> = entry.split_whitespace().map(unquote).collect();
        match (verb, fields.as_slice()) {
            ("require", [module, version, ..]) => {
                requires.push((module.to_string(), version.to_string()))
            }
            ("replace", [old, "=>", new]) => {
                replaces.push((old.to_string(), None, new.to_string(), None))
            }
            ("replace", [old, "=>", new, new_version]) => replaces.push((
                old.to_string(),
                None,
                new.to_string(),
                Some(new_version.to_string()),
            )),
            ("replace", [old, old_version, "=>", new]) => replaces.push((
                old.to_string(),
                Some(old_version.to_string()),
                new.to_string(),
                None,
            )),
            ("replace", [old, old_version, "=>", new, new_version]) => replaces.push((
                old.to_string(),
                Some(old_version.to_string()),
                new.to_string(),
                Some(new_version.to_string()),
            )),
            _ => warnings.push(format!(
                "{path}:{}: skipped `{verb} {entry}`: not a {verb} directive Go reads",
                index + 1
            )),
        }
    }
    // Go applies replacements to the required module graph: the last directive for a
    // module wins, a versioned one before an unversioned one.
    let mut packages = Vec::new();
    for (module, version) in requires {
        let replacement = replaces
            .iter()
            .rev()
            .find(|(old, old_version, _, _)| {
                *old == module && old_version.as_deref() == Some(version.as_str())
            })
            .or_else(|| {
                replaces
                    .iter()
                    .rev()
                    .find(|(old, old_version, _, _)| *old == module && old_version.is_none())
            });
        match replacement {
            // A local directory (`./fork`, `../x`, `/abs`): built from that source.
            Some((_, _, _, None)) => {}
            Some((_, _, new, Some(new_version))) => packages.push(Package::new(
                PackageKind::Go,
                new.as_str(),
                new_version.as_str(),
                path,
            )),
            None => packages.push(Package::new(PackageKind::Go, module, version, path)),
        }
    }
    let toolchain_version = toolchain
        .as_deref()
        .filter(|t| *t != "default")
        .and_then(crate::catalog::binary::go_stdlib_version);
    let go_version = go_line
        .as_deref()
        .and_then(|v| crate::catalog::binary::go_stdlib_version(&format!("go{v}")));
    if let Some(version) = toolchain_version.or(go_version) {
        packages.push(Package::new(PackageKind::Go, "stdlib", version, path));
    }
    packages
}

/// go.mod allows quoted module paths and versions.
fn unquote(field: &str) -> &str {
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

fn gemfile_lock(path: &str, text: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    let mut in_gem_specs = false;
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line.trim();
            in_gem_specs = false;
            continue;
        }
        if line.trim() == "specs:" {
            in_gem_specs = section == "GEM";
            continue;
        }
        // Exactly four spaces: a gem; six: one of its dependencies.
        if in_gem_specs && line.starts_with("    ") && !line.starts_with("     ") {
            let spec = line.trim();
            if let Some((name, rest)) = spec.split_once(" (") {
                let version = rest.trim_end_matches(')');
                // Platform suffixes (1.13.8-x86_64-linux) are not part of the version.
                let version = version.split('-').next().unwrap_or(version);
                packages.push(Package::new(PackageKind::Gem, name, version, path));
            }
        }
    }
    packages
}

fn pom_xml(path: &str, text: &str) -> Result<Vec<Package>, String> {
    let document = roxmltree::Document::parse(text).map_err(|e| format!("invalid XML: {e}"))?;
    let project = document.root_element();
    let child = |node: roxmltree::Node<'_, '_>, name: &str| -> Option<String> {
        node.children()
            .find(|c| c.tag_name().name() == name)
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let mut properties: Vec<(String, String)> = Vec::new();
    if let Some(version) = child(project, "version") {
        properties.push(("project.version".into(), version));
    }
    if let Some(node) = project
        .children()
        .find(|c| c.tag_name().name() == "properties")
    {
        for property in node.children().filter(|c| c.is_element()) {
            if let Some(value) = property.text() {
                properties.push((
                    property.tag_name().name().to_string(),
                    value.trim().to_string(),
                ));
            }
        }
    }
    let resolve = |value: String| -> Option<String> {
        if let Some(key) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
            properties
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        } else {
            Some(value)
        }
    };
    let mut packages = Vec::new();
    // Only <project><dependencies>, not <dependencyManagement> (constraints, not uses).
    let Some(dependencies) = project
        .children()
        .find(|c| c.tag_name().name() == "dependencies")
    else {
        return Ok(packages);
    };
    for dependency in dependencies
        .children()
        .filter(|c| c.tag_name().name() == "dependency")
    {
        let (Some(group), Some(artifact), Some(version)) = (
            child(dependency, "groupId").and_then(&resolve),
            child(dependency, "artifactId").and_then(&resolve),
            child(dependency, "version").and_then(&resolve),
        ) else {
            continue;
        };
        if version.contains("${") || version.starts_with('[') || version.starts_with('(') {
            continue;
        }
        packages.push(Package::new(
            PackageKind::Maven,
            format!("{group}:{artifact}"),
            version,
            path,
        ));
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(packages: &[Package]) -> Vec<String> {
        packages
            .iter()
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect()
    }

    #[test]
    fn npm_lockfiles() {
        let v3 = br#"{"lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/lodash":{"version":"4.17.20"},"node_modules/a/node_modules/@x/y":{"version":"1.0.0"},"node_modules/local":{"link":true}}}"#;
        assert_eq!(
            names(&parse(LockfileKind::PackageLock, "p", v3).unwrap()),
            vec!["@x/y@1.0.0", "lodash@4.17.20"]
        );
        let v1 = br#"{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dependencies":{"b":{"version":"2.0.0"}}}}}"#;
        assert_eq!(
            names(&parse(LockfileKind::PackageLock, "p", v1).unwrap()),
            vec!["a@1.0.0", "b@2.0.0"]
        );
        let yarn = "# yarn lockfile v1\n\n\"@babel/code-frame@^7.0.0\", \"@babel/code-frame@^7.10.4\":\n  version \"7.12.13\"\n  resolved \"x\"\n\nlodash@^4.17.20:\n  version \"4.17.21\"\n";
        assert_eq!(
            names(&parse(LockfileKind::YarnLock, "y", yarn.as_bytes()).unwrap()),
            vec!["@babel/code-frame@7.12.13", "lodash@4.17.21"]
        );
        let berry = "__metadata:\n  version: 6\n\n\"lodash@npm:^4.17.21\":\n  version: 4.17.21\n";
        assert_eq!(
            names(&parse(LockfileKind::YarnLock, "y", berry.as_bytes()).unwrap()),
            vec!["lodash@4.17.21"]
        );
        let pnpm = "lockfileVersion: '9.0'\npackages:\n  lodash@4.17.21:\n    resolution: {integrity: x}\n  '@types/node@20.1.0':\n    resolution: {}\n  /ms/2.1.2:\n    resolution: {}\n  /react-dom@18.2.0(react@18.2.0):\n    resolution: {}\n";
        assert_eq!(
            names(&parse(LockfileKind::PnpmLock, "p", pnpm.as_bytes()).unwrap()),
            vec![
                "@types/node@20.1.0",
                "lodash@4.17.21",
                "ms@2.1.2",
                "react-dom@18.2.0"
            ]
        );
    }

    #[test]
    fn python_go_ruby_rust_java() {
        let req = "requests==2.31.0  # pinned\nflask>=2\nuvicorn[standard]==0.23.2 ; python_version>'3'\n-r other.txt\n";
        assert_eq!(
            names(&parse(LockfileKind::Requirements, "r", req.as_bytes()).unwrap()),
            vec!["requests@2.31.0", "uvicorn@0.23.2"]
        );
        let gomod = "module x\n\ngo 1.21\n\nrequire golang.org/x/net v0.17.0\nrequire (\n\tgithub.com/a/b v1.2.3 // indirect\n)\n";
        assert_eq!(
            names(&parse(LockfileKind::GoMod, "g", gomod.as_bytes()).unwrap()),
            vec![
                "github.com/a/b@v1.2.3",
                "golang.org/x/net@v0.17.0",
                "stdlib@v1.21.0"
            ]
        );
        let gemfile = "GEM\n  remote: https://rubygems.org/\n  specs:\n    nokogiri (1.13.8-x86_64-linux)\n      racc (~> 1.4)\n    racc (1.6.0)\n\nPLATFORMS\n  x86_64-linux\n";
        assert_eq!(
            names(&parse(LockfileKind::GemfileLock, "G", gemfile.as_bytes()).unwrap()),
            vec!["nokogiri@1.13.8", "racc@1.6.0"]
        );
        let cargo = "version = 3\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        assert_eq!(
            names(&parse(LockfileKind::CargoLock, "C", cargo.as_bytes()).unwrap()),
            vec!["smallvec@1.6.0"]
        );
        let pom = "<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><version>1</version><properties><log4j.version>2.14.1</log4j.version></properties><dependencies><dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>${log4j.version}</version></dependency><dependency><groupId>a</groupId><artifactId>b</artifactId></dependency></dependencies></project>";
        assert_eq!(
            names(&parse(LockfileKind::PomXml, "pom.xml", pom.as_bytes()).unwrap()),
            vec!["org.apache.logging.log4j:log4j-core@2.14.1"]
        );
        assert!(parse(LockfileKind::PomXml, "pom.xml", b"<project>").is_err());
        assert!(parse(LockfileKind::CargoLock, "Cargo.lock", b"[[package]\n").is_err());
    }

    fn parse_warn(kind: LockfileKind, text: &str) -> (Vec<String>, Vec<String>) {
        let (packages, warnings) =
            parse_with_warnings(kind, "requirements.txt", text.as_bytes()).unwrap();
        (names(&packages), warnings)
    }

    /// PEP 508 allows whitespace around the operator: `flask == 0.12.2` is a pin.
    #[test]
    fn requirements_pins_with_spaces_and_a_warning_per_skipped_line() {
        let text = "flask == 0.12.2\n\
                    Jinja2 ==2.10 ; python_version >= \"3\"\n\
                    requests [socks] ===2.19.0  # exact\n\
                    # a comment\n\
                    \n\
                    urllib3==1.24.1 \\\n    --hash=sha256:abc\n\
                    django>=2.0\n\
                    numpy == 1.*\n\
                    -r base.txt\n\
                    pkg @ https://example.com/pkg.whl\n\
                    six\n";
        let (packages, warnings) = parse_warn(LockfileKind::Requirements, text);
        assert_eq!(
            packages,
            vec![
                "Jinja2@2.10",
                "flask@0.12.2",
                "requests@2.19.0",
                "urllib3@1.24.1"
            ]
        );
        let lines: Vec<&str> = warnings
            .iter()
            .map(|w| w.split(": skipped").next().unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![
                "requirements.txt:8",
                "requirements.txt:9",
                "requirements.txt:10",
                "requirements.txt:11",
                "requirements.txt:12"
            ],
            "{warnings:#?}"
        );
        assert!(warnings[0].contains("`django>=2.0`") && warnings[0].contains("use `==`"));
        assert!(warnings[2].contains("not followed"), "{}", warnings[2]);
    }

    #[test]
    fn go_mod_replace_directives_apply_as_go_applies_them() {
        let gomod = "module example.com/app\n\
                     \n\
                     go 1.22\n\
                     toolchain go1.22.3\n\
                     \n\
                     require (\n\
                     \tgithub.com/a/lib v1.0.0\n\
                     \tgithub.com/b/lib v1.2.0\n\
                     \tgithub.com/c/lib v0.3.0\n\
                     \tgithub.com/d/lib v2.0.0\n\
                     \tgolang.org/x/text v0.3.0 // indirect\n\
                     )\n\
                     \n\
                     replace github.com/a/lib => github.com/fork/lib v1.0.5\n\
                     replace (\n\
                     \tgithub.com/b/lib v1.2.0 => github.com/b/lib v1.2.9\n\
                     \tgithub.com/c/lib v9.9.9 => github.com/c/lib v0.4.0\n\
                     \tgithub.com/d/lib => ../d-lib\n\
                     )\n";
        let (packages, warnings) = parse_warn(LockfileKind::GoMod, gomod);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            packages,
            vec![
                // Replaced whole (no version on the left) by another module.
                "github.com/b/lib@v1.2.9",
                // The replacement names another version than the one required: no effect.
                "github.com/c/lib@v0.3.0",
                "github.com/fork/lib@v1.0.5",
                "golang.org/x/text@v0.3.0",
                // The toolchain line wins over the go line.
                "stdlib@v1.22.3",
            ]
        );
    }

    #[test]
    fn go_mod_go_and_rc_toolchain_lines_report_the_stdlib() {
        let (packages, _) = parse_warn(LockfileKind::GoMod, "module m\ngo 1.21.4\n");
        assert_eq!(packages, vec!["stdlib@v1.21.4"]);
        let (packages, _) = parse_warn(LockfileKind::GoMod, "module m\ngo 1.27rc2\n");
        assert_eq!(packages, vec!["stdlib@v1.27.0-rc.2"]);
        let (packages, _) = parse_warn(
            LockfileKind::GoMod,
            "module m\ngo 1.26\ntoolchain go1.27rc2\n",
        );
        assert_eq!(packages, vec!["stdlib@v1.27.0-rc.2"]);
        let (packages, _) = parse_warn(LockfileKind::GoMod, "module m\n");
        assert!(packages.is_empty());
    }
}
