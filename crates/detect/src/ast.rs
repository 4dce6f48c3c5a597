//! The condition syntax tree, as parsed (before macros and lists are resolved).
//!
//! Every node keeps the byte offset where it starts in its condition text, so a
//! compile error can point at the exact token in the rules file.

use std::fmt;

/// A boolean condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `field op value`.
    Check(Check),
    /// A bare identifier: a macro reference, resolved at compile time.
    Macro {
        name: String,
        pos: usize,
    },
}

/// One comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub field: FieldRef,
    pub op: Op,
    /// Absent only for unary operators (`exists`).
    pub value: Option<Operand>,
    /// Offset of the operator.
    pub op_pos: usize,
}

/// A field with its optional argument (`proc.aname[2]`, `evt.arg.flags`) and transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub name: String,
    pub arg: Option<String>,
    /// `tolower`, `toupper`, `b64`, applied to the field value.
    pub transformer: Option<String>,
    pub pos: usize,
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.transformer {
            write!(f, "{t}(")?;
        }
        f.write_str(&self.name)?;
        if let Some(a) = &self.arg {
            write!(f, "[{a}]")?;
        }
        if self.transformer.is_some() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// One literal (quoted or bare).
    Value(Literal),
    /// `(a, "b c", d)`; bare items naming a list are expanded at compile time.
    List(Vec<Literal>),
    /// `val(other.field)`: compare against another field of the same event.
    Field(FieldRef),
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub text: String,
    /// Quoted literals are never treated as list names.
    pub quoted: bool,
    pub pos: usize,
}

/// Comparison operators, Falco's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Intersects,
    Pmatch,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    Regex,
    Exists,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::Pmatch => "pmatch",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::BContains => "bcontains",
            Op::StartsWith => "startswith",
            Op::BStartsWith => "bstartswith",
            Op::EndsWith => "endswith",
            Op::Glob => "glob",
            Op::IGlob => "iglob",
            Op::Regex => "regex",
            Op::Exists => "exists",
        }
    }

    /// Parses an operator name as written in exception `comps`.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "in" => Op::In,
            "intersects" => Op::Intersects,
            "pmatch" => Op::Pmatch,
            "contains" => Op::Contains,
            "icontains" => Op::IContains,
            "bcontains" => Op::BContains,
            "startswith" => Op::StartsWith,
            "bstartswith" => Op::BStartsWith,
            "endswith" => Op::EndsWith,
            "glob" => Op::Glob,
            "iglob" => Op::IGlob,
            "regex" => Op::Regex,
            "exists" => Op::Exists,
            _ => return None,
        })
    }

    pub fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::Pmatch)
    }
}
