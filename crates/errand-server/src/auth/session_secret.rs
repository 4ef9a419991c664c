//! Where the dashboard's session secret comes from: `ERRAND_SESSION_SECRET` when set (the
//! same on every node, so a session made on one is good on all), else a random secret kept
//! in the data directory (`session-secret`, readable by its owner only), so sessions
//! outlive a restart of this node.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::AuthConfigError;

/// The file in the data directory that keeps this node's session secret.
pub const SESSION_SECRET_FILE: &str = "session-secret";

/// Where a node's session secret came from, for the startup line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionSecretSource {
    /// `ERRAND_SESSION_SECRET`.
    Env,
    /// The file in the data directory (made now or earlier).
    File(PathBuf),
    /// Made at random for this process (no data directory: a PostgreSQL node): sessions
    /// end with the process and are good on this node only.
    Memory,
}

/// The secret `ERRAND_SESSION_SECRET` gives, if set: checked before anything is created.
///
/// # Errors
/// Fewer than 32 characters.
pub fn session_secret_from_env(env: Option<&str>) -> Result<Option<[u8; 32]>, AuthConfigError> {
    match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) if value.len() < 32 => Err(AuthConfigError::WeakSessionSecret),
        Some(value) => Ok(Some(Sha256::digest(value.as_bytes()).into())),
        None => Ok(None),
    }
}

/// The session secret: from `env` (`ERRAND_SESSION_SECRET`, 32 characters or more), else
/// read from (or first written to) `dir/session-secret` when there is a data directory,
/// else a random one for this process.
///
/// # Errors
/// A weak `env`, or the file cannot be read, made or holds no secret.
pub fn load_session_secret(
    env: Option<&str>,
    dir: Option<&Path>,
) -> Result<([u8; 32], SessionSecretSource), AuthConfigError> {
    if let Some(secret) = session_secret_from_env(env)? {
        return Ok((secret, SessionSecretSource::Env));
    }
    let Some(dir) = dir else {
        return Ok((rand::random(), SessionSecretSource::Memory));
    };
    let path = dir.join(SESSION_SECRET_FILE);
    let file_error = |source: std::io::Error| AuthConfigError::SessionSecretFile {
        path: path.clone(),
        source,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => {
            warn_if_readable_by_others(&path);
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_secret_file(dir, &path).map_err(file_error)?
        }
        Err(e) => return Err(file_error(e)),
    };
    let text = text.trim();
    if text.len() < 32 {
        return Err(file_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "holds fewer than 32 characters; delete it to make a new one",
        )));
    }
    Ok((
        Sha256::digest(text.as_bytes()).into(),
        SessionSecretSource::File(path),
    ))
}

/// Makes the secret file whole or not at all: written and synced under a temporary name,
/// then linked into place (never over an existing one). A start that loses a race with
/// another reads the winner's.
fn create_secret_file(dir: &Path, path: &Path) -> std::io::Result<String> {
    errand_core::private_fs::create_private_dir(dir)?;
    let fresh = hex(&rand::random::<[u8; 32]>());
    let temp = dir.join(format!(
        ".{SESSION_SECRET_FILE}.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut file = errand_core::private_fs::create_private_file(&temp)?;
    let written = file
        .write_all(format!("{fresh}\n").as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(fresh),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path),
        Err(e) => Err(e),
    }
}

/// A secret file others may read is worth a warning, not a refusal (the operator may mean
/// it); errand makes its own readable by its owner only.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the dashboard's session secret is readable by others: chmod 600 it");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_made_once_private_and_read_back_and_the_env_wins() {
        let dir =
            std::env::temp_dir().join(format!("errand-session-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, source) = load_session_secret(None, Some(&dir)).unwrap();
        assert_eq!(
            source,
            SessionSecretSource::File(dir.join(SESSION_SECRET_FILE))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SESSION_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
        }
        let (again, _) = load_session_secret(None, Some(&dir)).unwrap();
        assert_eq!(first, again, "a restart keeps the secret");
        let (env, source) = load_session_secret(Some(&"s".repeat(32)), Some(&dir)).unwrap();
        assert_eq!(source, SessionSecretSource::Env);
        assert_ne!(env, first);
        assert!(matches!(
            load_session_secret(Some("short"), Some(&dir)),
            Err(AuthConfigError::WeakSessionSecret)
        ));
        std::fs::write(dir.join(SESSION_SECRET_FILE), "x\n").unwrap();
        assert!(matches!(
            load_session_secret(None, Some(&dir)),
            Err(AuthConfigError::SessionSecretFile { .. })
        ));
        assert_eq!(
            load_session_secret(None, None).unwrap().1,
            SessionSecretSource::Memory
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
