//! Positions inside rules files.
//!
//! `yaml_serde` gives values without spans, so positions are recovered from the file
//! text: top-level items start at `- ` lines, keys are found in their item's lines,
//! and a scalar's characters are aligned with the raw text after its key (folding,
//! indentation and quoting only remove or turn characters into blanks, so a greedy
//! alignment lands on the right line and column).

use std::sync::Arc;

/// A line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// Text whose bytes each know where they came from in a file.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: Arc<str>,
    pub text: String,
    /// One position per byte of `text`, plus one for the end.
    positions: Vec<Pos>,
}

impl Source {
    /// Text with every byte attributed to one position (generated text).
    pub fn synthetic(file: Arc<str>, text: String, at: Pos) -> Self {
        let positions = vec![at; text.len() + 1];
        Self {
            file,
            text,
            positions,
        }
    }

    /// Aligns a scalar's value with the raw file text that follows its key.
    pub fn aligned(file: Arc<str>, text: String, raw: &str, raw_start: Pos) -> Self {
        let positions = align(&text, raw, raw_start);
        Self {
            file,
            text,
            positions,
        }
    }

    pub fn position(&self, offset: usize) -> Pos {
        self.positions
            .get(offset)
            .or_else(|| self.positions.last())
            .copied()
            .unwrap_or_default()
    }

    /// `self + sep + other`, keeping both origins (Falco's condition append).
    pub fn append(&self, sep: &str, other: &Source) -> Source {
        let mut text = self.text.clone();
        let mut positions = self.positions[..self.text.len()].to_vec();
        let join_at = other.position(0);
        text.push_str(sep);
        positions.extend(std::iter::repeat_n(join_at, sep.len()));
        text.push_str(&other.text);
        positions.extend_from_slice(&other.positions);
        Source {
            file: self.file.clone(),
            text,
            positions,
        }
    }

    /// `prefix + self + suffix` with the added text attributed to the start.
    pub fn wrap(&self, prefix: &str, suffix: &str) -> Source {
        let start = self.position(0);
        let end = self.position(self.text.len());
        let mut text = String::with_capacity(prefix.len() + self.text.len() + suffix.len());
        text.push_str(prefix);
        text.push_str(&self.text);
        text.push_str(suffix);
        let mut positions = vec![start; prefix.len()];
        positions.extend_from_slice(&self.positions[..self.text.len()]);
        positions.extend(std::iter::repeat_n(end, suffix.len() + 1));
        Source {
            file: self.file.clone(),
            text,
            positions,
        }
    }
}

fn align(value: &str, raw: &str, start: Pos) -> Vec<Pos> {
    let v = value.as_bytes();
    let r = raw.as_bytes();
    let mut out = Vec::with_capacity(v.len() + 1);
    let (mut line, mut col) = (start.line, start.col);
    let mut ri = 0usize;
    let advance = |ri: &mut usize, line: &mut u32, col: &mut u32| {
        if r[*ri] == b'\n' {
            *line += 1;
            *col = 1;
        } else if r[*ri] & 0xC0 != 0x80 {
            *col += 1;
        }
        *ri += 1;
    };
    for &c in v {
        // Look a little ahead for the byte; skip indentation, quotes, escapes.
        let found = r[ri.min(r.len())..]
            .iter()
            .take(256)
            .position(|&x| x == c || (c == b' ' && x == b'\n'));
        match found {
            Some(skip) => {
                for _ in 0..skip {
                    advance(&mut ri, &mut line, &mut col);
                }
                out.push(Pos { line, col });
                if ri < r.len() {
                    advance(&mut ri, &mut line, &mut col);
                }
            }
            None => out.push(Pos { line, col }),
        }
    }
    out.push(Pos { line, col });
    out
}

/// Where the items of a rules file start, and their keys.
pub struct FileLayout<'a> {
    text: &'a str,
    /// Byte offset of each line start.
    line_starts: Vec<usize>,
    /// Line index (0-based) of each top-level item.
    items: Vec<usize>,
}

