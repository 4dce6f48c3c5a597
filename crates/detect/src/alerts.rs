//! Alert noise control: aggregation of identical alerts and per-rule rate limits.
//!
//! Identical = same rule, same container, same process lineage (the exe chain). The
//! first alert of a burst is delivered at once (latency stays that of one event); the
//! rest of the window is counted, and one aggregate alert carrying the count is
//! delivered when the window closes. Per-rule token buckets cap the first alerts; an
//! alert held back by the bucket is counted in its window, never dropped silently.
//! All time comes from the caller (event timestamps), so behaviour is deterministic.

use std::collections::HashMap;

use rampart_event::{Alert, Workload};

use crate::fields::EvalCtx;
use crate::rule::CompiledRule;

/// Noise-control settings.
#[derive(Debug, Clone, Copy)]
pub struct NoiseConfig {
    /// Aggregation window; 0 disables aggregation.
    pub window_ns: u64,
    /// Sustained first-alerts per second allowed per rule; 0 disables the limit.
    pub rate_per_sec: f64,
    /// Bucket size (bursts above the rate).
    pub burst: f64,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            window_ns: 10_000_000_000,
            rate_per_sec: 10.0,
            burst: 50.0,
        }
    }
}

#[derive(Hash, PartialEq, Eq, Clone)]
struct AlertKey {
    rule: String,
    container: String,
    lineage: String,
}

struct Window {
    start_ns: u64,
    suppressed: u64,
    first_suppressed_ns: u64,
    /// The latest suppressed alert, re-emitted with the count when the window closes.
    latest: Option<Alert>,
}

struct Bucket {
    tokens: f64,
    last_ns: u64,
}

pub struct NoiseControl {
    cfg: NoiseConfig,
    windows: HashMap<AlertKey, Window>,
    buckets: HashMap<String, Bucket>,
    next_id: u64,
}

fn lineage(ctx: &EvalCtx<'_>) -> String {
    let Some(p) = ctx.ev.process.as_deref() else {
        return String::new();
    };
    let mut s = p.exe.clone();
    for a in &p.ancestry {
        s.push('<');
        s.push_str(&a.exe);
    }
    s
}

impl NoiseControl {
    pub fn new(cfg: NoiseConfig) -> Self {
        Self {
            cfg,
            windows: HashMap::new(),
            buckets: HashMap::new(),
            next_id: 0,
        }
    }

    fn new_id(&mut self, ts: u64) -> String {
        self.next_id += 1;
        // Unique per engine: time and a counter, UUID-shaped.
        let a = ts ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(self.next_id);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            a as u16,
            (self.next_id >> 48) as u16,
            self.next_id & 0xffff_ffff_ffff
        )
    }

    fn take_token(&mut self, rule: &str, now: u64) -> bool {
        if self.cfg.rate_per_sec <= 0.0 {
            return true;
        }
        let (rate, burst) = (self.cfg.rate_per_sec, self.cfg.burst.max(1.0));
        let b = self.buckets.entry(rule.to_string()).or_insert(Bucket {
            tokens: burst,
            last_ns: now,
        });
        let elapsed = now.saturating_sub(b.last_ns) as f64 / 1e9;
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last_ns = b.last_ns.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Offers one match; pushes the alerts to deliver now.
    pub fn offer(&mut self, rule: &CompiledRule, ctx: &EvalCtx<'_>, out: &mut Vec<Alert>) {
        let now = ctx.ev.ts_ns;
        let container = match ctx.ev.container.as_ref() {
            Workload::Container(c) => c.id.clone(),
            Workload::Host { .. } => "host".into(),
        };
        let key = AlertKey {
            rule: rule.name.clone(),
            container,
            lineage: lineage(ctx),
        };
        if self.cfg.window_ns > 0 {
            if let Some(w) = self.windows.get_mut(&key) {
                if now < w.start_ns.saturating_add(self.cfg.window_ns) {
                    if w.suppressed == 0 {
                        w.first_suppressed_ns = now;
                    }
                    w.suppressed += 1;
                    let id = String::new();
                    w.latest = Some(rule.alert(ctx, id));
                    return;
                }
            }
        }
        if self.take_token(&rule.name, now) {
            let id = self.new_id(now);
            out.push(rule.alert(ctx, id));
            if self.cfg.window_ns > 0 {
                self.windows.insert(
                    key,
                    Window {
                        start_ns: now,
                        suppressed: 0,
                        first_suppressed_ns: 0,
                        latest: None,
                    },
                );
            }
        } else {
            // Rate-limited: counted in one per-rule window so a single aggregate
            // reports them all when it closes.
            let key = AlertKey {
                rule: rule.name.clone(),
                container: "*".into(),
                lineage: "*rate-limited*".into(),
            };
            let alert = rule.alert(ctx, String::new());
            let w = self.windows.entry(key).or_insert(Window {
                start_ns: now,
                suppressed: 0,
                first_suppressed_ns: now,
                latest: None,
            });
            if w.suppressed == 0 {
                w.first_suppressed_ns = now;
            }
            w.suppressed += 1;
            w.latest = Some(alert);
        }
    }

    /// Closes windows that ended by `now`; returns their aggregates.
    pub fn flush(&mut self, now: u64) -> Vec<Alert> {
        let window = self.cfg.window_ns.max(1);
        let closed: Vec<AlertKey> = self
            .windows
            .iter()
            .filter(|(_, w)| w.start_ns.saturating_add(window) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in closed {
            if let Some(w) = self.windows.remove(&k) {
                if let (true, Some(mut a)) = (w.suppressed > 0, w.latest) {
                    a.id = self.new_id(a.ts_ns);
                    a.count = w.suppressed;
                    a.first_ts_ns = w.first_suppressed_ns;
                    out.push(a);
                }
            }
        }
        out.sort_by_key(|a| a.ts_ns);
        out
    }
}
