//! Falco's condition grammar (libsinsp `filter/parser.h`), as a hand-written
//! recursive-descent parser.
//!
//! Hand-written rather than `winnow` because the grammar is token-sensitive in ways a
//! combinator library does not help with (`contains ` needs a following blank,
//! `not(` and `in(` need none, bare strings stop at `(),=` and quotes), every error
//! needs the byte offset of the failing token and a list of what was expected, and
//! nesting must be capped with a clear error instead of a stack overflow. That is
//! ~300 lines here with no dependency.

use crate::ast::{Check, Expr, FieldRef, Literal, Op, Operand};

/// Deepest nesting of parentheses / `not` accepted. Falco allows 1000; we stop earlier
/// because compiled closures nest as deep and real rules never come close.
pub const MAX_DEPTH: usize = 200;

/// A syntax error at a byte offset of the condition text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

/// Parses a whole condition.
pub fn parse_condition(input: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        s: input.as_bytes(),
        src: input,
        pos: 0,
        depth: 0,
    };
    p.blanks();
    if p.pos >= p.s.len() {
        return Err(p.err("expected a condition, found the end of the text"));
    }
    let e = p.parse_or()?;
    p.blanks();
    if p.pos < p.s.len() {
        return Err(p.err(format!(
            "expected `and`, `or` or the end of the condition, found `{}`",
            p.snippet()
        )));
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
    depth: usize,
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x08)
}

fn is_bare_char(c: u8) -> bool {
    !is_blank(c) && !matches!(c, b'(' | b')' | b',' | b'=' | b'"' | b'\'')
}

const TRANSFORMERS: [&str; 3] = ["tolower", "toupper", "b64"];