impl<'a> FileLayout<'a> {
    pub fn new(text: &'a str, item_count: usize) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let lines: Vec<&str> = text.split('\n').collect();
        let is_item = |l: &str, indent: usize| {
            l.len() > indent
                && l[..indent].bytes().all(|b| b == b' ')
                && l[indent..].starts_with('-')
                && l[indent + 1..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == ' ' || c == '\r')
        };
        let mut items: Vec<usize> = (0..lines.len()).filter(|&i| is_item(lines[i], 0)).collect();
        if items.len() != item_count {
            // Indented top-level sequence: use the first item's indentation.
            if let Some(first) = lines.iter().find(|l| l.trim_start().starts_with("- ")) {
                let indent = first.len() - first.trim_start().len();
                items = (0..lines.len())
                    .filter(|&i| is_item(lines[i], indent))
                    .collect();
            }
        }
        if items.len() != item_count {
            items.clear();
        }
        Self {
            text,
            line_starts,
            items,
        }
    }

    fn line_range(&self, item: usize) -> Option<(usize, usize)> {
        let start = *self.items.get(item)?;
        let end = self
            .items
            .get(item + 1)
            .copied()
            .unwrap_or(self.line_starts.len());
        Some((start, end))
    }

    fn line_text(&self, line: usize) -> &'a str {
        let s = self.line_starts[line];
        let e = self
            .line_starts
            .get(line + 1)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        &self.text[s..e.max(s)]
    }

    /// Position of the item's first line.
    pub fn item_pos(&self, item: usize) -> Pos {
        match self.line_range(item) {
            Some((l, _)) => Pos {
                line: l as u32 + 1,
                col: 1,
            },
            None => Pos { line: 1, col: 1 },
        }
    }

    /// Position of `key:` inside an item (the first occurrence at the item's key indent).
    pub fn key_pos(&self, item: usize, key: &str) -> Option<(Pos, usize)> {
        let (start, end) = self.line_range(item)?;
        let first = self.line_text(start);
        let key_indent = first.len() - first.trim_start().len() + 2;
        for line in start..end {
            let t = self.line_text(line);
            let body_at = if line == start {
                key_indent
            } else {
                t.len() - t.trim_start().len()
            };
            if line != start && body_at != key_indent {
                continue;
            }
            let body = t.get(body_at..)?;
            if let Some(rest) = body.strip_prefix(key) {
                if rest.starts_with(':') {
                    let offset = self.line_starts[line] + body_at;
                    return Some((
                        Pos {
                            line: line as u32 + 1,
                            col: body_at as u32 + 1,
                        },
                        offset,
                    ));
                }
            }
        }
        None
    }

    /// A scalar value under `key` with per-byte positions.
    pub fn value_source(&self, file: &Arc<str>, item: usize, key: &str, value: &str) -> Source {
        let Some((key_pos, key_off)) = self.key_pos(item, key) else {
            return Source::synthetic(file.clone(), value.to_string(), self.item_pos(item));
        };
        let end = self
            .line_range(item)
            .and_then(|(_, e)| self.line_starts.get(e).copied())
            .unwrap_or(self.text.len());
        let after_key = key_off + key.len() + 1;
        let raw = &self.text[after_key.min(end)..end];
        let start = Pos {
            line: key_pos.line,
            col: key_pos.col + key.len() as u32 + 1,
        };
        Source::aligned(file.clone(), value.to_string(), raw, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# c\n- macro: m\n  condition: proc.name = x\n\n- rule: r\n  desc: d\n  condition: >\n    evt.type = execve\n    and bogus\n  output: o\n";

    #[test]
    fn finds_items_keys_and_value_positions() {
        let l = FileLayout::new(FILE, 2);
        assert_eq!(l.item_pos(1), Pos { line: 5, col: 1 });
        let file: Arc<str> = "f.yaml".into();
        let s = l.value_source(&file, 0, "condition", "proc.name = x");
        assert_eq!(s.position(0), Pos { line: 3, col: 14 });
        let folded = "evt.type = execve and bogus\n";
        let s = l.value_source(&file, 1, "condition", folded);
        let at = folded.find("bogus").unwrap();
        assert_eq!(s.position(at), Pos { line: 9, col: 9 });
        assert_eq!(s.position(0), Pos { line: 8, col: 5 });
    }

    #[test]
    fn append_keeps_both_origins() {
        let a = Source::synthetic("f".into(), "a".into(), Pos { line: 1, col: 1 });
        let b = Source::synthetic("f".into(), "b".into(), Pos { line: 9, col: 3 });
        let c = a.append(" ", &b);
        assert_eq!(c.text, "a b");
        assert_eq!(c.position(2), Pos { line: 9, col: 3 });
        let w = c.wrap("(", ")");
        assert_eq!(w.position(3), Pos { line: 9, col: 3 });
    }
}
