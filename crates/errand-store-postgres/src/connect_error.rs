//! What connecting says when it fails: which server (host, port, database, user; never the
//! password) and why, in words a person can act on.

use errand_store::StoreError;
use tokio_postgres::config::Host;
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
    /// The URL's TLS settings cannot be honoured: an unknown `sslmode`, `verify-ca` or
    /// `verify-full` without `sslrootcert`, or a root certificate file errand cannot use.
    #[error("PostgreSQL at {target}: {reason}")]
    Tls {
        /// The server.
        target: PgTarget,
        /// What is wrong, naming the setting or the file.
        reason: String,
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
    /// Asked to open only a store that is there ([`crate::PgOptions::existing_only`]), and
    /// the schema holds none: nothing was created.
    #[error("no errand store in schema `{schema}` at {target}")]
    NoStore {
        /// The server.
        target: PgTarget,
        /// The schema asked for.
        schema: String,
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
            ConnectError::BadSchema(_) | ConnectError::BadUrl(_) | ConnectError::Tls { .. } => {
                StoreError::Invalid(e.to_string())
            }
            ConnectError::Connect { .. } => StoreError::Unavailable(e.to_string()),
            ConnectError::NoStore { target, schema } => StoreError::NotFound {
                what: format!("an errand store in schema `{schema}` at {target}"),
            },
            ConnectError::Prepare { source, .. } => *source,
        }
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
    if chain.contains("invalid peer certificate") {
        return format!(
            "TLS: the server's certificate was refused ({chain}): sslrootcert must hold the CA that signed it, and with sslmode=verify-full it must name the host of the URL"
        );
    }
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
        return "the server does not accept TLS (its `ssl` setting is off): use sslmode=disable or prefer, or turn TLS on there".into();
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
}
