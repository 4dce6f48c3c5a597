//! A deliberately naive tree-walking interpreter, kept only as the benchmark's
//! baseline: it walks the AST per event, looks each field up by name per check,
//! expands macros and lists on the fly and compares literals as text.

use std::collections::HashMap;

use crate::ast::{Expr, Op, Operand};
use crate::fields::{self, EvalCtx};

/// Macros and lists as raw material for interpretation.
pub struct Interp<'a> {
    pub macros: &'a HashMap<String, Expr>,
    pub lists: &'a HashMap<String, Vec<String>>,
}

impl Interp<'_> {
    pub fn eval(&self, e: &Expr, ctx: &EvalCtx<'_>) -> bool {
        match e {
            Expr::And(v) => v.iter().all(|x| self.eval(x, ctx)),
            Expr::Or(v) => v.iter().any(|x| self.eval(x, ctx)),
            Expr::Not(x) => !self.eval(x, ctx),
            Expr::Macro { name, .. } => self.macros.get(name).is_some_and(|m| self.eval(m, ctx)),
            Expr::Check(c) => {
                let Ok(r) = fields::resolve(&c.field) else {
                    return false;
                };
                let Some(v) = r.getter.render(ctx) else {
                    return false;
                };
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                let mut items = Vec::new();
                match &c.value {
                    None => return c.op == Op::Exists,
                    Some(Operand::Value(l)) => items.push(l.text.clone()),
                    Some(Operand::List(ls)) => {
                        for l in ls {
                            match self.lists.get(&l.text) {
                                Some(x) => items.extend(x.iter().cloned()),
                                None => items.push(l.text.clone()),
                            }
                        }
                    }
                    Some(Operand::Field(_)) => return false,
                }
                let num = |s: &str| s.parse::<f64>().ok();
                let first = items.first().cloned().unwrap_or_default();
                match c.op {
                    Op::Eq => v == first,
                    Op::Ne => v != first,
                    Op::In | Op::Intersects => items.contains(&v),
                    Op::Pmatch => items.iter().any(|i| v.starts_with(i.as_str())),
                    Op::Contains => v.contains(first.as_str()),
                    Op::IContains => v.to_lowercase().contains(&first.to_lowercase()),
                    Op::StartsWith | Op::BStartsWith => v.starts_with(first.as_str()),
                    Op::EndsWith => v.ends_with(first.as_str()),
                    Op::Glob | Op::IGlob => {
                        crate::compile::glob_match(first.as_bytes(), v.as_bytes())
                    }
                    Op::Lt => num(&v) < num(&first),
                    Op::Le => num(&v) <= num(&first),
                    Op::Gt => num(&v) > num(&first),
                    Op::Ge => num(&v) >= num(&first),
                    Op::Exists => true,
                    Op::BContains | Op::Regex => v.contains(first.as_str()),
                }
            }
        }
    }
}