impl<'a> Parser<'a> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn snippet(&self) -> String {
        let rest = &self.src[self.pos.min(self.src.len())..];
        let end = rest
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| i)
            .unwrap_or(rest.len())
            .min(24);
        // char boundary: char_indices gives boundaries, min(24) may not be one
        let mut end = end;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            "end of text".to_string()
        } else {
            rest[..end].to_string()
        }
    }

    fn blanks(&mut self) -> bool {
        let start = self.pos;
        while self.pos < self.s.len() && is_blank(self.s[self.pos]) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("condition nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// Matches a keyword (`and`, `or`, `not`) followed by a blank or `(`.
    fn keyword(&mut self, kw: &str) -> bool {
        let k = kw.as_bytes();
        if self.s[self.pos..].starts_with(k) {
            match self.s.get(self.pos + k.len()) {
                Some(&c) if is_blank(c) || c == b'(' => {
                    self.pos += k.len();
                    true
                }
                _ => false,
            }
        } else {
            false
        }
    }

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut items = vec![self.parse_and()?];
        loop {
            let save = self.pos;
            self.blanks();
            if self.keyword("or") {
                self.blanks();
                items.push(self.parse_and()?);
            } else {
                self.pos = save;
                break;
            }
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(vec![]))
        } else {
            Expr::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.parse_not()?];
        loop {
            let save = self.pos;
            self.blanks();
            if self.keyword("and") {
                self.blanks();
                items.push(self.parse_not()?);
            } else {
                self.pos = save;
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(vec![]))
        } else {
            Expr::And(items)
        })
    }

    fn parse_not(&mut self) -> Result<Expr, ParseError> {
        self.blanks();
        if self.keyword("not") {
            self.enter()?;
            self.blanks();
            let inner = self.parse_not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.parse_check()
    }

    fn parse_check(&mut self) -> Result<Expr, ParseError> {
        self.blanks();
        let start = self.pos;
        match self.peek() {
            None => Err(self.err("expected a field, a macro or `(`, found the end of the text")),
            Some(b'(') => {
                self.pos += 1;
                self.enter()?;
                let e = self.parse_or()?;
                self.depth -= 1;
                self.blanks();
                if self.peek() != Some(b')') {
                    return Err(self.err(format!(
                        "expected `)` to close the `(` at offset {start}, found `{}`",
                        self.snippet()
                    )));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let name = self.lex_name();
                if self.peek() == Some(b'(') && TRANSFORMERS.contains(&name.as_str()) {
                    self.pos += 1;
                    let field = self.parse_transformed_field(name, start)?;
                    return self.parse_condition_rest(field);
                }
                if name.contains('.') {
                    let field = self.parse_field_rest(name, start)?;
                    self.parse_condition_rest(field)
                } else {
                    if matches!(name.as_str(), "and" | "or" | "not") {
                        self.pos = start;
                        return Err(self.err(format!(
                            "expected a field, a macro or `(`, found the keyword `{name}`"
                        )));
                    }
                    Ok(Expr::Macro { name, pos: start })
                }
            }
            Some(_) => Err(self.err(format!(
                "expected a field, a macro or `(`, found `{}`",
                self.snippet()
            ))),
        }
    }

    /// `[a-zA-Z][a-zA-Z0-9_]*(\.[a-zA-Z0-9_]+)*`
    fn lex_name(&mut self) -> String {
        let start = self.pos;
        loop {
            while let Some(c) = self.peek() {
                if c.is_ascii_alphanumeric() || c == b'_' {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            if self.peek() == Some(b'.')
                && self
                    .s
                    .get(self.pos + 1)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                self.pos += 1;
                continue;
            }
            break;
        }
        self.src[start..self.pos].to_string()
    }

    fn parse_field_rest(&mut self, name: String, start: usize) -> Result<FieldRef, ParseError> {
        let mut arg = None;
        if self.peek() == Some(b'[') {
            self.pos += 1;
            let a = if matches!(self.peek(), Some(b'"') | Some(b'\'')) {
                self.lex_quoted()?.text
            } else {
                let s = self.pos;
                while let Some(c) = self.peek() {
                    if is_blank(c) || matches!(c, b'[' | b']' | b'"' | b'\'') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == s {
                    return Err(self.err("expected a field argument inside `[]`"));
                }
                self.src[s..self.pos].to_string()
            };
            if self.peek() != Some(b']') {
                return Err(self.err(format!(
                    "expected `]` after the field argument, found `{}`",
                    self.snippet()
                )));
            }
            self.pos += 1;
            arg = Some(a);
        }
        Ok(FieldRef {
            name,
            arg,
            transformer: None,
            pos: start,
        })
    }

    fn parse_transformed_field(
        &mut self,
        transformer: String,
        start: usize,
    ) -> Result<FieldRef, ParseError> {
        self.blanks();
        let fstart = self.pos;
        if !self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(self.err(format!("expected a field inside `{transformer}(`")));
        }
        let name = self.lex_name();
        if !name.contains('.') {
            self.pos = fstart;
            return Err(self.err(format!("expected a field name, found `{name}`")));
        }
        let mut f = self.parse_field_rest(name, fstart)?;
        self.blanks();
        if self.peek() != Some(b')') {
            return Err(self.err(format!("expected `)` to close `{transformer}(`")));
        }
        self.pos += 1;
        f.transformer = Some(transformer);
        f.pos = start;
        Ok(f)
    }

    fn lex_op(&mut self) -> Option<Op> {
        const SYMBOLS: [(&str, Op); 7] = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        for (sym, op) in SYMBOLS {
            if self.s[self.pos..].starts_with(sym.as_bytes()) {
                self.pos += sym.len();
                return Some(op);
            }
        }
        // Word operators: string operators need a following blank, list operators
        // also accept `(`, `exists` needs a word boundary.
        const WORDS: [(&str, Op); 13] = [
            ("bstartswith", Op::BStartsWith),
            ("startswith", Op::StartsWith),
            ("endswith", Op::EndsWith),
            ("icontains", Op::IContains),
            ("bcontains", Op::BContains),
            ("contains", Op::Contains),
            ("intersects", Op::Intersects),
            ("pmatch", Op::Pmatch),
            ("iglob", Op::IGlob),
            ("glob", Op::Glob),
            ("regex", Op::Regex),
            ("exists", Op::Exists),
            ("in", Op::In),
        ];
        for (word, op) in WORDS {
            if self.s[self.pos..].starts_with(word.as_bytes()) {
                let next = self.s.get(self.pos + word.len()).copied();
                let ok = match op {
                    Op::Exists => next.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == b'_')),
                    o if o.takes_list() => next.is_some_and(|c| is_blank(c) || c == b'('),
                    _ => next.is_some_and(is_blank),
                };
                if ok {
                    self.pos += word.len();
                    return Some(op);
                }
            }
        }
        None
    }

    fn parse_condition_rest(&mut self, field: FieldRef) -> Result<Expr, ParseError> {
        self.blanks();
        let op_pos = self.pos;
        let Some(op) = self.lex_op() else {
            return Err(self.err(format!(
                "expected an operator after `{field}` (=, !=, <, <=, >, >=, in, intersects, pmatch, contains, icontains, bcontains, startswith, bstartswith, endswith, glob, iglob, regex, exists), found `{}`",
                self.snippet()
            )));
        };
        if op == Op::Exists {
            return Ok(Expr::Check(Check {
                field,
                op,
                value: None,
                op_pos,
            }));
        }
        self.blanks();
        let value = if let Some(f) = self.try_val_field()? {
            Operand::Field(f)
        } else if op.takes_list() {
            self.parse_list_value()?
        } else {
            Operand::Value(self.parse_str_value()?)
        };
        Ok(Expr::Check(Check {
            field,
            op,
            value: Some(value),
            op_pos,
        }))
    }

    /// `val(field)` on the right-hand side.
    fn try_val_field(&mut self) -> Result<Option<FieldRef>, ParseError> {
        if !self.s[self.pos..].starts_with(b"val(") {
            return Ok(None);
        }
        let start = self.pos;
        self.pos += 4;
        self.blanks();
        let fstart = self.pos;
        let name = self.lex_name();
        if !name.contains('.') {
            self.pos = fstart;
            return Err(self.err("expected a field name inside `val(`"));
        }
        let mut f = self.parse_field_rest(name, fstart)?;
        self.blanks();
        if self.peek() != Some(b')') {
            return Err(self.err("expected `)` to close `val(`"));
        }
        self.pos += 1;
        f.pos = start;
        Ok(Some(f))
    }

    fn parse_list_value(&mut self) -> Result<Operand, ParseError> {
        if self.peek() != Some(b'(') {
            // A list name without parentheses (`proc.name in shell_binaries`).
            if self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                let start = self.pos;
                let name = self.lex_name();
                return Ok(Operand::List(vec![Literal {
                    text: name,
                    quoted: false,
                    pos: start,
                }]));
            }
            return Err(self.err(format!(
                "expected a list `(a, b, …)` or a list name, found `{}`",
                self.snippet()
            )));
        }
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        self.blanks();
        if self.peek() == Some(b')') {
            self.pos += 1;
            return Ok(Operand::List(items));
        }
        loop {
            self.blanks();
            items.push(self.parse_str_value()?);
            self.blanks();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                }
                Some(b')') => {
                    self.pos += 1;
                    return Ok(Operand::List(items));
                }
                None => {
                    return Err(self.err(format!(
                        "expected `,` or `)` to close the list opened at offset {open}, found the end of the text"
                    )))
                }
                Some(_) => {
                    return Err(self.err(format!(
                        "expected `,` or `)` in the list, found `{}`",
                        self.snippet()
                    )))
                }
            }
        }
    }

    fn parse_str_value(&mut self) -> Result<Literal, ParseError> {
        match self.peek() {
            Some(b'"') | Some(b'\'') => self.lex_quoted(),
            Some(c) if is_bare_char(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_bare_char) {
                    self.pos += 1;
                }
                // is_bare_char only stops on ASCII bytes, so this is a char boundary.
                Ok(Literal {
                    text: self.src[start..self.pos].to_string(),
                    quoted: false,
                    pos: start,
                })
            }
            _ => Err(self.err(format!(
                "expected a value (a quoted string or a bare word), found `{}`",
                self.snippet()
            ))),
        }
    }

    fn lex_quoted(&mut self) -> Result<Literal, ParseError> {
        let start = self.pos;
        let quote = self.s[self.pos];
        self.pos += 1;
        let mut out = String::new();
        let mut seg = self.pos;
        while self.pos < self.s.len() {
            let c = self.s[self.pos];
            if c == b'\\' && self.pos + 1 < self.s.len() {
                out.push_str(&self.src[seg..self.pos]);
                let e = self.s[self.pos + 1];
                let rep = match e {
                    b'"' => Some('"'),
                    b'\'' => Some('\''),
                    b'\\' => Some('\\'),
                    b'n' => Some('\n'),
                    b't' => Some('\t'),
                    b'r' => Some('\r'),
                    b'b' => Some('\u{8}'),
                    b'f' => Some('\u{c}'),
                    _ => None,
                };
                match rep {
                    Some(ch) => {
                        out.push(ch);
                        self.pos += 2;
                    }
                    None => {
                        out.push('\\');
                        self.pos += 1;
                    }
                }
                seg = self.pos;
                continue;
            }
            if c == quote {
                out.push_str(&self.src[seg..self.pos]);
                self.pos += 1;
                return Ok(Literal {
                    text: out,
                    quoted: true,
                    pos: start,
                });
            }
            self.pos += 1;
        }
        self.pos = start;
        Err(self.err(format!(
            "unterminated string: expected a closing {}",
            quote as char
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: &Expr) -> &Check {
        match e {
            Expr::Check(c) => c,
            other => panic!("not a check: {other:?}"),
        }
    }

    #[test]
    fn precedence_and_or_not() {
        let e = parse_condition("a and not b or c").unwrap();
        match e {
            Expr::Or(items) => {
                assert_eq!(items.len(), 2);
                assert!(matches!(&items[0], Expr::And(v) if matches!(v[1], Expr::Not(_))));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fields_args_and_lists() {
        let e = parse_condition("proc.aname[2] in (sh, \"a b\", 'c', '', runc:[1:CHILD])").unwrap();
        let c = check(&e);
        assert_eq!(c.field.name, "proc.aname");
        assert_eq!(c.field.arg.as_deref(), Some("2"));
        let Some(Operand::List(items)) = &c.value else {
            panic!()
        };
        let texts: Vec<_> = items.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["sh", "a b", "c", "", "runc:[1:CHILD]"]);
    }

    #[test]
    fn operators_need_their_separators() {
        assert!(parse_condition("fd.name contains/etc").is_err());
        assert!(parse_condition("evt.type in(open,openat)").is_ok());
        assert!(parse_condition("not(proc.name=sh)").is_ok());
        let e = parse_condition("fd.num>=0").unwrap();
        assert_eq!(check(&e).op, Op::Ge);
        let e = parse_condition("proc.pname exists").unwrap();
        assert_eq!(check(&e).op, Op::Exists);
        let e = parse_condition("evt.dir=<").unwrap();
        assert_eq!(
            check(&e).value,
            Some(Operand::Value(Literal {
                text: "<".into(),
                quoted: false,
                pos: 8
            }))
        );
    }

    #[test]
    fn errors_have_offsets() {
        let err = parse_condition("proc.name = sh and (fd.name = x").unwrap_err();
        assert_eq!(err.offset, 31);
        assert!(err.message.contains("expected `)`"), "{}", err.message);
        let err = parse_condition("proc.name bogus x").unwrap_err();
        assert_eq!(err.offset, 10);
        let err = parse_condition("proc.name = 'abc").unwrap_err();
        assert_eq!(err.offset, 12);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        let err = parse_condition(&deep).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{}", err.message);
        let nots = format!("{}a", "not ".repeat(100_000));
        assert!(parse_condition(&nots).is_err());
    }

    #[test]
    fn transformers_and_val() {
        let e = parse_condition("tolower(proc.name) = val(proc.pname)").unwrap();
        let c = check(&e);
        assert_eq!(c.field.transformer.as_deref(), Some("tolower"));
        assert!(matches!(&c.value, Some(Operand::Field(f)) if f.name == "proc.pname"));
    }
}
