//! Files the runner writes that hold data or keys (the database, the token file): readable
//! and writable by their owner only, whatever the umask.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

const OWNER_ONLY: u32 = 0o600;

/// Creates `path` (and its folder) owner-only if it does not exist, and makes an existing
/// one owner-only. SQLite gives its -wal and -shm files the database file's mode.
pub fn ensure(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(OWNER_ONLY)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, Permissions::from_mode(OWNER_ONLY))
        .with_context(|| format!("making {} owner-only", path.display()))
}

/// Replaces the contents of `path`, owner-only.
pub fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    ensure(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_owner_only_even_when_they_existed_before() {
        let dir = std::env::temp_dir().join(format!("mp-private-{}", uuid::Uuid::new_v4()));
        let path = dir.join("tokens.env");
        fs::create_dir_all(&dir).unwrap();
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();

        write(&path, "new").unwrap();

        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        fs::remove_dir_all(dir).unwrap();
    }
}
