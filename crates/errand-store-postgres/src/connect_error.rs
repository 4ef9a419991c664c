//! What connecting says when it fails: which server (host, port, database, user; never the
//! password) and why, in words a person can act on.

use errand_store::StoreError;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Config;

/// The server a URL names, for messages and the start-up line. Holds no password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// `host:port` (several, comma-separated, when the URL lists several hosts).
    pub address: String,
    /// The database name (PostgreSQL's default: the user's name).
    pub database: String,
    /// The user name (PostgreSQL's default when absent: the operating-system user).
    pub user: String,
}

impl PgTarget {
    /// What `config` points at.
    pub(crate) fn of(config: &Config) -> Self {
        let ports = config.get_ports();
        let port_at = |i: usize| {
            ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432)
        };
        let mut hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| match host {
                Host::Tcp(name) => format!("{name}:{}", port_at(i)),
                #[cfg(unix)]
                Host::Unix(dir) => format!("{} (Unix socket, port {})", dir.display(), port_at(i)),
            })
            .collect();
        if hosts.is_empty() {
            hosts = config
                .get_hostaddrs()
                .iter()
                .enumerate()
                .map(|(i, ip)| format!("{ip}:{}", port_at(i)))
                .collect();
        }
        if hosts.is_empty() {
            hosts.push(format!("localhost:{}", port_at(0)));
        }
        let user = config
            .get_user()
            .map(str::to_owned)
            .unwrap_or_else(|| "(none given)".into());
        Self {
            address: hosts.join(","),
            database: config
                .get_dbname()
                .map(str::to_owned)
                .unwrap_or_else(|| user.clone()),
            user,
        }
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (database `{}`, user `{}`)",
            self.address, self.database, self.user
        )
    }
}

/// Why [`crate::PgStore::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The schema name is not one errand accepts.
    #[error("schema `{0}`: use 1 to 48 of a-z 0-9 _, not starting with a digit")]
    BadSchema(String),
    /// The URL does not parse (the parser's words; it never repeats the password).
    #[error("bad PostgreSQL URL: {0}")]
    BadUrl(String),
    /// The URL asks for TLS, which errand does not speak to PostgreSQL.
    #[error(
        "sslmode={mode} for PostgreSQL at {target}: errand connects to PostgreSQL without TLS, \
         so it cannot honour sslmode={mode}; supported: sslmode=disable, and sslmode=prefer \
         (which then connects without TLS). Reach a server that requires TLS through a \
         trusted network or a tunnel"
    )]
    TlsUnsupported {
        /// The server.
        target: PgTarget,
        /// The mode the URL asked for.
        mode: String,
    },
    /// No session could be opened.
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect {
        /// The server.
        target: PgTarget,
        /// Why, in words (connection refused, timed out, no such host, authentication
        /// failed, database does not exist, ...).
        cause: String,
    },
    /// Connected, but creating or migrating errand's schema failed.
    #[error("PostgreSQL at {target}: preparing schema `{schema}`: {source}")]
    Prepare {
        /// The server.
        target: PgTarget,
        /// errand's schema.
        schema: String,
        /// What the store said.
        #[source]
        source: Box<StoreError>,
    },
}

impl From<ConnectError> for StoreError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::BadSchema(_)
            | ConnectError::BadUrl(_)
            | ConnectError::TlsUnsupported { .. } => StoreError::Invalid(e.to_string()),
            ConnectError::Connect { .. } => StoreError::Unavailable(e.to_string()),
            ConnectError::Prepare { source, .. } => *source,
        }
    }
}

/// The `sslmode` a URL asks for, read before the driver's parser (which refuses
/// `verify-ca` and `verify-full` with a bare "invalid value").
pub(crate) fn requested_sslmode(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .rev()
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "sslmode")
        .map(|(_, value)| value.to_string())
}

