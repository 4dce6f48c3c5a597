//! Syslog transport: RFC 5424 messages over UDP (one datagram each, RFC 5426) or TCP
//! with octet-counting framing (RFC 6587 §3.4.1). Connects on first use; a TCP write
//! that fails reconnects once and resends before giving up on that alert.

use futures_util::future::BoxFuture;
use rampart_event::Alert;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::AlertSink;
use crate::config::{SyslogConfig, SyslogProtocol};
use crate::encode::syslog::{format_rfc5424, octet_counted, truncate_to, SyslogHeader};
use crate::encode::EncodeContext;
use crate::NotifyError;

enum Connection {
    None,
    Udp(UdpSocket),
    Tcp(TcpStream),
}

pub struct SyslogSink {
    name: String,
    address: String,
    protocol: SyslogProtocol,
    header: SyslogHeader,
    max_message_bytes: usize,
    ctx: EncodeContext,
    conn: Connection,
}

impl SyslogSink {
    pub fn new(name: String, config: &SyslogConfig, ctx: EncodeContext) -> Self {
        Self {
            name,
            address: config.address.clone(),
            protocol: config.protocol,
            header: SyslogHeader {
                facility: config.facility,
                app_name: config.app_name.clone(),
                proc_id: std::process::id(),
                message: config.message,
            },
            max_message_bytes: config.max_message_bytes,
            ctx,
            conn: Connection::None,
        }
    }

    fn error(&self, message: String) -> NotifyError {
        NotifyError::Delivery {
            sink: self.name.clone(),
            message,
        }
    }

    async fn connect(&mut self) -> Result<(), NotifyError> {
        self.conn = match self.protocol {
            SyslogProtocol::Udp => {
                let local = if self.address.starts_with('[') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let socket = UdpSocket::bind(local)
                    .await
                    .map_err(|e| self.error(format!("binding UDP socket: {e}")))?;
                socket
                    .connect(&self.address)
                    .await
                    .map_err(|e| self.error(format!("UDP to {}: {e}", self.address)))?;
                Connection::Udp(socket)
            }
            SyslogProtocol::Tcp => {
                let stream = TcpStream::connect(&self.address)
                    .await
                    .map_err(|e| self.error(format!("connecting to {}: {e}", self.address)))?;
                let _ = stream.set_nodelay(true);
                Connection::Tcp(stream)
            }
        };
        Ok(())
    }

    async fn write_once(&mut self, message: &str) -> Result<(), NotifyError> {
        if matches!(self.conn, Connection::None) {
            self.connect().await?;
        }
        let result = match &mut self.conn {
            Connection::Udp(socket) => socket.send(message.as_bytes()).await.map(|_| ()),
            Connection::Tcp(stream) => stream.write_all(&octet_counted(message)).await,
            Connection::None => Ok(()),
        };
        result.map_err(|e| {
            self.conn = Connection::None;
            self.error(format!("sending to {}: {e}", self.address))
        })
    }

    async fn deliver(&mut self, alert: &Alert) -> Result<(), NotifyError> {
        let mut message = format_rfc5424(alert, &self.header, &self.ctx);
        truncate_to(&mut message, self.max_message_bytes);
        match self.write_once(&message).await {
            Ok(()) => Ok(()),
            // A kept-open TCP connection may have been closed by the peer since the
            // last alert; one fresh connection deserves one more try.
            Err(_) if self.protocol == SyslogProtocol::Tcp => self.write_once(&message).await,
            Err(e) => Err(e),
        }
    }
}

impl AlertSink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a mut self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.deliver(alert))
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), NotifyError>> {
        Box::pin(async move {
            if let Connection::Tcp(stream) = &mut self.conn {
                stream
                    .flush()
                    .await
                    .map_err(|e| self.error(format!("flushing: {e}")))?;
            }
            Ok(())
        })
    }
}
