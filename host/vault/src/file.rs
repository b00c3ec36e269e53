//! Key files on disk: reading one (shape and permissions checked), writing a
//! new one so it appears complete or not at all, and making renames and
//! removals durable.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::VaultError;
use crate::key::{KEY_LEN, Key, KeyBytes};

/// A key file larger than this is not a key file (and is not read whole).
const MAX_KEY_FILE_LEN: u64 = 1024;

/// `<path>.next`: the new key of a rotation in progress.
pub(crate) fn next_path(path: &Path) -> PathBuf {
    with_suffix(path, ".next")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads the key in `path`; `Ok(None)` if there is no such file.
pub(crate) fn read(path: &Path) -> Result<Option<Key>, VaultError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(VaultError::io("open key file", path)(e)),
    };
    let meta = file
        .metadata()
        .map_err(VaultError::io("read metadata of key file", path))?;
    if !meta.is_file() {
        return Err(malformed(path, "not a regular file"));
    }
    check_permissions(path, &meta)?;
    let mut text = Vec::new();
    (&mut file)
        .take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut text)
        .map_err(VaultError::io("read key file", path))?;
    let parsed = parse(&text);
    text.fill(0);
    let bytes = parsed.ok_or_else(|| malformed(path, "not exactly 64 hex digits"))?;
    Key::new(&bytes).map(Some)
}

fn parse(text: &[u8]) -> Option<KeyBytes> {
    let digits = text.trim_ascii();
    if digits.len() != KEY_LEN * 2 {
        return None;
    }
    let mut bytes = KeyBytes([0; KEY_LEN]);
    hex::decode_to_slice(digits, &mut bytes.0).ok()?;
    Some(bytes)
}

fn malformed(path: &Path, reason: &'static str) -> VaultError {
    VaultError::MalformedKeyFile {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &fs::Metadata) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &fs::Metadata) -> Result<(), VaultError> {
    Ok(())
}

/// Creates `path` holding a new random key, mode 0600; `Ok(None)` if `path`
/// already existed (it is not touched).
///
/// The key is written and fsynced to a uniquely named temporary file first and
/// then hard-linked to `path`, so a crash never leaves `path` empty or half
/// written, and the link fails (as `create_new` would) if `path` exists.
pub(crate) fn create(path: &Path) -> Result<Option<Key>, VaultError> {
    let bytes = KeyBytes::generate()?;
    let key = Key::new(&bytes)?;
    let mut suffix = [0; 8];
    getrandom::fill(&mut suffix).map_err(VaultError::Random)?;
    let tmp = with_suffix(path, &format!(".tmp-{}", hex::encode(suffix)));
    let written = write_new(&tmp, &bytes);
    let linked = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(VaultError::io("create key file", path)(e)),
    });
    // The temporary name holds a key: remove it whatever happened.
    let removed = match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(VaultError::io("remove temporary key file", &tmp)(e))
        }
        _ => Ok(()),
    };
    let linked = linked?;
    removed?;
    if !linked {
        return Ok(None);
    }
    sync_dir(path)?;
    Ok(Some(key))
}

fn write_new(path: &Path, bytes: &KeyBytes) -> Result<(), VaultError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(VaultError::io("create key file", path))?;
    let mut text = hex::encode(bytes.0).into_bytes();
    text.push(b'\n');
    let result = file
        .write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(VaultError::io("write key file", path));
    text.fill(0);
    result
}

/// Renames `from` over `to` and makes the rename durable.
pub(crate) fn replace(from: &Path, to: &Path) -> Result<(), VaultError> {
    fs::rename(from, to).map_err(VaultError::io("rename pending key file over", to))?;
    sync_dir(to)
}

/// Removes `path` and makes the removal durable.
pub(crate) fn remove(path: &Path) -> Result<(), VaultError> {
    fs::remove_file(path).map_err(VaultError::io("remove pending key file", path))?;
    sync_dir(path)
}

/// Fsyncs the directory holding `path`, so a new, renamed or removed name in
/// it survives a crash.
fn sync_dir(path: &Path) -> Result<(), VaultError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_dir_at(dir)
}

#[cfg(unix)]
fn sync_dir_at(dir: &Path) -> Result<(), VaultError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(VaultError::io("sync directory", dir))
}

#[cfg(not(unix))]
fn sync_dir_at(_dir: &Path) -> Result<(), VaultError> {
    Ok(())
}
