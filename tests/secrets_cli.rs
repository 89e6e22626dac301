//! `hearth secrets` with real age encryption and keys made by ssh-keygen in each test:
//! set, edit, rekey, check, list, the `hearth check` / `hearth deploy` gates, and agenix
//! compatibility (a host decrypts with its SSH key alone, with the age crate and `age -d`).

mod secrets_support;

use secrets_support::*;
use std::process::Command;

#[test]
fn set_then_host_decrypts_with_its_ssh_key_alone() {
    let f = Fleet::new();
    let m = marker("set");
    let out = f.set("both", &m);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = f.path("secrets/both.age");
    for h in ["h1", "h2"] {
        assert_eq!(decrypt_with(f.host_key(h), &file).unwrap(), m.as_bytes());
    }
    assert_eq!(decrypt_with(&f.admin_key, &file).unwrap(), m.as_bytes());
    // Only `both` names h2: h2 can't read `one`.
    assert!(f.set("one", &m).status.success());
    assert!(decrypt_with(f.host_key("h2"), &f.path("secrets/one.age")).is_err());
    // The age CLI (what `age -d -i ~/.ssh/id_ed25519` and agenix run) reads it too.
    let age = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(f.host_key("h1"))
        .arg(&file)
        .output()
        .expect("the `age` CLI is installed (Debian package `age`)");
    assert!(age.status.success(), "{}", stderr(&age));
    assert_eq!(age.stdout, m.as_bytes());
    f.assert_no_plaintext(&m);
}

