//! Every bad input to `hearth secrets` gives a clear error, leaves the old file as it
//! was, and leaves no plaintext anywhere: corrupted and truncated files, files for other
//! keys, an identity that is no recipient, a passphrase-protected key without a
//! terminal, a failing or SIGKILLed editor, SIGTERM / SIGINT to hearth mid-edit, a
//! write that fails after editing, symlinks, FIFOs and bad names.

mod secrets_support;

use secrets_support::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `hearth secrets edit one -i ADMIN` with `EDITOR=script`; the script may use `$NEW`.
fn edit(f: &Fleet, editor: &Path, new: &str) -> Output {
    f.hearth(&[
        "secrets",
        "edit",
        "one",
        "-i",
        f.admin_key.to_str().unwrap(),
    ])
    .env("EDITOR", editor)
    .env("NEW", new)
    .stdin(Stdio::null())
    .output()
    .unwrap()
}

/// A fleet whose `one` holds `m`; returns the file's bytes.
fn with_secret(f: &Fleet, m: &str) -> Vec<u8> {
    let out = f.set("one", m);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read(f.path("secrets/one.age")).unwrap()
}

fn assert_failed_with(out: &Output, text: &str) {
    let e = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains(text), "expected `{text}` in:\n{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn corrupted_and_truncated_files() {
    let f = Fleet::new();
    let m = marker("corrupt");
    let good = with_secret(&f, &m);
    let file = f.path("secrets/one.age");
    let ed = f.editor("ed", "printf changed > \"$1\"");
    // A flipped payload byte: the header is fine (check says ok), decryption fails.
    let mut bad = good.clone();
    let last = bad.len() - 5;
    bad[last] ^= 0x55;
    std::fs::write(&file, &bad).unwrap();
    assert_failed_with(&edit(&f, &ed, &m), "is corrupted or truncated");
    assert_eq!(std::fs::read(&file).unwrap(), bad);
    // Truncated payload.
    let cut = &good[..good.len() - 20];
    std::fs::write(&file, cut).unwrap();
    assert_failed_with(&edit(&f, &ed, &m), "is corrupted or truncated");
    assert_eq!(std::fs::read(&file).unwrap(), cut);
    // Truncated header: check reports it unreadable, without a key.
    std::fs::write(&file, &good[..60]).unwrap();
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_failed_with(&check, "secrets/one.age is unreadable: truncated");
    assert_failed_with(&edit(&f, &ed, &m), "is corrupted or truncated");
    // Not age at all.
    std::fs::write(&file, b"hello\n").unwrap();
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_failed_with(&check, "not an age file");
    let rk = f
        .hearth(&[
            "secrets",
            "rekey",
            "one",
            "-i",
            f.admin_key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_failed_with(&rk, "is corrupted or truncated");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello\n");
    f.assert_no_plaintext(&m);
}

#[test]
fn file_for_other_keys_and_identity_that_is_no_recipient() {
    let f = Fleet::new();
    let m = marker("other");
    let good = with_secret(&f, &m);
    let file = f.path("secrets/one.age");
    let ed = f.editor("ed", "printf changed > \"$1\"");
    // An identity that is no recipient.
    let (stranger, stranger_pub) = keygen(f.keys.path(), "stranger", "");
    let out = f
        .hearth(&["secrets", "edit", "one", "-i", stranger.to_str().unwrap()])
        .env("EDITOR", &ed)
        .output()
        .unwrap();
    assert_failed_with(
        &out,
        "is a recipient of secrets/one.age (it is encrypted for: admin alice (alice), host h1)",
    );
    assert_eq!(std::fs::read(&file).unwrap(), good);
    // A file encrypted for other keys only.
    let r = f.keys.path().join("r.txt");
    std::fs::write(&r, &stranger_pub).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo other | age -R {} -o {}",
            r.display(),
            file.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let foreign = std::fs::read(&file).unwrap();
    let out = edit(&f, &ed, &m);
    assert_failed_with(&out, "it is encrypted for: an unknown SSH key (tag ");
    assert!(stderr(&out).contains("`hearth secrets set one`"));
    assert_eq!(std::fs::read(&file).unwrap(), foreign);
    // `set` needs no old plaintext, so it replaces what nobody can decrypt.
    assert!(f.set("one", &m).status.success());
    assert_eq!(decrypt_with(f.host_key("h1"), &file).unwrap(), m.as_bytes());
    f.assert_no_plaintext(&m);
}

#[test]
fn passphrase_protected_key_without_a_terminal() {
    let f = Fleet::new();
    let m = marker("pass");
    let good = with_secret(&f, &m);
    let (locked, _) = keygen(f.keys.path(), "locked", "correct horse");
    let ed = f.editor("ed", "printf changed > \"$1\"");
    let out = f
        .hearth(&["secrets", "edit", "one", "-i", locked.to_str().unwrap()])
        .env("EDITOR", &ed)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_failed_with(
        &out,
        "is protected by a passphrase and stdin is not a terminal",
    );
    assert!(
        stderr(&out).contains("age identity file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(f.path("secrets/one.age")).unwrap(), good);
    f.assert_no_plaintext(&m);
}

#[test]
fn failing_and_killed_editors_leave_nothing() {
    let f = Fleet::new();
    let m = marker("editor");
    let good = with_secret(&f, &m);
    let file = f.path("secrets/one.age");
    // The editor writes new plaintext (a second marker) and then fails.
    let m2 = marker("editor-new");
    let fails = f.editor("fails", "printf '%s' \"$NEW\" > \"$1\"; exit 3");
    assert_failed_with(
        &edit(&f, &fails, &m2),
        "the editor exited with status 3; the secret is unchanged",
    );
    let killed = f.editor("killed", "printf '%s' \"$NEW\" > \"$1\"; kill -KILL $$");
    assert_failed_with(
        &edit(&f, &killed, &m2),
        "the editor was killed by signal 9; the secret is unchanged",
    );
    assert_eq!(std::fs::read(&file).unwrap(), good);
    // A missing editor binary is an editor failure too.
    let out = edit(&f, Path::new("/nonexistent/editor"), &m2);
    assert_failed_with(&out, "the secret is unchanged");
    f.assert_no_plaintext(&m);
    f.assert_no_plaintext(&m2);
}

#[test]
fn a_write_that_fails_after_editing_leaves_no_plaintext() {
    let f = Fleet::new();
    let m = marker("write");
    with_secret(&f, &m);
    let file = f.path("secrets/one.age");
    // The editor swaps the secret file for a FIFO: the write must refuse it.
    let ed = f.editor(
        "swap",
        &format!(
            "printf '%s' \"$NEW\" > \"$1\"; rm {0}; mkfifo {0}",
            file.display()
        ),
    );
    let m2 = marker("write-new");
    assert_failed_with(&edit(&f, &ed, &m2), "is a FIFO, not a regular file");
    std::fs::remove_file(&file).unwrap();
    f.assert_no_plaintext(&m);
    f.assert_no_plaintext(&m2);
}

#[test]
fn symlinks_and_fifos_are_refused_without_reading() {
    let f = Fleet::new();
    let m = marker("link");
    let file = f.path("secrets/one.age");
    std::fs::create_dir_all(f.path("secrets")).unwrap();
    let target = f.keys.path().join("elsewhere");
    std::fs::write(&target, "do not touch").unwrap();
    std::os::unix::fs::symlink(&target, &file).unwrap();
    assert_failed_with(
        &f.set("one", &m),
        "secrets/one.age is a symlink, not a regular file",
    );
    let ed = f.editor("ed", "printf changed > \"$1\"");
    assert_failed_with(&edit(&f, &ed, &m), "is a symlink");
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_failed_with(&check, "secrets/one.age is unreadable");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch");
    assert!(std::fs::symlink_metadata(&file)
        .unwrap()
        .file_type()
        .is_symlink());

    std::fs::remove_file(&file).unwrap();
    let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    // Would block forever if hearth opened the FIFO for reading.
    let start = Instant::now();
    assert_failed_with(&edit(&f, &ed, &m), "is a FIFO");
    assert_failed_with(&f.set("one", &m), "is a FIFO");
    let rk = f
        .hearth(&[
            "secrets",
            "rekey",
            "one",
            "-i",
            f.admin_key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_failed_with(&rk, "is a FIFO");
    assert!(start.elapsed() < Duration::from_secs(20));
    f.assert_no_plaintext(&m);
}

#[test]
fn bad_names_and_undeclared_secrets() {
    let f = Fleet::new();
    for (name, why) in [
        ("../one", "contains a path separator"),
        ("a/b", "contains a path separator"),
        ("..", "contains `..`"),
        (".hidden", "starts with a dot"),
        (
            "nope",
            "no secret `nope` in the inventory (secrets: both, one); declare it in hearth.toml",
        ),
    ] {
        assert_failed_with(&f.set(name, "x"), why);
    }
    assert_failed_with(
        &f.set("one", ""),
        "the input is empty; secrets/one.age is left as it was",
    );
    assert!(
        !f.path("secrets").exists()
            || std::fs::read_dir(f.path("secrets"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// Start `hearth secrets edit` with an editor that waits, signal hearth once the
/// plaintext is on disk, and check that hearth stops the editor and removes it all.
fn signal_mid_edit(sig: libc::c_int) {
    let f = Fleet::new();
    let m = marker("signal");
    let good = with_secret(&f, &m);
    let ready = f.scripts.path().join("ready");
    let ed = f.editor(
        "waits",
        &format!("touch {}; exec sleep 60", ready.display()),
    );
    let child = f
        .hearth(&[
            "secrets",
            "edit",
            "one",
            "-i",
            f.admin_key.to_str().unwrap(),
        ])
        .env("EDITOR", &ed)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "editor never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The plaintext really is on disk now, so the scan afterwards means something.
    let on_disk = walkdir::WalkDir::new(f.runtime.path())
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .any(|e| std::fs::read(e.path()).unwrap() == m.as_bytes());
    assert!(
        on_disk,
        "the editor's file holds the plaintext while it runs"
    );
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    let out = child.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_failed_with(&out, &format!("interrupted by signal {sig}"));
    assert_eq!(std::fs::read(f.path("secrets/one.age")).unwrap(), good);
    f.assert_no_plaintext(&m);
}

#[test]
fn sigterm_to_hearth_while_the_editor_runs() {
    signal_mid_edit(libc::SIGTERM);
}

#[test]
fn sigint_to_hearth_while_the_editor_runs() {
    signal_mid_edit(libc::SIGINT);
}

#[test]
fn a_directory_left_by_a_killed_hearth_is_removed_by_the_next_edit() {
    let f = Fleet::new();
    let m = marker("orphan");
    with_secret(&f, "x");
    // What a hearth killed with SIGKILL mid-edit leaves: its pid is gone. pid_max is at
    // most 2^22, so this pid can't be running.
    let orphan = f.runtime.path().join("hearth-secrets-4194305-abc");
    std::fs::create_dir(&orphan).unwrap();
    std::fs::write(orphan.join("one"), &m).unwrap();
    let out = f
        .hearth(&[
            "secrets",
            "edit",
            "one",
            "-i",
            f.admin_key.to_str().unwrap(),
        ])
        .env("EDITOR", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!orphan.exists());
    f.assert_no_plaintext(&m);
}

#[test]
fn edit_creates_a_missing_secret_without_any_identity() {
    let f = Fleet::new();
    let m = marker("create");
    let ed = f.editor("ed", "printf '%s' \"$NEW\" > \"$1\"");
    let out = f
        .hearth(&["secrets", "edit", "one"])
        .env("EDITOR", &ed)
        .env("NEW", &m)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let file = f.path("secrets/one.age");
    assert_eq!(decrypt_with(f.host_key("h1"), &file).unwrap(), m.as_bytes());
    f.assert_no_plaintext(&m);
}

#[test]
fn hearth_check_rejects_a_secret_name_that_is_a_path() {
    let f = Fleet::new();
    let fleet = std::fs::read_to_string(f.path("hearth.toml")).unwrap();
    std::fs::write(
        f.path("hearth.toml"),
        fleet.replace("[secrets.one]", "[secrets.\"../one\"]"),
    )
    .unwrap();
    let out = f.hearth(&["check"]).output().unwrap();
    // The inventory's own name check answers first, with the place.
    assert_failed_with(&out, "invalid name `../one` in `[secrets]`");
    assert_failed_with(&out, "--> hearth.toml:");
    let out = f.hearth(&["secrets", "list"]).output().unwrap();
    assert_failed_with(&out, "invalid name `../one` in `[secrets]`");
    assert!(!f.root.path().parent().unwrap().join("one.age").exists());
}

/// `hearth secrets edit one -i locked` on a pseudo-terminal (util-linux `script`), with
/// `pass` typed once the prompt is there. Returns the exit status and what the terminal showed.
fn edit_on_a_tty(f: &Fleet, locked: &Path, pass: &str, m: &str) -> (bool, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let ed = f.editor("ed", "printf '%s' \"$NEW\" > \"$1\"");
    let cmd = format!(
        "{} -C {} secrets edit one -i {}",
        env!("CARGO_BIN_EXE_hearth"),
        f.root.path().display(),
        locked.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", f.home.path())
        .env("XDG_RUNTIME_DIR", f.runtime.path())
        .env("EDITOR", &ed)
        .env("NEW", m)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("util-linux `script` is installed");
    let shown = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let shown = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let start = Instant::now();
    while !String::from_utf8_lossy(&shown.lock().unwrap()).contains("Enter passphrase for") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no passphrase prompt"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // hearth switches echo off before it writes the prompt.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{pass}\n").as_bytes()).unwrap();
    let ok = child.wait().unwrap().success();
    drop(stdin);
    reader.join().unwrap();
    let text = String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
    (ok, text)
}

#[test]
fn passphrase_protected_key_is_asked_for_on_the_terminal() {
    let f = Fleet::new();
    let (locked, locked_pub) = keygen(f.keys.path(), "locked", "correct horse");
    let fleet = std::fs::read_to_string(f.path("hearth.toml")).unwrap();
    std::fs::write(
        f.path("hearth.toml"),
        fleet.replace(
            "[secrets.one]",
            &format!("[admins.carol]\nssh_keys = [\"{locked_pub}\"]\n\n[secrets.one]"),
        ),
    )
    .unwrap();
    let good = with_secret(&f, "old");
    let m = marker("tty");
    let (ok, text) = edit_on_a_tty(&f, &locked, "wrong", &m);
    assert!(!ok, "{text}");
    assert!(text.contains("wrong passphrase for"), "{text}");
    assert!(
        !text.contains("wrong\r\n"),
        "the passphrase is not echoed: {text}"
    );
    assert_eq!(std::fs::read(f.path("secrets/one.age")).unwrap(), good);
    let (ok, text) = edit_on_a_tty(&f, &locked, "correct horse", &m);
    assert!(ok, "{text}");
    let file = f.path("secrets/one.age");
    assert_eq!(decrypt_with(f.host_key("h1"), &file).unwrap(), m.as_bytes());
    f.assert_no_plaintext(&m);
}
