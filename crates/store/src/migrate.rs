//! Versioned migrations: each backend has an ordered list; a store records the versions
//! it applied (`schema_migrations`) and applies the missing ones at open, each in its
//! own transaction. A database newer than the build is refused, not guessed at.

/// One schema step. Versions start at 1 and increase by one; a released step never
/// changes (a fix is a new step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The highest version of a list.
    pub fn latest(list: &[Migration]) -> u32 {
        list.last().map(|m| m.version).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_versions_are_consecutive() {
        for (i, m) in crate::SQLITE_MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
        }
    }
}
