//! Unit tests: sealing, the key file protocol and rotation, each on a fresh
//! temporary data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;

use tempfile::TempDir;

use crate::{DEFAULT_KEY_FILE, Vault, VaultError};

const AAD: &[u8] = b"tenant=acme plugin=mailer name=smtp-password version=1";
const SECRET: &[u8] = b"correct horse battery staple";

fn fresh() -> (TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(dir.path(), None).unwrap();
    (dir, vault)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn round_trip() {
    let (_dir, vault) = fresh();
    for plaintext in [&b""[..], SECRET, &[0xff; 4096][..]] {
        let sealed = vault.seal(AAD, plaintext).unwrap();
        assert!(sealed.starts_with(b"rv1"));
        assert_eq!(&sealed[3..11], vault.key_id().as_bytes());
        assert_eq!(sealed.len(), 3 + 8 + 12 + plaintext.len() + 16);
        assert_eq!(vault.unseal(AAD, &sealed).unwrap(), plaintext);
    }
}

#[test]
fn each_seal_uses_a_fresh_nonce() {
    let (_dir, vault) = fresh();
    let a = vault.seal(AAD, SECRET).unwrap();
    let b = vault.seal(AAD, SECRET).unwrap();
    assert_ne!(a[11..23], b[11..23]);
    assert_ne!(a, b);
}

#[test]
fn wrong_aad_refused() {
    let (_dir, vault) = fresh();
    let sealed = vault.seal(AAD, SECRET).unwrap();
    for other in [
        &b""[..],
        b"tenant=other plugin=mailer name=smtp-password version=1",
    ] {
        let err = vault.unseal(other, &sealed).unwrap_err();
        assert!(
            matches!(err, VaultError::AuthenticationFailed { key_id } if key_id == vault.key_id()),
            "{err:?}"
        );
    }
}

#[test]
fn tampered_byte_refused() {
    let (_dir, vault) = fresh();
    let sealed = vault.seal(AAD, SECRET).unwrap();
    for i in 0..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[i] ^= 0x01;
        let err = vault.unseal(AAD, &tampered).unwrap_err();
        match i {
            0..3 => assert!(matches!(err, VaultError::NotSealed(_)), "byte {i}: {err:?}"),
            3..11 => assert!(
                matches!(err, VaultError::UnknownKey { .. }),
                "byte {i}: {err:?}"
            ),
            _ => assert!(
                matches!(err, VaultError::AuthenticationFailed { .. }),
                "byte {i}: {err:?}"
            ),
        }
    }
    let mut truncated = sealed.clone();
    truncated.pop();
    assert!(matches!(
        vault.unseal(AAD, &truncated),
        Err(VaultError::AuthenticationFailed { .. })
    ));
}

#[test]
fn not_a_sealed_value_refused() {
    let (_dir, vault) = fresh();
    let sealed = vault.seal(AAD, b"").unwrap();
    for bytes in [
        &b""[..],
        b"rv1",
        &sealed[..sealed.len() - 1],
        b"plain text, not sealed at all",
    ] {
        let err = vault.unseal(AAD, bytes).unwrap_err();
        assert!(matches!(err, VaultError::NotSealed(_)), "{err:?}");
        assert!(err.to_string().starts_with("not a sealed value"), "{err}");
        assert!(!vault.is_current(bytes));
    }
}

#[test]
fn value_from_another_vault_is_unknown_key() {
    let (_a_dir, a) = fresh();
    let (_b_dir, b) = fresh();
    assert_ne!(a.key_id(), b.key_id());
    let sealed = a.seal(AAD, SECRET).unwrap();
    assert!(!b.is_current(&sealed));
    let err = b.unseal(AAD, &sealed).unwrap_err();
    assert!(
        matches!(&err, VaultError::UnknownKey { key_id, known } if *key_id == a.key_id() && *known == [b.key_id()]),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&a.key_id().to_string()), "{message}");
    assert!(message.contains(&b.key_id().to_string()), "{message}");
}

#[test]
fn key_id_is_16_hex_digits_of_the_key_digest() {
    let (dir, vault) = fresh();
    let text = fs::read_to_string(dir.path().join(DEFAULT_KEY_FILE)).unwrap();
    let key = hex::decode(text.trim()).unwrap();
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&key);
    assert_eq!(vault.key_id().to_string(), hex::encode(&digest[..8]));
    assert_eq!(
        format!("{:?}", vault.key_id()),
        format!("KeyId({})", vault.key_id())
    );
}

