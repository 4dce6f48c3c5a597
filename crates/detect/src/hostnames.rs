//! Host names that rules compare `fd.sip.name`, `fd.cip.name`, `fd.lip.name` and
//! `fd.rip.name` with (Falco's `fd.sip.name = "kubernetes.default.svc.cluster.local"`).
//!
//! As Falco's DNS manager does, each name a condition mentions is resolved when the
//! rules load and again periodically; evaluation then compares the event's address
//! with the addresses the name resolved to, so no DNS answer has to be correlated with
//! the connection. A name that does not resolve has no addresses (comparisons with it
//! are false, `!=` true) and is logged once until it resolves again.
//!
//! The resolver is injectable ([`ResolveOptions`]): production uses the system
//! resolver ([`SystemResolver`]: `/etc/hosts`, DNS, nsswitch); tests pin names with a
//! [`StaticResolver`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

/// How often [`RuleEngine`](crate::RuleEngine) re-resolves the names its rules use.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// Resolutions run at once by one refresh (a sandbox file names dozens of pools).
const MAX_WORKERS: usize = 8;

/// Resolves a host name to its addresses.
pub trait Resolver: Send + Sync {
    fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>>;
}

/// The system resolver (`getaddrinfo`: `/etc/hosts`, DNS, nsswitch).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        Ok((name, 0u16).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

/// When an answer was got, and the addresses or the error.
type CachedAnswer = (Instant, Result<Vec<IpAddr>, String>);

/// Answers of another resolver kept for a while, failures included: rules files are
/// loaded again and again (tests, `rules validate`, reloads) and each load must not
/// wait on DNS for the same names.
pub struct CachedResolver<R> {
    inner: R,
    ttl: Duration,
    cache: Mutex<HashMap<String, CachedAnswer>>,
}

impl<R: Resolver> CachedResolver<R> {
    pub fn new(inner: R, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl<R: Resolver> Resolver for CachedResolver<R> {
    fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        if let Ok(c) = self.cache.lock() {
            if let Some((at, r)) = c.get(name) {
                if at.elapsed() < self.ttl {
                    return r.clone().map_err(io::Error::other);
                }
            }
        }
        let r = self.inner.resolve(name);
        if let Ok(mut c) = self.cache.lock() {
            let kept = match &r {
                Ok(ips) => Ok(ips.clone()),
                Err(e) => Err(e.to_string()),
            };
            c.insert(name.to_string(), (Instant::now(), kept));
        }
        r
    }
}

/// Fixed answers, changeable at run time (tests; names pinned by configuration).
/// Names it does not know fail to resolve.
#[derive(Default)]
pub struct StaticResolver {
    names: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (replaces) the addresses of `name`.
    pub fn set(&self, name: &str, ips: Vec<IpAddr>) {
        if let Ok(mut m) = self.names.lock() {
            m.insert(name.to_ascii_lowercase(), ips);
        }
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        let m = self
            .names
            .lock()
            .map_err(|_| io::Error::other("resolver lock poisoned"))?;
        m.get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown name"))
    }
}

/// Which resolver rules use and how long one resolution round may take.
#[derive(Clone)]
pub struct ResolveOptions {
    pub resolver: Arc<dyn Resolver>,
    /// Bound on one round (at load and at each refresh): names not answered by then
    /// keep no addresses until their answer arrives.
    pub timeout: Duration,
}

impl Default for ResolveOptions {
    /// The system resolver behind a process-wide 30 s cache, 2 s per round.
    fn default() -> Self {
        static SYSTEM: OnceLock<Arc<CachedResolver<SystemResolver>>> = OnceLock::new();
        let resolver = SYSTEM
            .get_or_init(|| Arc::new(CachedResolver::new(SystemResolver, Duration::from_secs(30))))
            .clone();
        Self {
            resolver,
            timeout: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for ResolveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveOptions")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One name and its current addresses.
pub(crate) struct HostName {
    name: String,
    ips: ArcSwap<Vec<IpAddr>>,
    /// Failing now (logged when it started failing, and again when it recovers).
    failing: AtomicBool,
}

impl HostName {
    /// Whether `ip` is one of the name's addresses (IPv4-mapped IPv6 counts as IPv4).
    #[inline]
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ips.load().contains(&ip)
    }

    fn store(&self, r: io::Result<Vec<IpAddr>>) {
        match r {
            Ok(ips) if !ips.is_empty() => {
                let mut ips: Vec<IpAddr> = ips.into_iter().map(|i| i.to_canonical()).collect();
                ips.sort();
                ips.dedup();
                self.ips.store(Arc::new(ips));
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(name = %self.name, "host name used by rules resolves again");
                }
            }
            r => {
                self.ips.store(Arc::new(Vec::new()));
                if !self.failing.swap(true, Ordering::Relaxed) {
                    let error = match r {
                        Err(e) => e.to_string(),
                        Ok(_) => "no addresses".to_string(),
                    };
                    tracing::warn!(name = %self.name, %error,
                        "cannot resolve a host name used by rules: fd.*.name comparisons with it are false until it resolves");
                }
            }
        }
    }
}

/// Names registered while compiling one rule set.
#[derive(Default)]
pub(crate) struct HostRegistry {
    names: Mutex<Vec<Arc<HostName>>>,
}

impl HostRegistry {
    /// The shared entry for `name` (names are case-insensitive).
    pub(crate) fn register(&self, name: &str) -> Arc<HostName> {
        let name = name.to_ascii_lowercase();
        let Ok(mut names) = self.names.lock() else {
            return Arc::new(HostName::new(name));
        };
        if let Some(h) = names.iter().find(|h| h.name == name) {
            return h.clone();
        }
        let h = Arc::new(HostName::new(name));
        names.push(h.clone());
        h
    }

