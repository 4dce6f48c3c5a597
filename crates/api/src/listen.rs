//! Where the API may listen. Loopback is for the local user (`rampart up`); anything
//! else reaches other machines, so it needs TLS and authentication, and the server
//! refuses to start without them rather than warn.

use std::net::SocketAddr;

/// What protects a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSecurity {
    pub tls: bool,
    pub auth: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenError {
    #[error("refusing to listen on {addr}: beyond loopback the API needs TLS and authentication (missing: {missing})")]
    Unprotected { addr: SocketAddr, missing: String },
}

/// Ok when `addr` is loopback, or when TLS and auth are both on.
pub fn check_listen(addr: SocketAddr, security: ListenSecurity) -> Result<(), ListenError> {
    if addr.ip().is_loopback() || (security.tls && security.auth) {
        return Ok(());
    }
    let missing: Vec<&str> = [(!security.tls, "TLS"), (!security.auth, "auth")]
        .into_iter()
        .filter_map(|(m, what)| m.then_some(what))
        .collect();
    Err(ListenError::Unprotected {
        addr,
        missing: missing.join(" and "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: ListenSecurity = ListenSecurity {
        tls: false,
        auth: false,
    };

    #[test]
    fn loopback_always_beyond_only_with_tls_and_auth() {
        assert_eq!(
            check_listen("127.0.0.1:8443".parse().unwrap(), NONE),
            Ok(())
        );
        assert_eq!(check_listen("[::1]:8443".parse().unwrap(), NONE), Ok(()));
        let any: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let e = check_listen(any, NONE).unwrap_err();
        assert!(e.to_string().contains("TLS and auth"), "{e}");
        let e = check_listen(
            "10.1.2.3:8443".parse().unwrap(),
            ListenSecurity {
                tls: true,
                auth: false,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing: auth"), "{e}");
        assert_eq!(
            check_listen(
                any,
                ListenSecurity {
                    tls: true,
                    auth: true
                }
            ),
            Ok(())
        );
    }
}
