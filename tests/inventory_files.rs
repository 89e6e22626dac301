//! Input files that aren't what they seem: FIFOs, sockets, directories, symlink loops,
//! non-UTF-8 names, unreadable and oversized files, a catalog template fighting
//! hearth's own settings, and the no-op stamp. Each case runs the real binary with a
//! deadline, so a regression that blocks fails the test instead of hanging it, and
//! asserts the exact outcome. (These can't live in tests/bad_inputs: git keeps none of
//! FIFOs, sockets or unreadable files.)

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A copy of the repository's example fleet (the inputs only).
fn example_fleet() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for item in ["hearth.toml", "hosts", "modules", "secrets"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(src.join(item))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "copying {item}");
    }
    // Outputs of an earlier gen in the source tree must not leak into the copy.
    let _ = std::fs::remove_file(dir.path().join("secrets/secrets.nix"));
    dir
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `hearth -C root args…`, killed (and the test failed) after 20 s. `wrap` runs it
/// through another command (`unshare -U`).
fn hearth_with(wrap: &[&str], root: &Path, args: &[&str]) -> Run {
    let exe = env!("CARGO_BIN_EXE_hearth");
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let start = Instant::now();
    let mut child = cmd
        .arg("-C")
        .arg(root)
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the pipes on threads so a chatty child can't block on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "hearth {args:?} in {} did not finish in 20 s",
                root.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        took: start.elapsed(),
    };
    assert!(!run.stderr.contains("panicked"), "panic:\n{}", run.stderr);
    run
}

fn hearth(root: &Path, args: &[&str]) -> Run {
    hearth_with(&[], root, args)
}

/// The `error: …` headers of a rendered report, without the count line.
fn errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        // Not the count line (`3 errors in 2 files`).
        .filter(|l| {
            !l.split(' ')
                .next()
                .is_some_and(|w| w.parse::<usize>().is_ok())
        })
        .collect()
}

