//! Syslog output against a real rsyslogd: a private instance with its own config,
//! listening on loopback UDP and TCP ports and writing what it parsed to a temp file.
//! Skips with a reason when rsyslogd is not installed, except in CI (CI=true) where that
//! is a failure (`apt-get install -y rsyslog`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_notify::config::{Encoding, Facility, SinkKind, SyslogConfig, SyslogProtocol};
use rampart_notify::{Dispatcher, OutputsConfig, SinkConfig};

fn rsyslogd() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Rsyslog {
    child: Child,
    out: PathBuf,
    udp_port: u16,
    tcp_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line per message: the parsed RFC 5424 fields, separated by `|`.
const TEMPLATE: &str = "%PRI%|%PROTOCOL-VERSION%|%TIMESTAMP:::date-rfc3339%|%HOSTNAME%|%APP-NAME%|%PROCID%|%MSGID%|%STRUCTURED-DATA%|%msg%\\n";

fn start_rsyslog(binary: &Path) -> Rsyslog {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.log");
    let udp_port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let tcp_port = free_port();
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
template(name="fields" type="string" string="{TEMPLATE}")
*.* action(type="omfile" file="{out}" template="fields")
"#,
            work = dir.path().display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let child = Command::new(binary)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Ready when the TCP input accepts connections (both inputs start together).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", tcp_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Rsyslog {
        child,
        out,
        udp_port,
        tcp_port,
        _dir: dir,
    }
}

fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn syslog_config(address: String, protocol: SyslogProtocol, message: Encoding) -> OutputsConfig {
    OutputsConfig {
        queue_capacity: 64,
        hostname: None,
        falco_uuid: false,
        sinks: vec![SinkConfig {
            name: None,
            min_priority: None,
            kind: SinkKind::Syslog(SyslogConfig {
                address,
                protocol,
                facility: Facility::Local3,
                app_name: "rampart".into(),
                message,
                max_message_bytes: 8192,
            }),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_parses_udp_and_octet_counted_tcp() {
    let Some(binary) = rsyslogd() else {
        rampart_testbed::skip_or_fail("rsyslogd not installed (apt-get install -y rsyslog)");
        return;
    };
    let server = start_rsyslog(&binary);
    let pid = std::process::id().to_string();

    // UDP: two alerts, the plain text body.
    let config = syslog_config(
        format!("127.0.0.1:{}", server.udp_port),
        SyslogProtocol::Udp,
        Encoding::Text,
    );
    let dispatcher = Dispatcher::from_config(&config).unwrap();
    dispatcher.dispatch(Arc::new(support::alert()));
    let mut second = support::alert();
    second.rule = r#"Rule with "quotes" and ] bracket"#.into();
    dispatcher.dispatch(Arc::new(second));
    let stats = dispatcher.shutdown().await;
    assert_eq!((stats[0].sent, stats[0].failed), (2, 0), "{stats:?}");
    let lines = wait_for_lines(&server.out, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let fields: Vec<&str> = lines[0].splitn(9, '|').collect();
    // local3 (19) × 8 + critical (2) = 154.
    assert_eq!(fields[0], "154", "{}", lines[0]);
    assert_eq!(fields[1], "1", "parsed as RFC 5424: {}", lines[0]);
    assert!(
        fields[2].starts_with("2023-11-14T22:13:20.123456"),
        "{}",
        lines[0]
    );
    assert_eq!(fields[3], "node-1");
    assert_eq!(fields[4], "rampart");
    assert_eq!(fields[5], pid);
    assert_eq!(fields[6], "alert");
    assert!(
        fields[7].starts_with(r#"[rampart@32473 id="0123456789abcdef0123456789abcdef" rule="Rampart test alert" priority="Critical""#),
        "{}",
        lines[0]
    );
    assert_eq!(
        fields[8],
        "Test alert from `rampart outputs` (file=/etc/shadow command=cat /etc/shadow)"
    );
    // rsyslog's RFC 5424 parser accepted our escaping of `"` and `]`.
    assert!(
        lines[1].contains(r#"rule="Rule with \"quotes\" and \] bracket""#),
        "{}",
        lines[1]
    );

    // TCP with octet counting: a message with an embedded newline stays one message
    // (rsyslog shows the LF as #012), and the CEF body arrives intact.
    let config = syslog_config(
        format!("127.0.0.1:{}", server.tcp_port),
        SyslogProtocol::Tcp,
        Encoding::Cef,
    );
    let dispatcher = Dispatcher::from_config(&config).unwrap();
    let mut multi = support::alert();
    multi.rule = "two\nlines".into();
    dispatcher.dispatch(Arc::new(multi));
    for _ in 0..3 {
        dispatcher.dispatch(Arc::new(support::alert()));
    }
    let stats = dispatcher.shutdown().await;
    assert_eq!((stats[0].sent, stats[0].failed), (4, 0), "{stats:?}");
    let lines = wait_for_lines(&server.out, 6);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    let tcp: Vec<&String> = lines[2..].iter().collect();
    assert!(tcp[0].contains(r#"rule="two#012lines""#), "{}", tcp[0]);
    for line in &tcp[1..] {
        let fields: Vec<&str> = line.splitn(9, '|').collect();
        assert_eq!(fields[0], "154");
        assert_eq!(fields[1], "1");
        // The CEF header's own `|` separators survive; the message is the CEF record.
        let msg = line.splitn(9, '|').nth(8).unwrap();
        assert!(msg.starts_with("CEF:0|Rampart|Rampart|"), "{line}");
        assert!(
            msg.contains("|Rampart test alert|Rampart test alert|8|rt=1700000000123 "),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_receiver_down_counts_failures() {
    let port = free_port();
    let config = syslog_config(
        format!("127.0.0.1:{port}"),
        SyslogProtocol::Tcp,
        Encoding::Text,
    );
    let dispatcher = Dispatcher::from_config(&config).unwrap();
    dispatcher.dispatch(Arc::new(support::alert()));
    let stats = dispatcher.shutdown().await;
    assert_eq!((stats[0].sent, stats[0].failed), (0, 1), "{stats:?}");
}
