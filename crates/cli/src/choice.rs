//! A clap value parser over a library's table of names, so library enums need no
//! clap derive and the CLI no mirror of them: help lists the names, and anything
//! else is refused with them.

use clap::builder::{PossibleValuesParser, TypedValueParser};

/// Parses one of `table`'s names into its value.
pub fn choice<T: Clone + Send + Sync + 'static>(
    table: &'static [(&'static str, T)],
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(table.iter().map(|(name, _)| *name)).try_map(move |given| {
        table
            .iter()
            .find(|(name, _)| *name == given)
            .map(|(_, value)| value.clone())
            // PossibleValuesParser let only the table's names through.
            .ok_or_else(|| format!("unknown value {given:?}"))
    })
}