#[test]
fn key_file_created_0600_and_reused_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEFAULT_KEY_FILE);
    let vault = Vault::open(dir.path(), None).unwrap();
    assert_eq!(vault.key_file(), path);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Only the key file: no temporary file left behind.
    assert_eq!(names(dir.path()), [DEFAULT_KEY_FILE]);
    let sealed = vault.seal(AAD, SECRET).unwrap();
    drop(vault);

    let reopened = Vault::open(dir.path(), None).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
    assert!(reopened.is_current(&sealed));
    assert_eq!(reopened.unseal(AAD, &sealed).unwrap(), SECRET);
}

#[test]
fn given_key_file_used_and_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("keys").join("reyna.key");
    let err = Vault::open(dir.path(), Some(&missing)).unwrap_err();
    assert!(matches!(err, VaultError::KeyFileMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(!missing.exists());
    assert!(
        names(dir.path()).is_empty(),
        "nothing created in the data dir"
    );

    // A key made elsewhere (whitespace around it is fine) is used as it is.
    let made = tempfile::tempdir().unwrap();
    let original = Vault::open(made.path(), None).unwrap();
    let given = dir.path().join("given.key");
    let text = fs::read_to_string(made.path().join(DEFAULT_KEY_FILE)).unwrap();
    fs::write(&given, format!("  {}\n\n", text.trim())).unwrap();
    #[cfg(unix)]
    set_mode(&given, 0o400);
    let vault = Vault::open(dir.path(), Some(&given)).unwrap();
    assert_eq!(vault.key_id(), original.key_id());
    assert!(!dir.path().join(DEFAULT_KEY_FILE).exists());
}

#[test]
fn malformed_key_file_refused_and_left_untouched() {
    let contents: [&[u8]; 6] = [
        b"",
        b"\n",
        b"00112233",
        &[b'a'; 63],
        &[b'a'; 65],
        b"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    ];
    for content in contents {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        fs::write(&path, content).unwrap();
        #[cfg(unix)]
        set_mode(&path, 0o600);
        let err = Vault::open(dir.path(), None).unwrap_err();
        assert!(
            matches!(err, VaultError::MalformedKeyFile { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), content, "left untouched");
        assert_eq!(names(dir.path()), [DEFAULT_KEY_FILE]);
    }
}

#[cfg(unix)]
#[test]
fn key_file_open_to_group_or_others_refused() {
    for mode in [0o640, 0o660, 0o604, 0o602, 0o644] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        drop(Vault::open(dir.path(), None).unwrap());
        let before = fs::read(&path).unwrap();
        set_mode(&path, mode);
        let err = Vault::open(dir.path(), None).unwrap_err();
        assert!(
            matches!(err, VaultError::KeyFilePermissions { mode: m, .. } if m == mode),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("chmod 600 {}", path.display())),
            "{message}"
        );
        assert_eq!(fs::read(&path).unwrap(), before);
        // A given path is checked the same way.
        let err = Vault::open(dir.path(), Some(&path)).unwrap_err();
        assert!(
            matches!(err, VaultError::KeyFilePermissions { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn rotation_reseals_under_the_new_key() {
    let (dir, vault) = fresh();
    let old_id = vault.key_id();
    let sealed = vault.seal(AAD, SECRET).unwrap();

    let rotation = vault.begin_rotation().unwrap();
    assert_eq!(rotation.previous_key_id(), old_id);
    assert_ne!(rotation.key_id(), old_id);
    let next = dir.path().join("master.key.next");
    assert!(next.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&next).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let resealed = rotation.reseal(AAD, &sealed).unwrap();
    assert_eq!(&resealed[3..11], rotation.key_id().as_bytes());
    // Resealing twice (a repeated step) keeps it under the new key.
    let again = rotation.reseal(AAD, &resealed).unwrap();
    assert!(matches!(
        rotation.reseal(b"elsewhere", &sealed),
        Err(VaultError::AuthenticationFailed { .. })
    ));
    // The old vault keeps sealing under the old key until finish.
    assert!(vault.is_current(&vault.seal(AAD, b"x").unwrap()));

    let new_id = rotation.key_id();
    let vault = rotation.finish().unwrap();
    assert_eq!(vault.key_id(), new_id);
    assert_eq!(vault.pending_rotation(), None);
    assert!(vault.is_current(&resealed));
    assert_eq!(vault.unseal(AAD, &resealed).unwrap(), SECRET);
    assert_eq!(vault.unseal(AAD, &again).unwrap(), SECRET);
    assert_eq!(names(dir.path()), [DEFAULT_KEY_FILE]);

    // After a restart, the new key is the key; the old one is gone.
    let reopened = Vault::open(dir.path(), None).unwrap();
    assert_eq!(reopened.key_id(), new_id);
    assert_eq!(reopened.unseal(AAD, &resealed).unwrap(), SECRET);
    let err = reopened.unseal(AAD, &sealed).unwrap_err();
    assert!(
        matches!(err, VaultError::UnknownKey { key_id, .. } if key_id == old_id),
        "{err:?}"
    );
}

#[test]
fn rotation_abandon_removes_the_next_file() {
    let (dir, vault) = fresh();
    let rotation = vault.begin_rotation().unwrap();
    rotation.abandon().unwrap();
    assert_eq!(names(dir.path()), [DEFAULT_KEY_FILE]);
    let reopened = Vault::open(dir.path(), None).unwrap();
    assert_eq!(reopened.key_id(), vault.key_id());
    assert_eq!(reopened.pending_rotation(), None);
}

#[test]
fn second_begin_rotation_refused_while_pending() {
    let (dir, vault) = fresh();
    let first = vault.begin_rotation().unwrap();
    let next = dir.path().join("master.key.next");
    let before = fs::read(&next).unwrap();
    let err = vault.begin_rotation().unwrap_err();
    assert!(matches!(err, VaultError::RotationPending { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("rotation is pending"), "{message}");
    assert!(message.contains(&next.display().to_string()), "{message}");
    assert_eq!(fs::read(&next).unwrap(), before, "the pending key is kept");
    assert_eq!(names(dir.path()), [DEFAULT_KEY_FILE, "master.key.next"]);

    // Also after a crash: a reopened vault refuses too.
    drop(first);
    let reopened = Vault::open(dir.path(), None).unwrap();
    assert!(matches!(
        reopened.begin_rotation(),
        Err(VaultError::RotationPending { .. })
    ));
}

/// The process dies after step 1 (and maybe after the transaction of step 2):
/// returns the data dir, the old and new key ids, and a value under each.
fn crash_between_steps() -> (TempDir, crate::KeyId, crate::KeyId, Vec<u8>, Vec<u8>) {
    let (dir, vault) = fresh();
    let old_sealed = vault.seal(AAD, b"old").unwrap();
    let rotation = vault.begin_rotation().unwrap();
    let new_sealed = rotation
        .reseal(AAD, &vault.seal(AAD, b"new").unwrap())
        .unwrap();
    let (old_id, new_id) = (vault.key_id(), rotation.key_id());
    drop(rotation);
    drop(vault);
    (dir, old_id, new_id, old_sealed, new_sealed)
}

#[test]
fn crash_between_steps_opens_values_under_both_keys() {
    let (dir, old_id, new_id, old_sealed, new_sealed) = crash_between_steps();
    let vault = Vault::open(dir.path(), None).unwrap();
    assert_eq!(vault.key_id(), old_id, "seals under the key file's key");
    assert_eq!(vault.pending_rotation(), Some(new_id));
    assert_eq!(vault.unseal(AAD, &old_sealed).unwrap(), b"old");
    assert_eq!(vault.unseal(AAD, &new_sealed).unwrap(), b"new");
    assert!(vault.is_current(&old_sealed));
    assert!(!vault.is_current(&new_sealed));
    assert!(vault.is_current(&vault.seal(AAD, SECRET).unwrap()));
    let debug = format!("{vault:?}");
    assert!(
        debug.contains(&old_id.to_string()) && debug.contains(&new_id.to_string()),
        "{debug}"
    );

    // A value under neither key names both in its error.
    let (_other_dir, other) = fresh();
    let err = vault
        .unseal(AAD, &other.seal(AAD, SECRET).unwrap())
        .unwrap_err();
    assert!(
        matches!(&err, VaultError::UnknownKey { known, .. } if *known == [old_id, new_id]),
        "{err:?}"
    );
}

#[test]
fn complete_pending_leaves_only_the_new_key() {
    let (dir, _old_id, new_id, old_sealed, new_sealed) = crash_between_steps();
    let vault = Vault::open(dir.path(), None)
        .unwrap()
        .complete_pending()
        .unwrap();
    assert_eq!(vault.key_id(), new_id);
    assert_eq!(vault.pending_rotation(), None);
    assert_eq!(vault.unseal(AAD, &new_sealed).unwrap(), b"new");
    assert!(matches!(
        vault.unseal(AAD, &old_sealed),
        Err(VaultError::UnknownKey { .. })
    ));
    assert_eq!(names(dir.path()), [DEFAULT_KEY_FILE]);

    let reopened = Vault::open(dir.path(), None).unwrap();
    assert_eq!(reopened.key_id(), new_id);
    assert_eq!(reopened.pending_rotation(), None);
    // Without a pending rotation, both calls change nothing.
    let same = reopened
        .complete_pending()
        .unwrap()
        .abandon_pending()
        .unwrap();
    assert_eq!(same.key_id(), new_id);
    assert_eq!(names(dir.path()), [DEFAULT_KEY_FILE]);
}

#[test]
fn abandon_pending_leaves_only_the_old_key() {
    let (dir, old_id, _new_id, old_sealed, new_sealed) = crash_between_steps();
    let vault = Vault::open(dir.path(), None)
        .unwrap()
        .abandon_pending()
        .unwrap();
    assert_eq!(vault.key_id(), old_id);
    assert_eq!(vault.pending_rotation(), None);
    assert_eq!(vault.unseal(AAD, &old_sealed).unwrap(), b"old");
    assert!(matches!(
        vault.unseal(AAD, &new_sealed),
        Err(VaultError::UnknownKey { .. })
    ));
    assert_eq!(names(dir.path()), [DEFAULT_KEY_FILE]);

    let reopened = Vault::open(dir.path(), None).unwrap();
    assert_eq!(reopened.key_id(), old_id);
    assert_eq!(reopened.pending_rotation(), None);
}

#[test]
fn pending_file_without_key_file_refused() {
    let (dir, _old_id, _new_id, _old_sealed, _new_sealed) = crash_between_steps();
    let path = dir.path().join(DEFAULT_KEY_FILE);
    fs::remove_file(&path).unwrap();
    let err = Vault::open(dir.path(), None).unwrap_err();
    assert!(
        matches!(err, VaultError::OrphanedRotation { .. }),
        "{err:?}"
    );
    assert!(!path.exists(), "no new key is made over a pending one");
}

#[test]
fn plaintext_and_key_never_in_sealed_bytes_debug_or_errors() {
    let (dir, vault) = fresh();
    let key_hex = fs::read_to_string(dir.path().join(DEFAULT_KEY_FILE)).unwrap();
    let key_hex = key_hex.trim();
    let key_bytes = hex::decode(key_hex).unwrap();
    let sealed = vault.seal(AAD, SECRET).unwrap();
    assert!(!contains(&sealed, SECRET));
    assert!(!contains(&sealed, &key_bytes));
    assert!(!contains(&sealed, AAD), "the AAD is not stored");

    let rotation = vault.begin_rotation().unwrap();
    let mut texts = vec![format!("{vault:?}"), format!("{rotation:?}")];
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let (_other_dir, other) = fresh();
    let errors = [
        vault.unseal(b"elsewhere", &sealed).unwrap_err(),
        vault.unseal(AAD, &tampered).unwrap_err(),
        other.unseal(AAD, &sealed).unwrap_err(),
        vault.unseal(AAD, SECRET).unwrap_err(),
        vault.begin_rotation().unwrap_err(),
    ];
    for err in &errors {
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    let secret = String::from_utf8_lossy(SECRET);
    let next_hex = fs::read_to_string(dir.path().join("master.key.next")).unwrap();
    for text in &texts {
        assert!(!text.contains(&*secret), "{text}");
        assert!(!text.to_lowercase().contains(key_hex), "{text}");
        assert!(!text.to_lowercase().contains(next_hex.trim()), "{text}");
    }
    rotation.abandon().unwrap();
}

#[test]
fn vault_and_rotation_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Vault>();
    shared::<crate::Rotation>();
    shared::<VaultError>();
}
