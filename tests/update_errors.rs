//! A malformed flake.lock or a failing update: clear errors, flake.lock untouched.

mod update_support;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use update_support::*;

const FLAKE: &str = "{ outputs = { self }: { }; }\n";

fn write_flake(dir: &Path, lock: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("flake.nix"), FLAKE).unwrap();
    if let Some(l) = lock {
        std::fs::write(dir.join("flake.lock"), l).unwrap();
    }
}

#[test]
fn malformed_lock_names_file_line_column_and_is_left_alone() {
    let (_g, base) = tempdir();
    let repo = base.join("repo");
    let bad = "{\n  \"nodes\": {\n    \"root\": { \"inputs\": { } },\n  },\n  \"root\": \"root\",\n  \"version\": 7\n}\n";
    write_flake(&repo, Some(bad));
    let out = hearth(&repo, &["update", "--no-diff"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lock = repo.join("flake.lock");
    assert!(
        err.contains(&format!(
            "{}:4:3: not a valid flake.lock: trailing comma\n",
            lock.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("git checkout -- flake.lock"),
        "says what to do: {err}"
    );
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), bad);
    assert!(out.stdout.is_empty(), "no body on error");
}

/// A fake `nix` first in PATH: skips hearth's experimental-feature flags, answers `--version`, and on `flake …` overwrites the
/// lock with `garbage`, then exits with `code`.
fn fake_nix(dir: &Path, code: i32) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = --extra-experimental-features ] && shift 2\n\
         if [ \"$1\" = --version ]; then echo 'nix (Nix) 2.8.0'; exit 0; fi\n\
         echo '{{\"half\": ' > flake.lock\necho 'error: simulated failure while locking' >&2\nexit {code}\n"
    );
    let nix = bin.join("nix");
    std::fs::write(&nix, script).unwrap();
    std::fs::set_permissions(&nix, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

const GOOD_LOCK: &str =
    "{\n  \"nodes\": {\n    \"root\": {}\n  },\n  \"root\": \"root\",\n  \"version\": 7\n}\n";

#[test]
fn failing_update_restores_the_lock_byte_for_byte() {
    let (_g, base) = tempdir();
    let repo = base.join("repo");
    write_flake(&repo, Some(GOOD_LOCK));
    let path = fake_nix(&base, 1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(&repo)
        .args(["update", "--no-diff"])
        .env("PATH", path)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("flake.lock was left as it was"), "{err}");
    assert!(
        err.contains("simulated failure while locking"),
        "nix's stderr is in the error: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("flake.lock")).unwrap(),
        GOOD_LOCK
    );
}

#[test]
fn unreadable_new_lock_is_rolled_back() {
    let (_g, base) = tempdir();
    let repo = base.join("repo");
    write_flake(&repo, Some(GOOD_LOCK));
    let path = fake_nix(&base, 0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(&repo)
        .args(["update", "--no-diff"])
        .env("PATH", path)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("restored the old one"), "{err}");
    assert!(
        err.contains("flake.lock:2:0: not a valid flake.lock: EOF while parsing"),
        "points into the bad file: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("flake.lock")).unwrap(),
        GOOD_LOCK
    );
}

#[test]
fn first_lock_that_fails_leaves_no_lock_behind() {
    let (_g, base) = tempdir();
    let repo = base.join("repo");
    write_flake(&repo, None);
    let path = fake_nix(&base, 1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(&repo)
        .args(["update", "--no-diff"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!repo.join("flake.lock").exists());
}

#[test]
fn real_nix_failing_to_fetch_an_input_leaves_the_lock() {
    let (_g, base) = tempdir();
    let Some(nix_config) = offline_nix(&base) else {
        return;
    };
    git_repo(&base.join("a"), &[("x", "1\n")]);
    let repo = base.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let flake = format!(
        "{{ inputs.a = {{ url = \"git+file://{}\"; flake = false; }}; outputs = {{ self, a }}: {{ }}; }}\n",
        base.join("a").display()
    );
    std::fs::write(repo.join("flake.nix"), flake).unwrap();
    nix(&repo, &["flake", "lock"], &nix_config);
    let before = std::fs::read(repo.join("flake.lock")).unwrap();
    std::fs::remove_dir_all(base.join("a")).unwrap();

    let out = hearth(&repo, &["update", "--no-diff"], Some(&nix_config));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("updating the lock of the flake in"), "{err}");
    assert!(err.contains("flake.lock was left as it was"), "{err}");
    assert!(
        err.contains("nix --extra-experimental-features 'nix-command flakes' flake update"),
        "names the command: {err}"
    );
    assert_eq!(std::fs::read(repo.join("flake.lock")).unwrap(), before);
}
