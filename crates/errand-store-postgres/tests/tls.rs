//! PostgreSQL over TLS: `sslmode=verify-full` with `sslrootcert` trusts the server the test
//! CA signed, refuses it under another CA with a clear message, and `require` encrypts
//! without a root.
//!
//! The machine's server gets this test's certificates: made once into
//! `/var/lib/postgresql/errand-test-tls/` (a stable path, owned by the server's user, put
//! in place by an atomic rename so concurrent tests never see half of it), then `ssl_cert_file`
//! and `ssl_key_file` point there (`ALTER SYSTEM`, reload) only when they do not already.
//! Plain connections keep working: `ssl = on` only offers TLS. When the server is not on
//! this machine, or this process cannot write there, the tests say so and skip.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use errand_store::Store;
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::{pg_connect, PgSchema};

const CERT_DIR: &str = "/var/lib/postgresql/errand-test-tls";

/// A CA and a certificate it signed for `names`: (CA PEM, certificate PEM, key PEM).
fn make_pki(names: &[&str]) -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "errand test CA");
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("sign");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Whether the URL reaches a server whose files are on this machine.
async fn local_data_dir(url: &str) -> Option<PathBuf> {
    let client = pg_connect(url).await.ok()?;
    let row = client.query_one("SHOW data_directory", &[]).await.ok()?;
    let dir = PathBuf::from(row.get::<_, String>(0));
    dir.exists().then_some(dir)
}

/// The test certificates in place (made now unless an earlier run made them), the server
/// using them, and the CA's path; `None` after saying why when that cannot be done here.
async fn server_with_test_certs(url: &str) -> Option<PathBuf> {
    let Some(data_dir) = local_data_dir(url).await else {
        eprintln!("SKIPPED: PostgreSQL's data directory is not on this machine, so this test cannot give it certificates");
        return None;
    };
    let dir = Path::new(CERT_DIR);
    if !dir.join("server.key").exists() {
        let parent = dir.parent().expect("parent");
        // The server's user owns its home (and the data directory).
        let owner = std::fs::metadata(parent)
            .or_else(|_| std::fs::metadata(&data_dir))
            .expect("owner");
        let staging = parent.join(format!(".errand-test-tls-{}", std::process::id()));
        let made = (|| -> std::io::Result<()> {
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir(&staging)?;
            let (ca, cert, key) = make_pki(&["localhost", "127.0.0.1", "::1"]);
            std::fs::write(staging.join("ca.pem"), ca)?;
            std::fs::write(staging.join("server.crt"), cert)?;
            std::fs::write(staging.join("server.key"), key)?;
            std::fs::set_permissions(
                staging.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )?;
            for f in ["", "ca.pem", "server.crt", "server.key"] {
                std::os::unix::fs::chown(staging.join(f), Some(owner.uid()), Some(owner.gid()))?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&staging);
            eprintln!("SKIPPED: cannot write the test certificates under {}: {e} (run as root, or as the server's user)", parent.display());
            return None;
        }
        // Another test may have won the race: then its files stay and ours go.
        if std::fs::rename(&staging, dir).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    let admin = pg_connect(url).await.expect("admin connection");
    let setting = |name: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .expect("show")
                .get::<_, String>(0)
        }
    };
    let cert = format!("{CERT_DIR}/server.crt");
    let key = format!("{CERT_DIR}/server.key");
    if setting("ssl").await != "on"
        || setting("ssl_cert_file").await != cert
        || setting("ssl_key_file").await != key
    {
        // One statement each: ALTER SYSTEM refuses to run inside a transaction block.
        for sql in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{cert}'"),
            format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
            "ALTER SYSTEM SET ssl = on".to_string(),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            admin.batch_execute(&sql).await.expect("turning TLS on");
        }
    }
    let ca = dir.join("ca.pem");
    // The reload is asynchronous: wait until a verified connection gets through.
    let probe = with_params(
        url,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    for _ in 0..100 {
        if pg_connect(&probe).await.is_ok() {
            return Some(ca);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "PostgreSQL did not take the test certificates: {:?}",
        pg_connect(&probe).await.err()
    );
}

fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Whether this session is encrypted, as the server sees it.
async fn encrypted(url: &str) -> bool {
    let client = pg_connect(url).await.expect("connect");
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

#[tokio::test]
async fn verify_full_with_the_signing_ca_opens_the_store_over_tls() {
    let Some(schema) = PgSchema::create("verify_full_with_the_signing_ca").await else {
        return;
    };
    let Some(ca) = server_with_test_certs(&schema.url).await else {
        return;
    };
    let url = with_params(
        &schema.url,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size: 2,
        ..PgOptions::new(&url)
    })
    .await
    .expect("the store opens with verify-full");
    store.ping().await.expect("pooled connection works");
    assert!(encrypted(&url).await, "verify-full must encrypt");
    // Plain connections still work beside it.
    assert!(!encrypted(&with_params(&schema.url, "sslmode=disable")).await);
}

#[tokio::test]
async fn verify_full_under_another_ca_is_refused_saying_why() {
    let Some(schema) = PgSchema::create("verify_full_under_another_ca").await else {
        return;
    };
    if server_with_test_certs(&schema.url).await.is_none() {
        return;
    }
    let other = tempfile::tempdir().expect("temp");
    let (other_ca, _, _) = make_pki(&["localhost"]);
    let other_ca_path = other.path().join("other-ca.pem");
    std::fs::write(&other_ca_path, other_ca).expect("write");
    let url = with_params(
        &schema.url,
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            other_ca_path.display()
        ),
    );
    let err = match PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        ..PgOptions::new(&url)
    })
    .await
    {
        Ok(_) => panic!("a server signed by another CA must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("certificate was refused"), "{err}");
    assert!(err.contains("sslrootcert"), "{err}");
}

#[tokio::test]
async fn require_encrypts_without_a_root_certificate() {
    let Some(schema) = PgSchema::create("require_encrypts_without_a_root").await else {
        return;
    };
    if server_with_test_certs(&schema.url).await.is_none() {
        return;
    }
    let url = with_params(&schema.url, "sslmode=require");
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size: 2,
        ..PgOptions::new(&url)
    })
    .await
    .expect("the store opens with require");
    store.ping().await.expect("pooled connection works");
    assert!(encrypted(&url).await, "require must encrypt");
}

