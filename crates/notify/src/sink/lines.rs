//! One encoded alert per line, to stdout or to a file rotated by size.
//!
//! Writes are plain blocking appends of one short line followed by a flush: alerts are
//! rare compared to events, each write is a few hundred bytes into the page cache, and
//! flushing per line keeps `tail -f` and log shippers current. (tokio's file type would
//! hand each write to a blocking thread anyway.)

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use rampart_event::Alert;

use super::AlertSink;
use crate::config::{Encoding, FileConfig};
use crate::encode::{encode, EncodeContext};
use crate::NotifyError;

enum Target {
    Stdout,
    File(RotatingFile),
}

/// JSON-lines (or text/CEF lines) sink.
pub struct LineSink {
    name: String,
    encoding: Encoding,
    ctx: EncodeContext,
    target: Target,
}

impl LineSink {
    pub fn stdout(name: String, encoding: Encoding, ctx: EncodeContext) -> Self {
        Self {
            name,
            encoding,
            ctx,
            target: Target::Stdout,
        }
    }

    pub fn file(
        name: String,
        config: &FileConfig,
        ctx: EncodeContext,
    ) -> Result<Self, NotifyError> {
        let file = RotatingFile::open(
            &config.path,
            config.max_size_mb.saturating_mul(1024 * 1024),
            config.keep_files,
        )?;
        Ok(Self {
            name,
            encoding: config.format,
            ctx,
            target: Target::File(file),
        })
    }

    fn write_alert(&mut self, alert: &Alert) -> Result<(), NotifyError> {
        let mut line = encode(self.encoding, alert, &self.ctx);
        line.push('\n');
        match &mut self.target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes())
                    .and_then(|_| out.flush())
                    .map_err(|source| NotifyError::Io {
                        what: "writing alert to stdout".into(),
                        source,
                    })
            }
            Target::File(f) => f.write_line(line.as_bytes()),
        }
    }
}

impl AlertSink for LineSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a mut self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move { self.write_alert(alert) })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), NotifyError>> {
        Box::pin(async move {
            match &mut self.target {
                Target::Stdout => std::io::stdout().flush().map_err(|source| NotifyError::Io {
                    what: "flushing stdout".into(),
                    source,
                }),
                Target::File(f) => f.flush(),
            }
        })
    }
}

/// An append-only file that, before a write would take it past `max_bytes`, shifts
/// `<path>.1 … <path>.<keep-1>` up by one, renames the live file to `<path>.1`, deletes
/// what falls past `<path>.<keep>`, and starts a new live file. A single line longer
/// than `max_bytes` still goes into a file of its own rather than being lost.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    writer: BufWriter<File>,
    size: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, NotifyError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| NotifyError::Io {
                what: format!("creating directory {}", dir.display()),
                source,
            })?;
        }
        let file = open_append(path)?;
        let size = file
            .metadata()
            .map_err(|source| NotifyError::Io {
                what: format!("reading size of {}", path.display()),
                source,
            })?
            .len();
        Ok(Self {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            writer: BufWriter::new(file),
            size,
        })
    }

    /// Path of the `n`th rotated file (`n` ≥ 1).
    pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
        let mut s = path.as_os_str().to_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    pub fn write_line(&mut self, line: &[u8]) -> Result<(), NotifyError> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.writer
            .write_all(line)
            .and_then(|_| self.writer.flush())
            .map_err(|source| NotifyError::Io {
                what: format!("writing {}", self.path.display()),
                source,
            })?;
        self.size += line.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), NotifyError> {
        self.writer.flush().map_err(|source| NotifyError::Io {
            what: format!("flushing {}", self.path.display()),
            source,
        })
    }

    fn rotate(&mut self) -> Result<(), NotifyError> {
        self.flush()?;
        let io = |what: String| move |source| NotifyError::Io { what, source };
        if self.keep == 0 {
            std::fs::remove_file(&self.path)
                .map_err(io(format!("removing {}", self.path.display())))?;
        } else {
            // Oldest first, so nothing is overwritten: .keep-1 → .keep, …, .1 → .2.
            for n in (1..self.keep).rev() {
                let from = Self::rotated_path(&self.path, n);
                if from.exists() {
                    let to = Self::rotated_path(&self.path, n + 1);
                    std::fs::rename(&from, &to).map_err(io(format!(
                        "renaming {} to {}",
                        from.display(),
                        to.display()
                    )))?;
                }
            }
            let first = Self::rotated_path(&self.path, 1);
            std::fs::rename(&self.path, &first).map_err(io(format!(
                "renaming {} to {}",
                self.path.display(),
                first.display()
            )))?;
        }
        self.writer = BufWriter::new(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, NotifyError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| NotifyError::Io {
            what: format!("opening {}", path.display()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/alerts.jsonl");
        // Each line is 10 bytes ("line-NNN\n" is 9, plus padding); 25 bytes hold two.
        let mut f = RotatingFile::open(&path, 25, 2).unwrap();
        for i in 0..9 {
            f.write_line(format!("line-{i:03}_\n").as_bytes()).unwrap();
        }
        // 9 lines, two per file: live holds 8; .1 holds 6,7; .2 holds 4,5; 0–3 deleted.
        assert_eq!(lines_of(&path), ["line-008_"]);
        assert_eq!(
            lines_of(&RotatingFile::rotated_path(&path, 1)),
            ["line-006_", "line-007_"]
        );
        assert_eq!(
            lines_of(&RotatingFile::rotated_path(&path, 2)),
            ["line-004_", "line-005_"]
        );
        assert!(!RotatingFile::rotated_path(&path, 3).exists());
    }

    #[test]
    fn keep_zero_truncates_and_reopen_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        {
            let mut f = RotatingFile::open(&path, 12, 0).unwrap();
            f.write_line(b"aaaaaaaaa\n").unwrap();
            f.write_line(b"bbbbbbbbb\n").unwrap();
        }
        assert_eq!(lines_of(&path), ["bbbbbbbbb"]);
        assert!(!RotatingFile::rotated_path(&path, 1).exists());
        // Reopening continues the existing file and counts its size.
        let mut f = RotatingFile::open(&path, 12, 1).unwrap();
        f.write_line(b"c\n").unwrap();
        assert_eq!(lines_of(&path), ["bbbbbbbbb", "c"]);
        f.write_line(b"d\n").unwrap();
        assert_eq!(lines_of(&path), ["d"]);
        assert_eq!(
            lines_of(&RotatingFile::rotated_path(&path, 1)),
            ["bbbbbbbbb", "c"]
        );
    }

    #[test]
    fn oversized_line_is_written_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let mut f = RotatingFile::open(&path, 4, 3).unwrap();
        f.write_line(b"0123456789\n").unwrap();
        f.write_line(b"x\n").unwrap();
        assert_eq!(lines_of(&path), ["x"]);
        assert_eq!(
            lines_of(&RotatingFile::rotated_path(&path, 1)),
            ["0123456789"]
        );
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let err = RotatingFile::open(Path::new("/proc/no/such/dir/a.log"), 10, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/proc/no/such/dir"), "{err}");
    }
}