    pub(crate) fn into_table(self, opts: ResolveOptions) -> HostTable {
        HostTable {
            names: self.names.into_inner().unwrap_or_default(),
            opts,
        }
    }
}

impl HostName {
    fn new(name: String) -> Self {
        Self {
            name,
            ips: ArcSwap::from_pointee(Vec::new()),
            failing: AtomicBool::new(false),
        }
    }
}

/// The host names one rule set compares addresses with, and their addresses.
pub struct HostTable {
    names: Vec<Arc<HostName>>,
    opts: ResolveOptions,
}

impl HostTable {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names, in the order the rules mention them.
    pub fn names(&self) -> Vec<String> {
        self.names.iter().map(|h| h.name.clone()).collect()
    }

    /// The current addresses of `name` (empty when unknown or unresolved).
    pub fn addresses(&self, name: &str) -> Vec<IpAddr> {
        let name = name.to_ascii_lowercase();
        self.names
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.ips.load().as_ref().clone())
            .unwrap_or_default()
    }

    /// Resolves every name again, waiting at most the configured timeout; answers
    /// that come later are still stored when they arrive.
    pub fn refresh(&self) {
        if self.names.is_empty() {
            return;
        }
        let queue = Arc::new(Mutex::new(self.names.clone()));
        let left = Arc::new((Mutex::new(self.names.len()), Condvar::new()));
        let mut workers = 0;
        for _ in 0..self.names.len().min(MAX_WORKERS) {
            let (queue, left, resolver) = (queue.clone(), left.clone(), self.opts.resolver.clone());
            let spawned = std::thread::Builder::new()
                .name("rampart-resolve".into())
                .spawn(move || loop {
                    let Some(h) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                        break;
                    };
                    h.store(resolver.resolve(&h.name));
                    if let Ok(mut n) = left.0.lock() {
                        *n -= 1;
                        left.1.notify_all();
                    }
                });
            if spawned.is_ok() {
                workers += 1;
            }
        }
        if workers == 0 {
            // No thread to bound the wait with: resolve here rather than never.
            for h in &self.names {
                h.store(self.opts.resolver.resolve(&h.name));
            }
            return;
        }
        let deadline = Instant::now() + self.opts.timeout;
        let Ok(mut n) = left.0.lock() else { return };
        while *n > 0 {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    unanswered = *n,
                    timeout_ms = self.opts.timeout.as_millis() as u64,
                    "host names used by rules not resolved in time; they match no address until answered"
                );
                return;
            }
            n = match left.1.wait_timeout(n, deadline - now) {
                Ok((g, _)) => g,
                Err(_) => return,
            };
        }
    }

    /// Refreshes the names every `every` on a background thread, which ends once the
    /// table is dropped (the rule set it belongs to was replaced). `None` when the
    /// table has no names or the thread could not start.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> Option<std::thread::JoinHandle<()>> {
        if self.names.is_empty() {
            return None;
        }
        let weak: Weak<HostTable> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("rampart-hostnames".into())
            .spawn(move || {
                // Short naps so a replaced table's thread ends soon after.
                let nap = every.min(Duration::from_secs(1));
                let mut next = Instant::now() + every;
                loop {
                    std::thread::sleep(nap);
                    let Some(t) = weak.upgrade() else { return };
                    if Instant::now() >= next {
                        t.refresh();
                        next = Instant::now() + every;
                    }
                }
            })
            .ok()
    }
}

impl std::fmt::Debug for HostTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.names.iter().map(|h| (&h.name, h.ips.load().len())))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Slow;
    impl Resolver for Slow {
        fn resolve(&self, _: &str) -> io::Result<Vec<IpAddr>> {
            std::thread::sleep(Duration::from_millis(400));
            Ok(vec!["10.1.2.3".parse().unwrap()])
        }
    }

    fn table(resolver: Arc<dyn Resolver>, timeout_ms: u64, names: &[&str]) -> HostTable {
        let reg = HostRegistry::default();
        for n in names {
            reg.register(n);
        }
        reg.into_table(ResolveOptions {
            resolver,
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    #[test]
    fn static_names_resolve_and_unknown_ones_are_empty() {
        let r = Arc::new(StaticResolver::new());
        r.set("API.example", vec!["::ffff:10.0.0.1".parse().unwrap()]);
        let t = table(r.clone(), 1000, &["api.example", "nowhere.example"]);
        t.refresh();
        let want: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(t.addresses("api.example"), vec![want]);
        assert!(t.addresses("nowhere.example").is_empty());
        assert!(t.names[0].contains("::ffff:10.0.0.1".parse().unwrap()));
        // A name that stops resolving loses its addresses.
        r.set("api.example", vec![]);
        t.refresh();
        assert!(t.addresses("api.example").is_empty());
    }

    #[test]
    fn a_slow_resolver_is_bounded_and_its_late_answer_lands() {
        let t = table(Arc::new(Slow), 50, &["a.example", "b.example"]);
        let started = Instant::now();
        t.refresh();
        assert!(started.elapsed() < Duration::from_millis(350));
        assert!(t.addresses("a.example").is_empty());
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(t.addresses("a.example").len(), 1);
        assert_eq!(t.addresses("b.example").len(), 1);
    }

    #[test]
    fn the_system_resolver_reads_the_hosts_file() {
        let ips = SystemResolver.resolve("localhost").unwrap_or_default();
        assert!(ips.iter().any(|i| i.is_loopback()), "{ips:?}");
    }
}