/// `check` fails with exactly `expected` (message, location) errors, and `gen` fails
/// too without writing anything.
fn refused(root: &Path, expected: &[(&str, &str)]) {
    let run = hearth(root, &["check"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let found = errors(&run.stderr);
    let wanted: Vec<&str> = expected.iter().map(|(m, _)| *m).collect();
    assert_eq!(found, wanted, "{}", run.stderr);
    for (_, at) in expected {
        assert!(
            run.stderr.contains(&format!("--> {at}\n")),
            "no location {at}:\n{}",
            run.stderr
        );
    }
    let n = expected.len();
    let count = format!("error: {n} error{} in ", if n == 1 { "" } else { "s" });
    assert!(run.stderr.contains(&count), "{}", run.stderr);
    let gen = hearth(root, &["gen"]);
    assert_eq!(gen.code, Some(1), "{}", gen.stderr);
    assert!(!root.join("generated").exists(), "gen wrote generated/");
    for (m, _) in expected {
        assert!(gen.stderr.contains(m), "gen lacks `{m}`:\n{}", gen.stderr);
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn a_fifo_as_hearth_toml_is_refused_without_blocking() {
    let repo = example_fleet();
    let fleet = repo.path().join("hearth.toml");
    std::fs::remove_file(&fleet).unwrap();
    mkfifo(&fleet);
    let msg = format!(
        "cannot read `hearth.toml` in `{}`: it is a FIFO (named pipe), not a regular file",
        repo.path().display()
    );
    refused(repo.path(), &[(&msg, "hearth.toml:1:1")]);
}

#[test]
fn a_directory_as_hearth_toml_is_refused_with_its_name() {
    let repo = example_fleet();
    let fleet = repo.path().join("hearth.toml");
    std::fs::remove_file(&fleet).unwrap();
    std::fs::create_dir(&fleet).unwrap();
    let msg = format!(
        "cannot read `hearth.toml` in `{}`: it is a directory, not a regular file",
        repo.path().display()
    );
    refused(repo.path(), &[(&msg, "hearth.toml:1:1")]);
}

#[test]
fn fifos_in_hosts_are_refused_without_blocking() {
    let repo = example_fleet();
    mkfifo(&repo.path().join("hosts/pipe.toml"));
    mkfifo(&repo.path().join("hosts/notes"));
    refused(
        repo.path(),
        &[
            (
                "`hosts/notes` is a FIFO (named pipe), not a regular file",
                "hosts/notes:1:1",
            ),
            (
                "`hosts/pipe.toml` is a FIFO (named pipe), not a regular file",
                "hosts/pipe.toml:1:1",
            ),
        ],
    );
}

#[test]
fn a_socket_in_hosts_is_refused() {
    let repo = example_fleet();
    let _listener = std::os::unix::net::UnixListener::bind(repo.path().join("hosts/s.toml"))
        .expect("bind a socket");
    refused(
        repo.path(),
        &[(
            "`hosts/s.toml` is a socket, not a regular file",
            "hosts/s.toml:1:1",
        )],
    );
}

#[test]
fn a_symlink_loop_in_hosts_is_refused() {
    let repo = example_fleet();
    let hosts = repo.path().join("hosts");
    std::os::unix::fs::symlink("b.toml", hosts.join("a.toml")).unwrap();
    std::os::unix::fs::symlink("a.toml", hosts.join("b.toml")).unwrap();
    refused(
        repo.path(),
        &[
            ("`hosts/a.toml` is a symlink loop", "hosts/a.toml:1:1"),
            ("`hosts/b.toml` is a symlink loop", "hosts/b.toml:1:1"),
        ],
    );
}

#[test]
fn a_subdirectory_of_hosts_is_refused_by_name() {
    let repo = example_fleet();
    std::fs::create_dir(repo.path().join("hosts/old")).unwrap();
    std::fs::write(repo.path().join("hosts/old/x.toml"), "system = 1\n").unwrap();
    refused(
        repo.path(),
        &[(
            "`hosts/old` is a directory, not a regular file",
            "hosts/old:1:1",
        )],
    );
    // A regular file that isn't a host file is still fine.
    std::fs::remove_dir_all(repo.path().join("hosts/old")).unwrap();
    std::fs::write(repo.path().join("hosts/README.md"), "notes\n").unwrap();
    let run = hearth(repo.path(), &["check"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[test]
fn a_non_utf8_file_name_is_reported_by_its_lossy_name() {
    let repo = example_fleet();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.toml");
    std::fs::write(repo.path().join("hosts").join(name), "system = 1\n").unwrap();
    refused(
        repo.path(),
        &[(
            "`hosts/caf\u{fffd}.toml` has a file name that is not valid UTF-8",
            "hosts/caf\u{fffd}.toml:1:1",
        )],
    );
}
/// As root, permission bits don't stop reads: run hearth in a user namespace, where
/// root's files belong to an unmapped user and mode 000 holds.
fn unprivileged() -> Vec<&'static str> {
    if unsafe { libc::geteuid() } == 0 {
        vec!["unshare", "-U"]
    } else {
        vec![]
    }
}

#[test]
fn an_unreadable_host_file_gives_one_error() {
    let repo = example_fleet();
    // Other hosts refer to helios64 (backups, builds): no follow-up errors about them.
    let file = repo.path().join("hosts/helios64.toml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let run = hearth_with(&unprivileged(), repo.path(), &["check"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(
        errors(&run.stderr),
        ["`hosts/helios64.toml` cannot be read: Permission denied (os error 13)"],
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--> hosts/helios64.toml:1:1\n"));
    assert!(run.stderr.contains("error: 1 error in 1 file"));
}

#[test]
fn an_unreadable_hosts_directory_is_not_called_missing() {
    let repo = example_fleet();
    let hosts = repo.path().join("hosts");
    std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o000)).unwrap();
    let run = hearth_with(&unprivileged(), repo.path(), &["check"]);
    std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(
        errors(&run.stderr),
        ["`hosts/` cannot be read: Permission denied (os error 13)"],
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("no `hosts/` directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn hosts_as_a_file_is_not_a_directory() {
    let repo = example_fleet();
    let hosts = repo.path().join("hosts");
    std::fs::remove_dir_all(&hosts).unwrap();
    std::fs::write(&hosts, "").unwrap();
    let run = hearth(repo.path(), &["check"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(errors(&run.stderr), ["`hosts/` is not a directory"]);
}

#[test]
fn an_oversized_host_file_is_refused_unread() {
    let repo = example_fleet();
    let text: String = (0..500_000)
        .map(|i| format!("unknown_key_{i} = 1\n"))
        .collect();
    assert!(text.len() > 10_000_000);
    std::fs::write(repo.path().join("hosts/big.toml"), &text).unwrap();
    let run = hearth(repo.path(), &["check"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(
        errors(&run.stderr),
        [format!(
            "`hosts/big.toml` is {} bytes; the limit is 1048576 bytes",
            text.len()
        )],
    );
    assert!(run.stderr.len() < 2_000, "{}", run.stderr);
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
}

#[test]
fn fifty_thousand_unknown_keys_print_a_bounded_report() {
    let repo = example_fleet();
    let mut text = String::from("system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\n");
    let mut n = 0;
    while text.len() < 1_000_000 {
        text.push_str(&format!("unknown_key_{n} = 1\n"));
        n += 1;
    }
    std::fs::write(repo.path().join("hosts/keys.toml"), &text).unwrap();
    let run = hearth(repo.path(), &["check"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    // One error per key is counted; the first 50 diagnostics are shown, then a count.
    let missing_ssh = 1;
    let total = n + missing_ssh;
    assert!(
        run.stderr.contains(&format!(
            "note: … and {} more diagnostics not shown; fix the ones above and run again\n",
            total - 50
        )),
        "{}",
        &run.stderr[run.stderr.len().saturating_sub(2000)..]
    );
    assert!(
        run.stderr
            .ends_with(&format!("error: {total} errors in 1 file\n")),
        "{}",
        &run.stderr[run.stderr.len().saturating_sub(2000)..]
    );
    assert_eq!(run.stderr.matches("\nerror: unknown key").count(), 49);
    assert!(run.stderr.len() < 60_000, "{} bytes", run.stderr.len());
    let json = hearth(repo.path(), &["check", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["diagnostics"].as_array().unwrap().len(), 50);
    assert_eq!(v["omitted"], total - 50);
}

/// A repo-local service whose template sets `networking.firewall.enable`, used by nixos.
fn with_firewall_template(root: &Path) {
    let catalog = root.join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(catalog.join("fw.toml"), "description = \"firewall off\"\n").unwrap();
    std::fs::write(
        catalog.join("fw.nix.tera"),
        "{\n  networking.firewall.enable = false;\n}\n",
    )
    .unwrap();
    let host = root.join("hosts/nixos.toml");
    let mut text = std::fs::read_to_string(&host).unwrap();
    text.push_str("\n[services.fw]\n");
    std::fs::write(&host, text).unwrap();
}

const FIREWALL_CONFLICT: &str = "catalog/fw.nix.tera: service `fw` (on hosts/nixos.toml) sets \
    `networking.firewall.enable`, which hearth sets itself: `networking.firewall.enable` is set \
    twice with different values: false and true; remove it from the template";

#[test]
fn a_template_setting_what_hearth_sets_is_a_diagnostic_in_check_and_gen() {
    let repo = example_fleet();
    with_firewall_template(repo.path());
    refused(
        repo.path(),
        &[(FIREWALL_CONFLICT, "catalog/fw.nix.tera:2:3")],
    );
    let run = hearth(repo.path(), &["check", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["diagnostics"][0]["message"], FIREWALL_CONFLICT);
    assert_eq!(v["diagnostics"][0]["primary"]["line"], 2);
}

#[test]
fn a_catalog_fifo_is_refused_by_name() {
    let repo = example_fleet();
    std::fs::create_dir(repo.path().join("catalog")).unwrap();
    mkfifo(&repo.path().join("catalog/x.toml"));
    for cmd in ["check", "gen"] {
        let run = hearth(repo.path(), &[cmd]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(
            run.stderr,
            "error: `catalog/x.toml` is a FIFO (named pipe), not a regular file; `catalog/` holds only catalog files\n"
        );
    }
}

fn generated_ok(root: &Path) {
    let run = hearth(root, &["gen"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let again = hearth(root, &["gen"]);
    assert_eq!(again.stdout, "generated files are up to date\n");
}

#[test]
fn deleting_a_listed_module_invalidates_the_stamp() {
    let repo = example_fleet();
    generated_ok(repo.path());
    std::fs::remove_file(repo.path().join("modules/nixos/ryzen.nix")).unwrap();
    let run = hearth(repo.path(), &["gen"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(!run.stdout.contains("up to date"), "{}", run.stdout);
    assert!(
        run.stderr.contains("--> hosts/nixos.toml:13:12"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_new_file_name_in_hosts_invalidates_the_stamp() {
    let repo = example_fleet();
    generated_ok(repo.path());
    let name = std::ffi::OsStr::from_bytes(b"\xff.toml");
    std::fs::write(repo.path().join("hosts").join(name), "").unwrap();
    let run = hearth(repo.path(), &["gen"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("`hosts/\u{fffd}.toml` has a file name that is not valid UTF-8"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(repo.path().join("hosts").join(name)).unwrap();
    // A subdirectory (gen used to fail with a bare "Is a directory (os error 21)").
    std::fs::create_dir(repo.path().join("hosts/old")).unwrap();
    let run = hearth(repo.path(), &["gen"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("`hosts/old` is a directory, not a regular file"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("os error 21"), "{}", run.stderr);
}

#[test]
fn a_fifo_as_the_stamp_does_not_block_gen() {
    let repo = example_fleet();
    std::fs::create_dir(repo.path().join(".hearth")).unwrap();
    mkfifo(&repo.path().join(".hearth/gen-stamp"));
    let run = hearth(repo.path(), &["gen"]);
    // The stamp is replaced by a regular file once gen has written.
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let meta = std::fs::symlink_metadata(repo.path().join(".hearth/gen-stamp")).unwrap();
    assert!(meta.is_file());
}
