//! Rampart's rule-based detection: Falco-compatible rules files, compiled once into
//! closures indexed by event kind, evaluated against [`rampart_event::Event`]s, and
//! turned into [`rampart_event::Alert`]s with aggregation and rate limits.
//!
//! This crate owns the rule language (YAML lists / macros / rules with Falco's
//! append/override and exceptions semantics, Falco's condition grammar), the mapping
//! of Falco's syscall fields onto Rampart's event model, the compiled evaluator,
//! alert noise control, the in-file rule-test format and the `rampart rules` CLI.
//!
//! Entry points: [`RuleEngine::load`] / [`RuleEngine::evaluate`] /
//! [`RuleEngine::reload`] for `rampart up`; [`load_files`] for tools; [`cli`] for
//! the `rampart rules` subcommands.

pub mod alerts;
pub mod ast;
#[doc(hidden)]
pub mod baseline;
pub mod cli;
pub mod compile;
pub mod fields;
pub mod hostnames;
pub mod loader;
pub mod output;
pub mod parser;
mod plan;
pub mod ruleset;
pub mod source;
pub mod tests_format;

pub use alerts::NoiseConfig;
pub use fields::EvalCtx;
pub use hostnames::{ResolveOptions, Resolver, StaticResolver, SystemResolver};
pub use loader::{
    compile_condition, load_files, load_files_with, load_texts, load_texts_with, Condition,
    LoadError, LoadWarning,
};
pub use parser::{parse_condition, ParseError};
pub use ruleset::{CompiledRule, EngineError, RuleEngine, RuleSet};