/// The server's Unix socket directory on this machine (Debian's), when it has one.
const SOCKET_DIR: &str = "/var/run/postgresql";

#[tokio::test]
async fn a_unix_socket_url_opens_the_store_without_tls() {
    let Some(schema) = PgSchema::create("unix_socket_url").await else {
        return;
    };
    if !Path::new(SOCKET_DIR).join(".s.PGSQL.5432").exists() {
        eprintln!("SKIPPED: no PostgreSQL socket in {SOCKET_DIR} (the server is elsewhere)");
        return;
    }
    // The TCP URL's user and database, reached through the socket instead.
    let (config, _) = errand_store_postgres::pg_config(&schema.url).expect("url");
    let user = config.get_user().expect("user");
    let db = config.get_dbname().expect("dbname");
    // Both spellings: key/value and a URL with the socket directory as its host.
    // `require` too: libpq ignores sslmode on a socket, and so does errand.
    for url in [
        format!("host={SOCKET_DIR} user={user} dbname={db}"),
        format!("host={SOCKET_DIR} user={user} dbname={db} sslmode=require"),
        format!("postgres://{user}@%2Fvar%2Frun%2Fpostgresql/{db}"),
    ] {
        let store = PgStore::connect(&PgOptions {
            schema: schema.name.clone(),
            pool_size: 1,
            ..PgOptions::new(&url)
        })
        .await
        .unwrap_or_else(|e| panic!("{url}: the store opens over the socket: {e}"));
        store.ping().await.expect("pooled connection works");
        assert!(!encrypted(&url).await, "a socket is not encrypted");
    }
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_only_the_chain() {
    let Some(schema) = PgSchema::create("verify_full_checks_the_name").await else {
        return;
    };
    let Some(ca) = server_with_test_certs(&schema.url).await else {
        return;
    };
    let (config, _) = errand_store_postgres::pg_config(&schema.url).expect("url");
    let user = config.get_user().expect("user");
    let db = config.get_dbname().expect("dbname");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let Some(tokio_postgres::config::Host::Tcp(ip)) = config.get_hosts().first().cloned() else {
        eprintln!("SKIPPED: the test server is not reached over TCP");
        return;
    };
    // The server's certificate names localhost and its addresses, not this name; the
    // connection goes to the server's address all the same (`hostaddr`).
    let url = |mode: &str| {
        format!(
            "host=not-in-the-certificate.invalid hostaddr={ip} port={port} user={user} \
             dbname={db} sslmode={mode} sslrootcert={}",
            ca.display()
        )
    };
    let err = match PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        ..PgOptions::new(&url("verify-full"))
    })
    .await
    {
        Ok(_) => panic!("verify-full must refuse a certificate for another name"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("certificate was refused"), "{err}");
    let store = PgStore::connect(&PgOptions {
        schema: schema.name.clone(),
        pool_size: 1,
        ..PgOptions::new(&url("verify-ca"))
    })
    .await
    .expect("verify-ca checks the chain, not the name");
    store.ping().await.expect("pooled connection works");
    assert!(encrypted(&url("verify-ca")).await, "verify-ca encrypts");
}
