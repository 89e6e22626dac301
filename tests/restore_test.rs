//! modules/nixos/restic-restore-test.sh against real restic repositories (Debian's restic),
//! under the shell options nixpkgs' writeShellApplication uses: a healthy repository passes
//! and reports its files, a path missing from the snapshot, a corrupted pack and a wrong
//! password each fail with metric 0 and exit status 1. Skips without restic and jq (fails
//! under HEARTH_REQUIRE_EVAL=1).

mod checkouts;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("modules/nixos/restic-restore-test.sh")
}

fn have_tools() -> bool {
    for tool in ["restic", "jq"] {
        if Command::new(tool).arg("version").output().is_err()
            && Command::new(tool).arg("--version").output().is_err()
        {
            let why = format!("`{tool}` is not installed (Debian: restic, jq)");
            assert!(!checkouts::strict(), "HEARTH_REQUIRE_EVAL=1 but {why}");
            println!("SKIPPED: {why}");
            return false;
        }
    }
    true
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A repository `repos/client1` holding one snapshot of `data/`.
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(f.p("data/sub dir")).unwrap();
        std::fs::create_dir_all(f.p("textfile")).unwrap();
        std::fs::write(f.p("data/a.txt"), "hello\n").unwrap();
        std::fs::write(f.p("data/sub dir/b [1].bin"), vec![7u8; 70_000]).unwrap();
        std::fs::write(f.p("data/sub dir/c*.txt"), "glob characters in a name\n").unwrap();
        std::fs::write(f.p("password"), "correct horse").unwrap();
        f.restic(&["init"]);
        let data = f.p("data");
        f.restic(&["backup", data.to_str().unwrap()]);
        f
    }

    fn restic(&self, args: &[&str]) {
        let out = Command::new("restic")
            .arg("-r")
            .arg(self.p("repos/client1"))
            .args(args)
            .env("RESTIC_PASSWORD_FILE", self.p("password"))
            .env("RESTIC_CACHE_DIR", self.p("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restic {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run the script over `paths` of client1; (exit code, metrics file, stderr).
    fn run(&self, paths: &[&Path], password: &Path) -> (i32, String, String) {
        let sets: Vec<serde_json::Value> = paths
            .iter()
            .map(|p| {
                serde_json::json!({
                    "client": "client1",
                    "repository": self.p("repos/client1"),
                    "path": p,
                })
            })
            .collect();
        let out = Command::new("bash")
            .args(["-o", "errexit", "-o", "nounset", "-o", "pipefail"])
            .arg(script())
            .env(
                "HEARTH_RESTORE_SETS",
                serde_json::Value::from(sets).to_string(),
            )
            .env("HEARTH_RESTORE_SAMPLE", "2")
            .env("HEARTH_RESTORE_SCRATCH", self.p("scratch"))
            .env("HEARTH_RESTORE_TEXTFILE_DIR", self.p("textfile"))
            .env("RESTIC_PASSWORD_FILE", password)
            .env("RESTIC_CACHE_DIR", self.p("cache"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("unbound variable"), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(self.p("scratch")).unwrap().collect();
        assert!(
            left.is_empty(),
            "restored files left in the scratch directory"
        );
        let metrics =
            std::fs::read_to_string(self.p("textfile/restore-test.prom")).unwrap_or_default();
        (out.status.code().unwrap_or(-1), metrics, stderr)
    }
}

fn labels(f: &Fixture, rel: &str) -> String {
    format!("client=\"client1\",path=\"{}\"", f.p(rel).display())
}

#[test]
fn a_healthy_repository_passes_and_reports_its_sample() {
    if !have_tools() {
        return;
    }
    let f = Fixture::new();
    let (code, metrics, stderr) = f.run(&[&f.p("data")], &f.p("password"));
    assert_eq!(code, 0, "{stderr}");
    let l = labels(&f, "data");
    assert!(
        metrics.contains(&format!("hearth_restore_test_success{{{l}}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("hearth_restore_test_files{{{l}}} 2")),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_restore_test_last_run_timestamp_seconds "),
        "{metrics}"
    );
}

/// File names with spaces and glob characters are restored literally (all three files).
#[test]
fn odd_file_names_are_restored_literally() {
    if !have_tools() {
        return;
    }
    let f = Fixture::new();
    let sub = f.p("data/sub dir");
    let (code, metrics, stderr) = f.run(&[&sub], &f.p("password"));
    assert_eq!(code, 0, "{stderr}");
    let l = labels(&f, "data/sub dir");
    assert!(
        metrics.contains(&format!("hearth_restore_test_files{{{l}}} 2")),
        "{metrics}"
    );
}

#[test]
fn a_path_missing_from_the_snapshot_fails() {
    if !have_tools() {
        return;
    }
    let f = Fixture::new();
    let (code, metrics, stderr) = f.run(&[&f.p("data"), &f.p("elsewhere")], &f.p("password"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        metrics.contains(&format!(
            "hearth_restore_test_success{{{}}} 1",
            labels(&f, "data")
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "hearth_restore_test_success{{{}}} 0",
            labels(&f, "elsewhere")
        )),
        "{metrics}"
    );
    assert!(stderr.contains("holds no file under"), "{stderr}");
}

#[test]
fn a_corrupted_pack_fails() {
    if !have_tools() {
        return;
    }
    let f = Fixture::new();
    // Garble every data pack: restoring anything must now fail verification.
    for entry in walk(&f.p("repos/client1/data")) {
        let len = std::fs::metadata(&entry).unwrap().len() as usize;
        let mut perm = std::fs::metadata(&entry).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&entry, perm).unwrap();
        std::fs::write(&entry, vec![0u8; len]).unwrap();
    }
    let (code, metrics, stderr) = f.run(&[&f.p("data")], &f.p("password"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        metrics.contains(&format!(
            "hearth_restore_test_success{{{}}} 0",
            labels(&f, "data")
        )),
        "{metrics}"
    );
}

#[test]
fn a_wrong_password_fails() {
    if !have_tools() {
        return;
    }
    let f = Fixture::new();
    std::fs::write(f.p("wrong"), "battery staple").unwrap();
    let (code, metrics, stderr) = f.run(&[&f.p("data")], &f.p("wrong"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        metrics.contains(&format!(
            "hearth_restore_test_success{{{}}} 0",
            labels(&f, "data")
        )),
        "{metrics}"
    );
    assert!(
        stderr.contains("cannot list the latest snapshot"),
        "{stderr}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
