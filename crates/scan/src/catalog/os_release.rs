//! `os-release` files (freedesktop.org format): KEY=VALUE, optionally quoted.

use crate::model::OsInfo;

pub fn parse(text: &str) -> OsInfo {
    let mut info = OsInfo::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match key.trim() {
            "ID" => info.id = value.to_ascii_lowercase(),
            "VERSION_ID" => info.version_id = value,
            "PRETTY_NAME" => info.pretty_name = value,
            "VERSION_CODENAME" => info.version_codename = value,
            "ID_LIKE" => info.id_like = value.split_whitespace().map(str::to_string).collect(),
            _ => {}
        }
    }
    info
}

fn unquote(value: &str) -> String {
    let stripped = if value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')))
    {
        &value[1..value.len() - 1]
    } else {
        value
    };
    stripped.replace("\\\"", "\"").replace("\\\\", "\\")
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_quoted_values() {
        let info = super::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nID_LIKE='rhel fedora'\n# c\n",
        );
        assert_eq!(info.id, "debian");
        assert_eq!(info.version_id, "12");
        assert_eq!(info.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(info.id_like, vec!["rhel", "fedora"]);
    }
}
