//! `rampart up` run as a child process, for the CLI's end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(30);

pub enum Line {
    Out(String),
    Err(String),
}

pub struct Up {
    child: Child,
    lines: Receiver<Line>,
    /// Central's state (store, spool, API tokens and certificate), per run.
    pub state_dir: std::path::PathBuf,
    /// Where the API listens (a free loopback port picked at start).
    pub api_addr: Option<String>,
}

impl Up {
    pub fn start(config: &Path) -> Self {
        // Each run its own state and a free port, so tests (and other users of this
        // host) never share 8443 or /var/lib/rampart.
        let state_dir = config
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .join(format!("up-state-{}", std::process::id()));
        let state = state_dir.to_string_lossy().into_owned();
        let config = config.to_string_lossy().into_owned();
        let mut up = Self::spawn(&[
            "up",
            "--api-listen",
            "127.0.0.1:0",
            "--state-dir",
            &state,
            "--config",
            &config,
        ]);
        up.state_dir = state_dir;
        let api = up.wait_stderr_line("rampart: API on https://");
        up.api_addr = api
            .split("https://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string);
        up.wait_stderr("sensor, detection and outputs running");
        up
    }

    /// `rampart ARGS…` (e.g. `node`, `central`) as a child whose output the test reads;
    /// the caller waits for whatever line says it is ready.
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rampart starts");
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(Line::Out(l));
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[up] {l}");
                let _ = tx2.send(Line::Err(l));
            }
        });
        Self {
            child,
            lines,
            state_dir: std::path::PathBuf::new(),
            api_addr: None,
        }
    }

    /// The first stderr line containing `needle`.
    pub fn wait_stderr_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Line::Err(l)) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no {needle:?} on stderr"),
                Err(RecvTimeoutError::Disconnected) => panic!("rampart up exited"),
            }
        }
    }

    /// Every line it prints, as it prints them.
    pub fn lines(&self) -> &Receiver<Line> {
        &self.lines
    }

    pub fn wait_stderr(&self, needle: &str) {
        self.wait_stderr_line(needle);
    }

    /// Alerts (rule names) written to stdout until `quiet` passes without output or
    /// `until` rule shows up.
    pub fn alerts_until(&self, until: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut rules = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(Line::Out(l)) => {
                    let v: serde_json::Value = serde_json::from_str(&l)
                        .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"));
                    let rule = v["rule"].as_str().unwrap_or_default().to_string();
                    let done = rule == until;
                    rules.push(rule);
                    if done {
                        return rules;
                    }
                }
                Ok(Line::Err(_)) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no alert of {until:?}; saw {rules:?}");
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with a valid pid and signal.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "rampart up exited with {status}");
                // A thread that panicked on the way out leaves the exit status alone:
                // its message on stderr is the only trace.
                let deadline = Instant::now() + Duration::from_secs(2);
                while let Ok(line) = self
                    .lines
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    if let Line::Err(l) = line {
                        assert!(!l.contains("panicked at"), "rampart panicked: {l}");
                    }
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("rampart up did not stop on SIGTERM");
    }
}

impl Drop for Up {
    /// A test that fails half-way leaves no `rampart up` (and its sensor) running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
