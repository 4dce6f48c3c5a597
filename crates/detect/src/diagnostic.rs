//! Located problems in rules files: errors that drop an item, warnings that do not.

use crate::source::Pos;

/// A problem in a rules file, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct LoadError {
    pub file: String,
    pub line: u32,
    pub col: u32,
    /// What failed (`rule 'X'`, `macro 'y'`, `list 'z'`), when it is one item.
    pub item: Option<String>,
    pub message: String,
}

impl LoadError {
    pub(crate) fn at(
        file: &str,
        pos: Pos,
        item: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        let message = match &item {
            Some(i) => format!("{i}: {message}"),
            None => message,
        };
        Self {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            item,
            message,
        }
    }
}

/// A note that does not stop loading (unused list, field without data, …).
pub type LoadWarning = LoadError;