/// Refuses a URL that asks for TLS: errand has no TLS for PostgreSQL, so `require`,
/// `verify-ca` and `verify-full` cannot be honoured, and connecting anyway would fail with
/// the driver's "error performing TLS handshake" or, worse, go on in clear text.
pub(crate) fn refuse_tls(url: &str, config: Option<&Config>) -> Result<(), ConnectError> {
    let mode = match (requested_sslmode(url), config) {
        (Some(mode), _) => mode,
        (None, Some(c)) if c.get_ssl_mode() == SslMode::Require => "require".into(),
        (None, _) => return Ok(()),
    };
    if matches!(mode.as_str(), "disable" | "prefer") {
        return Ok(());
    }
    let target = match config {
        Some(c) => PgTarget::of(c),
        // The mode made the driver refuse the URL: read the rest without it.
        None => strip_sslmode(url)
            .parse::<Config>()
            .map(|c| PgTarget::of(&c))
            .unwrap_or_else(|_| PgTarget {
                address: "(unparsed URL)".into(),
                database: "?".into(),
                user: "?".into(),
            }),
    };
    Err(ConnectError::TlsUnsupported { target, mode })
}

/// `url` without its `sslmode` parameters.
fn strip_sslmode(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with("sslmode="))
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// The reason a connection attempt failed, in words: the server's own message for an
/// error it sent (with what it means for the common ones), the operating system's for a
/// socket that would not open.
pub(crate) fn cause(e: &tokio_postgres::Error, target: &PgTarget) -> String {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return match code {
            "3D000" => format!(
                "database `{}` does not exist (create it, or name another in the URL)",
                target.database
            ),
            "28P01" | "28000" => format!(
                "authentication failed for user `{}`: {}",
                target.user,
                db.message()
            ),
            "53300" => format!("the server has no free connection: {}", db.message()),
            "57P03" => format!(
                "the server is starting up or shutting down: {}",
                db.message()
            ),
            _ => format!("the server refused: {} ({code})", db.message()),
        };
    }
    let chain = chain(e);
    if let Some(io) = io_source(e) {
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused (is PostgreSQL running there, listening on that port?)".into()
            }
            std::io::ErrorKind::TimedOut => {
                "connection timed out (a firewall, or a wrong host or port?)".into()
            }
            _ if looks_like_dns(&chain) => format!("no such host ({chain})"),
            _ => chain,
        };
    }
    if chain.contains("server does not support TLS") {
        return "the server does not accept TLS".into();
    }
    if chain.contains("password missing") {
        return format!(
            "the server asks for a password and the URL gives none for user `{}`",
            target.user
        );
    }
    chain
}

/// The first I/O error under `e`.
fn io_source(e: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

fn looks_like_dns(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("lookup")
        || t.contains("name or service not known")
        || t.contains("nodename nor servname")
        || t.contains("no address associated")
        || t.contains("temporary failure in name resolution")
}

/// `e` and every cause under it, joined with `: `.
pub(crate) fn chain(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_host_port_database_user_and_never_the_password() {
        let config: Config = "postgres://alice:s3cret@db.example:6543/jobs"
            .parse()
            .expect("parse");
        let target = PgTarget::of(&config);
        assert_eq!(target.address, "db.example:6543");
        assert_eq!(target.database, "jobs");
        assert_eq!(target.user, "alice");
        assert!(!target.to_string().contains("s3cret"));
    }

    #[test]
    fn tls_modes_beyond_prefer_are_refused_by_name() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://u:pw@h:5433/d?sslmode={mode}");
            let config = url.parse::<Config>().ok();
            let err = refuse_tls(&url, config.as_ref()).expect_err(mode);
            let text = err.to_string();
            assert!(text.contains(&format!("sslmode={mode}")), "{text}");
            assert!(text.contains("h:5433"), "{text}");
            assert!(!text.contains("pw"), "{text}");
        }
        for mode in ["disable", "prefer"] {
            let url = format!("postgres://u@h/d?sslmode={mode}");
            let config = url.parse::<Config>().ok();
            assert!(refuse_tls(&url, config.as_ref()).is_ok(), "{mode}");
        }
    }
}
