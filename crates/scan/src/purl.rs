//! Package URLs (purl spec) and OSV ecosystem names for cataloged packages.

use packageurl::PackageUrl;

use crate::model::{OsInfo, Package, PackageKind};

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The OSV ecosystem that advisories for this package are published under.
pub fn ecosystem(package: &Package, os: Option<&OsInfo>) -> Option<String> {
    Some(match package.kind {
        PackageKind::Python => "PyPI".into(),
        PackageKind::Npm => "npm".into(),
        PackageKind::Go => "Go".into(),
        PackageKind::Cargo => "crates.io".into(),
        PackageKind::Maven => "Maven".into(),
        PackageKind::Gem => "RubyGems".into(),
        PackageKind::Composer => "Packagist".into(),
        PackageKind::Deb => {
            let os = os?;
            match os.id.as_str() {
                "debian" if !os.version_id.is_empty() => {
                    format!("Debian:{}", major(&os.version_id))
                }
                "ubuntu" => format!("Ubuntu:{}", os.version_id),
                _ => return None,
            }
        }
        PackageKind::Apk => {
            let os = os?;
            match os.id.as_str() {
                "alpine" => format!("Alpine:v{}", major_minor(&os.version_id)),
                "wolfi" => "Wolfi".into(),
                "chainguard" => "Chainguard".into(),
                _ => return None,
            }
        }
        PackageKind::Rpm => {
            let os = os?;
            match os.id.as_str() {
                "rhel" | "centos" => "Red Hat".into(),
                "rocky" => format!("Rocky Linux:{}", major(&os.version_id)),
                "almalinux" => format!("AlmaLinux:{}", major(&os.version_id)),
                "mariner" => format!("Mariner:{}", os.version_id),
                "azurelinux" => format!("Azure Linux:{}", os.version_id),
                "opensuse-leap" => format!("openSUSE:Leap {}", os.version_id),
                "sles" => format!("SUSE:Linux Enterprise Server {}", major(&os.version_id)),
                _ => return None,
            }
        }
    })
}

fn distro_namespace(kind: PackageKind, os: Option<&OsInfo>) -> String {
    match (kind, os) {
        (_, Some(os)) if !os.id.is_empty() => match os.id.as_str() {
            "rhel" => "redhat".into(),
            "opensuse-leap" | "opensuse-tumbleweed" | "sles" => "opensuse".into(),
            id => id.into(),
        },
        (PackageKind::Deb, _) => "debian".into(),
        (PackageKind::Apk, _) => "alpine".into(),
        _ => "redhat".into(),
    }
}

/// Build the package URL. Never fails: odd names fall back to a minimal purl.
pub fn purl(package: &Package, os: Option<&OsInfo>) -> String {
    let build = || -> Result<String, packageurl::Error> {
        let (purl_type, namespace, name): (&str, Option<String>, String) = match package.kind {
            PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm => (
                package.kind.as_str(),
                Some(distro_namespace(package.kind, os)),
                package.name.clone(),
            ),
            PackageKind::Python => (
                "pypi",
                None,
                package.name.to_ascii_lowercase().replace(['_', '.'], "-"),
            ),
            PackageKind::Npm => match package.name.split_once('/') {
                Some((scope, name)) if scope.starts_with('@') => {
                    ("npm", Some(scope.into()), name.into())
                }
                _ => ("npm", None, package.name.clone()),
            },
            PackageKind::Go => match package.name.rsplit_once('/') {
                Some((namespace, name)) => ("golang", Some(namespace.into()), name.into()),
                None => ("golang", None, package.name.clone()),
            },
            PackageKind::Cargo => ("cargo", None, package.name.clone()),
            PackageKind::Maven => match package.name.split_once(':') {
                Some((group, artifact)) => ("maven", Some(group.into()), artifact.into()),
                None => ("maven", None, package.name.clone()),
            },
            PackageKind::Gem => ("gem", None, package.name.clone()),
            PackageKind::Composer => match package.name.split_once('/') {
                Some((vendor, name)) => ("composer", Some(vendor.into()), name.into()),
                None => ("composer", None, package.name.clone()),
            },
        };
        let mut url = PackageUrl::new(purl_type, name)?;
        if let Some(namespace) = &namespace {
            url.with_namespace(namespace.as_str());
        }
        url.with_version(package.version.as_str());
        if let Some(arch) = &package.arch {
            url.add_qualifier("arch", arch.as_str())?;
        }
        if package.kind.is_os() {
            if let Some(os) = os {
                if !os.version_id.is_empty() {
                    url.add_qualifier("distro", format!("{}-{}", os.id, os.version_id))?;
                }
            }
            if let Some(epoch) = package.epoch.filter(|e| *e > 0) {
                url.add_qualifier("epoch", epoch.to_string())?;
            }
            if let Some(source) = &package.source_name {
                if source != &package.name {
                    let upstream = match &package.source_version {
                        Some(v) if package.kind == PackageKind::Deb && v != &package.version => {
                            format!("{source}@{v}")
                        }
                        _ => source.clone(),
                    };
                    url.add_qualifier("upstream", upstream)?;
                }
            }
        }
        Ok(url.to_string())
    };
    build().unwrap_or_else(|_| format!("pkg:generic/{}@{}", package.name, package.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, version: &str) -> OsInfo {
        OsInfo {
            id: id.into(),
            version_id: version.into(),
            ..OsInfo::default()
        }
    }

    #[test]
    fn purls_follow_the_spec() {
        let mut deb = Package::new(
            PackageKind::Deb,
            "libssl3",
            "3.0.11-1~deb12u2",
            "var/lib/dpkg/status",
        );
        deb.arch = Some("amd64".into());
        deb.source_name = Some("openssl".into());
        deb.source_version = Some("3.0.11-1~deb12u2".into());
        let debian = os("debian", "12");
        assert_eq!(
            purl(&deb, Some(&debian)),
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
        );
        assert_eq!(ecosystem(&deb, Some(&debian)).as_deref(), Some("Debian:12"));
        let npm = Package::new(PackageKind::Npm, "@babel/core", "7.0.0", "x");
        assert_eq!(purl(&npm, None), "pkg:npm/%40babel/core@7.0.0");
        let py = Package::new(PackageKind::Python, "PyYAML", "6.0", "x");
        assert_eq!(purl(&py, None), "pkg:pypi/pyyaml@6.0");
        let go = Package::new(PackageKind::Go, "golang.org/x/net", "v0.17.0", "x");
        assert_eq!(purl(&go, None), "pkg:golang/golang.org/x/net@v0.17.0");
        let maven = Package::new(
            PackageKind::Maven,
            "org.apache.logging.log4j:log4j-core",
            "2.14.1",
            "x",
        );
        assert_eq!(
            purl(&maven, None),
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
        );
        let mut rpm = Package::new(PackageKind::Rpm, "curl", "7.76.1-26.el9", "x");
        rpm.epoch = Some(1);
        rpm.arch = Some("x86_64".into());
        assert_eq!(
            purl(&rpm, Some(&os("rhel", "9.3"))),
            "pkg:rpm/redhat/curl@7.76.1-26.el9?arch=x86_64&distro=rhel-9.3&epoch=1"
        );
        let apk = Package::new(PackageKind::Apk, "musl", "1.2.4-r2", "x");
        assert_eq!(
            ecosystem(&apk, Some(&os("alpine", "3.19.1"))).as_deref(),
            Some("Alpine:v3.19")
        );
    }
}
