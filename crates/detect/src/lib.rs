//! Rampart's rule-based detection: Falco-compatible rules files, compiled once into
//! closures indexed by event kind, evaluated against [`rampart_event::Event`]s, and
//! turned into [`rampart_event::Alert`]s with aggregation and rate limits.
//!
//! This crate owns the rule language (YAML lists / macros / rules with Falco's
//! append/override and exceptions semantics, Falco's condition grammar), the mapping
//! of Falco's syscall fields onto Rampart's event model, the compiled evaluator,
//! alert noise control, the in-file rule-test format and the offline rule tools
//! (validate, list, test) behind `rampart rules`.
//!
//! Entry points: [`RuleEngine::load`] / [`RuleEngine::evaluate`] /
//! [`RuleEngine::reload`] for `rampart up`; [`load_files`] for tools; [`validate_files`],
//! [`list_rules`] and [`test_files`] for the `rampart rules` subcommands.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod alerts;
pub mod ast;
#[doc(hidden)]
pub mod baseline;
pub mod compile;
pub mod coverage;
pub mod diagnostic;
pub mod engine;
pub mod environ;
pub mod fields;
pub mod fsprobe;
pub mod hostnames;
pub mod kinds;
pub mod library;
pub mod loader;
pub mod output;
pub mod parser;
mod plan;
mod probe;
pub mod rate;
pub mod rule;
pub mod ruleset;
pub mod source;
pub mod tests_format;
pub mod tools;
pub mod users;

pub use alerts::NoiseConfig;
pub use engine::{EngineError, RuleEngine};
pub use fields::EvalCtx;
pub use hostnames::{ResolveOptions, Resolver, StaticResolver, SystemResolver};
pub use loader::{
    compile_condition, load_files, load_files_with, load_texts, load_texts_with, Condition,
    LoadError, LoadWarning, CAPTURE_TAG,
};
pub use parser::{parse_condition, ParseError};
pub use rule::CompiledRule;
pub use ruleset::RuleSet;
pub use tools::{list_rules, test_files, validate_files};
pub use users::{HostPasswd, NoUsers, StaticUsers, UserDirectory, UserEntry};
