//! Where the dashboard's session secret comes from: `ERRAND_SESSION_SECRET` when set (the
//! same on every node, so a session made on one is good on all), else a random secret kept
//! in the data directory (`session-secret`, readable by its owner only), so sessions
//! outlive a restart of this node.

use std::io::Write;
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
}

/// The session secret: from `env` (`ERRAND_SESSION_SECRET`, 32 characters or more), else
/// read from (or first written to) `dir/session-secret`.
///
/// # Errors
/// A weak `env`, or the file cannot be read, made or holds no secret.
pub fn load_session_secret(
    env: Option<&str>,
    dir: &Path,
) -> Result<([u8; 32], SessionSecretSource), AuthConfigError> {
    if let Some(value) = env.map(str::trim).filter(|v| !v.is_empty()) {
        if value.len() < 32 {
            return Err(AuthConfigError::WeakSessionSecret);
        }
        return Ok((
            Sha256::digest(value.as_bytes()).into(),
            SessionSecretSource::Env,
        ));
    }
    let path = dir.join(SESSION_SECRET_FILE);
    let file_error = |source: std::io::Error| AuthConfigError::SessionSecretFile {
        path: path.clone(),
        source,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(file_error)?;
            let fresh = hex(&rand::random::<[u8; 32]>());
            write_private(&path, &fresh).map_err(file_error)?;
            fresh
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

/// Writes `text` to a new file only its owner may read (never over an existing one).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
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
        let (first, source) = load_session_secret(None, &dir).unwrap();
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
        let (again, _) = load_session_secret(None, &dir).unwrap();
        assert_eq!(first, again, "a restart keeps the secret");
        let (env, source) = load_session_secret(Some(&"s".repeat(32)), &dir).unwrap();
        assert_eq!(source, SessionSecretSource::Env);
        assert_ne!(env, first);
        assert!(matches!(
            load_session_secret(Some("short"), &dir),
            Err(AuthConfigError::WeakSessionSecret)
        ));
        std::fs::write(dir.join(SESSION_SECRET_FILE), "x\n").unwrap();
        assert!(matches!(
            load_session_secret(None, &dir),
            Err(AuthConfigError::SessionSecretFile { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