#[test]
fn set_from_file_and_check_and_list() {
    let f = Fleet::new();
    let m = marker("from-file");
    let src = f.keys.path().join("plain.txt");
    std::fs::write(&src, &m).unwrap();
    let out = f
        .hearth(&[
            "secrets",
            "set",
            "one",
            "--from-file",
            src.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(&src).unwrap();
    assert_eq!(
        decrypt_with(f.host_key("h1"), &f.path("secrets/one.age")).unwrap(),
        m.as_bytes()
    );

    // `both` is still missing: check, list and hearth check say so.
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    let e = stderr(&check);
    assert!(
        e.contains("secret `both`: secrets/both.age does not exist"),
        "{e}"
    );
    assert!(e.contains("`hearth secrets set both`"), "{e}");
    assert!(!e.contains("secret `one`"), "{e}");
    let list = f.hearth(&["secrets", "list"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "SECRET  STATE    ADMINS  HOSTS\nboth    missing  alice   h1,h2\none     ok       alice   h1\n"
    );
    let json = f.hearth(&["secrets", "list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[1]["name"], "one");
    assert_eq!(v[1]["state"], "ok");
    let hc = f.hearth(&["check"]).output().unwrap();
    assert_eq!(hc.status.code(), Some(1));
    assert!(stderr(&hc).contains("secret `both`: secrets/both.age does not exist"));

    assert!(f.set("both", "x").status.success());
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let hc = f.hearth(&["check"]).output().unwrap();
    assert_eq!(hc.status.code(), Some(0), "{}", stderr(&hc));
    f.assert_no_plaintext(&m);
}

#[test]
fn edit_with_scripted_editor_and_unchanged_edit_keeps_bytes() {
    let f = Fleet::new();
    let m = marker("edit");
    assert!(f.set("one", "old content\n").status.success());
    let file = f.path("secrets/one.age");
    // The editor sees the old plaintext in a 0600 file in a 0700 directory.
    let ed = f.editor(
        "ed",
        "[ \"$(cat \"$1\")\" = 'old content' ] || exit 9\n\
         [ \"$(stat -c %a \"$1\")\" = 600 ] || exit 8\n\
         [ \"$(stat -c %a \"$(dirname \"$1\")\")\" = 700 ] || exit 7\n\
         printf '%s' \"$NEW\" > \"$1\"",
    );
    let out = f
        .hearth(&[
            "secrets",
            "edit",
            "one",
            "-i",
            f.admin_key.to_str().unwrap(),
        ])
        .env("EDITOR", &ed)
        .env("NEW", &m)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(decrypt_with(f.host_key("h1"), &file).unwrap(), m.as_bytes());

    // No change: the file keeps its bytes (a new encryption would differ). The default
    // identity ~/.ssh/id_ed25519 is used, and $VISUAL wins over $EDITOR.
    std::fs::create_dir(f.home.path().join(".ssh")).unwrap();
    std::fs::copy(&f.admin_key, f.home.path().join(".ssh/id_ed25519")).unwrap();
    let before = std::fs::read(&file).unwrap();
    let out = f
        .hearth(&["secrets", "edit", "one"])
        .env("VISUAL", "true")
        .env("EDITOR", "false")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no changes"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), before);
    f.assert_no_plaintext(&m);
}

#[test]
fn rekey_after_a_host_key_changes() {
    let f = Fleet::new();
    let m = marker("rekey");
    assert!(f.set("both", &m).status.success());
    assert!(f.set("one", "one").status.success());
    let one_before = std::fs::read(f.path("secrets/one.age")).unwrap();
    // h2 is reinstalled: new host key.
    let (new_key, new_pub) = keygen(f.keys.path(), "h2-new", "");
    std::fs::write(f.path("hosts/h2.toml"), host_file(&new_pub, 3)).unwrap();

    // Found stale without any private key (HOME has no ~/.ssh).
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    let e = stderr(&check);
    assert!(
        e.contains("secret `both`: secrets/both.age is stale: not encrypted for host h2"),
        "{e}"
    );
    assert!(
        e.contains("encrypted for 1 key the inventory no longer lists"),
        "{e}"
    );
    assert!(e.contains("`hearth secrets rekey both`"), "{e}");
    let list = f.hearth(&["secrets", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("both    stale"));

    // deploy refuses h2 before building; h1 can still decrypt `both`, so it isn't refused.
    let d = f.hearth(&["deploy", "h2", "--dry-run"]).output().unwrap();
    assert_eq!(d.status.code(), Some(1));
    let e = stderr(&d);
    assert!(e.contains("refusing to deploy"), "{e}");
    assert!(
        e.contains("h2: secret `both`: secrets/both.age is not encrypted for host `h2`"),
        "{e}"
    );
    assert!(e.contains("hearth secrets rekey both"), "{e}");
    let d1 = f.hearth(&["deploy", "h1", "--dry-run"]).output().unwrap();
    assert!(
        !stderr(&d1).contains("refusing to deploy"),
        "{}",
        stderr(&d1)
    );

    // rekey (all stale) with the admin key: h2's new key reads it, the old one doesn't.
    let out = f
        .hearth(&["secrets", "rekey", "-i", f.admin_key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let file = f.path("secrets/both.age");
    assert_eq!(decrypt_with(&new_key, &file).unwrap(), m.as_bytes());
    assert!(decrypt_with(f.host_key("h2"), &file).is_err());
    assert_eq!(
        std::fs::read(f.path("secrets/one.age")).unwrap(),
        one_before,
        "ok secrets are left alone"
    );
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    f.assert_no_plaintext(&m);
}

#[test]
fn deploy_refuses_a_host_whose_secret_is_missing() {
    let f = Fleet::new();
    assert!(f.set("both", "b").status.success());
    let d = f.hearth(&["deploy", "h1", "--dry-run"]).output().unwrap();
    assert_eq!(d.status.code(), Some(1));
    let e = stderr(&d);
    assert!(
        e.contains("h1: secret `one`: secrets/one.age does not exist"),
        "{e}"
    );
    assert!(e.contains("`hearth secrets set one`"), "{e}");
    let d2 = f.hearth(&["deploy", "h2", "--dry-run"]).output().unwrap();
    assert!(
        !stderr(&d2).contains("refusing to deploy"),
        "{}",
        stderr(&d2)
    );
}

#[test]
fn x25519_and_foreign_files_are_stale_and_unreferenced_files_are_reported() {
    let f = Fleet::new();
    // A native age key: no tag, so it can't be matched to the inventory.
    let k = f.keys.path().join("age.key");
    assert!(Command::new("age-keygen")
        .arg("-o")
        .arg(&k)
        .output()
        .unwrap()
        .status
        .success());
    let id = std::fs::read_to_string(&k).unwrap();
    let public = id
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    std::fs::create_dir_all(f.path("secrets")).unwrap();
    let enc = |recipient_args: &[&str], out: &str| {
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo x | age {} -o {out}",
                recipient_args.join(" ")
            ))
            .status()
            .unwrap();
        assert!(st.success());
    };
    enc(
        &["-r", &public],
        f.path("secrets/one.age").to_str().unwrap(),
    );
    let (_, other_pub) = keygen(f.keys.path(), "stranger", "");
    let rfile = f.keys.path().join("r.txt");
    std::fs::write(&rfile, &other_pub).unwrap();
    enc(
        &["-R", rfile.to_str().unwrap()],
        f.path("secrets/both.age").to_str().unwrap(),
    );
    enc(
        &["-r", &public],
        f.path("secrets/old.age").to_str().unwrap(),
    );

    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    let e = stderr(&check);
    assert!(
        e.contains("secret `one`: secrets/one.age is stale: not encrypted for admin alice (alice)"),
        "{e}"
    );
    assert!(e.contains("encrypted for 1 X25519 recipient"), "{e}");
    assert!(
        e.contains("secret `both`: secrets/both.age is stale"),
        "{e}"
    );
    assert!(e.contains("(tag "), "{e}");
    assert!(
        e.contains("warning: secrets/old.age belongs to no secret in the inventory"),
        "{e}"
    );
}

#[test]
fn ssh_rsa_recipients_are_tagged_and_decrypt() {
    let f = Fleet::new();
    let rsa = f.keys.path().join("rsa");
    let st = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "bob@rsa", "-f",
        ])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(st.success());
    let rsa_pub = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let fleet = std::fs::read_to_string(f.path("hearth.toml")).unwrap();
    std::fs::write(
        f.path("hearth.toml"),
        fleet.replace(
            "[secrets.one]",
            &format!(
                "[admins.bob]\nssh_keys = [\"{}\"]\n\n[secrets.one]",
                rsa_pub.trim()
            ),
        ),
    )
    .unwrap();
    let m = marker("rsa");
    assert!(f.set("one", &m).status.success());
    let file = f.path("secrets/one.age");
    assert_eq!(decrypt_with(&rsa, &file).unwrap(), m.as_bytes());
    assert!(String::from_utf8_lossy(&std::fs::read(&file).unwrap()).contains("-> ssh-rsa "));
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert!(
        stderr(&check).contains("secret `both`"),
        "{}",
        stderr(&check)
    );
    assert!(
        !stderr(&check).contains("secret `one`"),
        "{}",
        stderr(&check)
    );
    // Drop bob: `one` is now encrypted for a key the inventory no longer lists.
    std::fs::write(f.path("hearth.toml"), &fleet).unwrap();
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    let e = stderr(&check);
    assert!(e.contains("secret `one`: secrets/one.age is stale: encrypted for 1 key the inventory no longer lists"), "{e}");
    f.assert_no_plaintext(&m);
}

#[test]
fn files_written_by_the_age_cli_for_the_inventory_keys_check_ok() {
    // What `agenix -e` writes: age with the secret's SSH recipients.
    let f = Fleet::new();
    let keys: Vec<String> = [f.admin_key.as_path(), f.host_key("h1"), f.host_key("h2")]
        .iter()
        .map(|k| std::fs::read_to_string(k.with_extension("pub")).unwrap())
        .collect();
    let r = f.keys.path().join("both.txt");
    std::fs::write(&r, keys.concat()).unwrap();
    let r1 = f.keys.path().join("one.txt");
    std::fs::write(&r1, keys[..2].concat()).unwrap();
    std::fs::create_dir(f.path("secrets")).unwrap();
    for (name, rfile) in [("both", &r), ("one", &r1)] {
        let out = f.path(&format!("secrets/{name}.age"));
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo x | age -R {} -o {}",
                rfile.display(),
                out.display()
            ))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let check = f.hearth(&["secrets", "check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
}
