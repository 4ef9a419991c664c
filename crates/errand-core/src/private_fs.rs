//! Files and directories only their owner may read: the data directory (the store holds
//! payloads, secrets and token hashes), the dashboard's session secret, exports. One place
//! decides the modes, so every writer of such a file makes it alike.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Makes `dir` and its missing parents with mode 0700 (an existing one is left as it is).
///
/// # Errors
/// The directory cannot be made.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path`, which must not exist yet, with mode 0600.
///
/// # Errors
/// It exists, or cannot be created.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Opens `path` for writing from its start, made with mode 0600 when new. An existing
/// regular file is narrowed to 0600 before it is emptied (so a reader without the right
/// never sees what is written next); anything else (a device, a pipe) is written as it is.
///
/// # Errors
/// It cannot be opened, narrowed or emptied.
pub fn rewrite_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.is_file() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.set_len(0)?;
    }
    Ok(file)
}

/// Narrows an existing file to mode 0600, if it is there.
///
/// # Errors
/// It is there and cannot be changed.
pub fn make_private(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
