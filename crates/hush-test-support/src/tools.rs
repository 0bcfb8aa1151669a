//! The command-line tools the attestation tests make real keys and certificates with
//! (`gpg`, `openssl`): run in a scratch directory, the test failing with the tool's own words
//! when it fails. `./scripts/test` installs them; a test without them fails, never skips.

use std::path::Path;
use std::process::Command;

/// Runs `program ARGS…` in `dir`, with gpg's keyring in `dir/gnupg`, and gives its standard
/// output. A tool that is missing or fails fails the test, with what it printed.
pub fn run(dir: &Path, program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GNUPGHOME", dir.join("gnupg"))
        .output()
        .unwrap_or_else(|e| panic!("`{program}` is needed (./scripts/test installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Revokes the key with `fingerprint` in `dir`'s gpg keyring with the revocation certificate
/// gpg made for it when the key was made (its first line guarded by a colon, which is taken
/// off), and gives the armored export of the key `uid`, revocation included.
pub fn gpg_revoke(dir: &Path, fingerprint: &str, uid: &str) -> Vec<u8> {
    let certificate = dir
        .join("gnupg")
        .join("openpgp-revocs.d")
        .join(format!("{}.rev", fingerprint.to_ascii_uppercase()));
    let armored = std::fs::read_to_string(&certificate)
        .unwrap_or_else(|e| {
            panic!(
                "gpg's revocation certificate {}: {e}",
                certificate.display()
            )
        })
        .replace(":-----BEGIN", "-----BEGIN");
    std::fs::write(dir.join("revocation.asc"), armored).unwrap();
    run(dir, "gpg", &["--batch", "--import", "revocation.asc"]);
    run(dir, "gpg", &["--batch", "--armor", "--export", uid])
}
