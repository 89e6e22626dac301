//! `hearth update` on a real flake whose inputs are local git repositories.

mod update_support;
use update_support::*;

fn flake_nix(system: &str, inputs: &[&str], base: &std::path::Path) -> String {
    let decls: String = inputs
        .iter()
        .map(|i| {
            format!(
                "  inputs.{i} = {{ url = \"git+file://{}\"; flake = false; }};\n",
                base.join(i).display()
            )
        })
        .collect();
    let args = inputs.join(", ");
    // A NixOS-shaped toplevel from raw derivations: `hello`'s version is read from input
    // `a`, so updating `a` upgrades a package in environment.systemPackages.
    format!(
        r#"{{
{decls}  outputs = {{ self, {args} }}:
    let
      mk = name: script: derivation {{ inherit name; system = "{system}"; builder = "/bin/sh"; args = [ "-c" script ]; }};
      ver = builtins.replaceStrings [ "\n" ] [ "" ] (builtins.readFile "${{a}}/version");
      # Version "broken" stands for an upstream change that no longer compiles.
      hello = mk "hello-${{ver}}" "if [ ${{ver}} = broken ]; then echo 'error: hello.c:3: expected ;' >&2; exit 2; fi; echo hello ${{ver}} > $out";
      tool = mk "tool-2.0" "echo tool > $out";
      sw = mk "system-path" "PATH=/usr/bin:/bin; mkdir $out; ln -s ${{hello}} $out/hello";
      top = mk "nixos-system-box-1" "PATH=/usr/bin:/bin; mkdir $out; ln -s ${{sw}} $out/sw; ln -s ${{tool}} $out/tool";
    in {{ nixosConfigurations.box.config.system.build.toplevel = top; }};
}}
"#
    )
}

#[test]
fn update_reports_changed_added_removed_inputs_and_package_diff_and_commits() {
    let (_guard, base) = tempdir();
    let Some(nix_config) = offline_nix(&base) else {
        return;
    };
    let system = system();

    let a_old = git_repo(&base.join("a"), &[("version", "1.0\n")]);
    git_repo(&base.join("b"), &[("x", "b\n")]);
    let c_rev = git_repo(&base.join("c"), &[("x", "c\n")]);

    let repo = base.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("flake.nix"),
        flake_nix(&system, &["a", "b"], &base),
    )
    .unwrap();
    git_repo(
        &repo,
        &[("flake.nix", &flake_nix(&system, &["a", "b"], &base))],
    );
    nix(&repo, &["flake", "lock"], &nix_config);
    commit_files(
        &repo,
        &[(
            "flake.lock",
            &std::fs::read_to_string(repo.join("flake.lock")).unwrap(),
        )],
        "lock",
    );
    let start = git(&repo, &["rev-parse", "HEAD"]);

    // Upstream moves on; the repo drops `b` and gains `c`.
    let a_new = commit_files(&base.join("a"), &[("version", "1.1\n")], "bump");
    std::fs::write(
        repo.join("flake.nix"),
        flake_nix(&system, &["a", "c"], &base),
    )
    .unwrap();

    let body_path = base.join("body.md");
    let out = hearth(
        &repo,
        &[
            "update",
            "--output",
            body_path.to_str().unwrap(),
            "--commit",
            "--check-build",
        ],
        Some(&nix_config),
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "hearth update failed:\n{stderr}");
    let body = std::fs::read_to_string(&body_path).unwrap();
    println!("{body}");

    // Changed input: old → new short revisions, with dates.
    let row = body
        .lines()
        .find(|l| l.starts_with("| `a` |"))
        .unwrap_or_else(|| panic!("no row for a:\n{body}"));
    assert!(row.contains(&format!("`{}`", &a_old[..7])), "{row}");
    assert!(row.contains(&format!("`{}`", &a_new[..7])), "{row}");
    assert!(row.matches(" (20").count() == 2, "both dates: {row}");
    assert!(
        row.ends_with("| — |"),
        "git+file has no compare view: {row}"
    );
    // Added and removed inputs.
    let added = body
        .split("### Added inputs")
        .nth(1)
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        added.contains(&format!("- `c`: git+file://{}", base.join("c").display())),
        "{body}"
    );
    assert!(added.contains(&c_rev[..7]), "{body}");
    let removed = body
        .split("### Removed inputs")
        .nth(1)
        .unwrap_or_else(|| panic!("{body}"));
    assert!(removed.contains("- `b`:"), "{body}");
    // Per-host package diff, system packages first.
    assert!(body.contains("<summary><b>box</b>: 1 upgraded"), "{body}");
    let sys = body
        .split("**environment.systemPackages**")
        .nth(1)
        .unwrap_or_else(|| panic!("{body}"));
    assert!(sys.contains("| `hello` | upgraded | 1.0 | 1.1 |"), "{body}");

    // --commit: only flake.lock, on the branch, with a conventional message.
    assert_eq!(
        git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "flake-update"
    );
    assert_eq!(git(&repo, &["rev-parse", "HEAD~1"]), start);
    let msg = git(&repo, &["log", "-1", "--format=%B"]);
    assert!(msg.starts_with("chore(flake): update inputs\n"), "{msg}");
    assert!(
        msg.contains(&format!("- a: {} → {}", &a_old[..7], &a_new[..7])),
        "{msg}"
    );
    assert!(
        msg.contains("- c: added") && msg.contains("- b: removed"),
        "{msg}"
    );
    assert_eq!(
        git(&repo, &["show", "--name-only", "--format=", "HEAD"]),
        "flake.lock"
    );
    let committed = git(&repo, &["show", "HEAD:flake.lock"]);
    assert!(committed.contains(&a_new), "committed lock has the new rev");
}

#[test]
fn updating_one_input_uses_the_cli_of_the_local_nix() {
    let (_guard, base) = tempdir();
    let Some(nix_config) = offline_nix(&base) else {
        return;
    };
    let system = system();
    let a_old = git_repo(&base.join("a"), &[("version", "1.0\n")]);
    let b_old = git_repo(&base.join("b"), &[("x", "1\n")]);
    let repo = base.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("flake.nix"),
        flake_nix(&system, &["a", "b"], &base),
    )
    .unwrap();
    nix(&repo, &["flake", "lock"], &nix_config);
    let a_new = commit_files(&base.join("a"), &[("version", "2.0\n")], "bump a");
    commit_files(&base.join("b"), &[("x", "2\n")], "bump b");

    let out = hearth(&repo, &["update", "a", "--no-diff"], Some(&nix_config));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = text(&out.stdout);
    assert!(
        body.contains(&format!("| `a` | `{}`", &a_old[..7])),
        "{body}"
    );
    assert!(body.contains(&a_new[..7]), "{body}");
    assert!(!body.contains("| `b` |"), "b was not asked for:\n{body}");
    let lock = std::fs::read_to_string(repo.join("flake.lock")).unwrap();
    assert!(lock.contains(&b_old), "b stays locked at its old rev");
    assert!(
        !body.contains("## Hosts"),
        "--no-diff builds nothing:\n{body}"
    );
}

#[test]
fn check_build_reports_the_failing_derivation_and_exits_nonzero() {
    let (_guard, base) = tempdir();
    let Some(nix_config) = offline_nix(&base) else {
        return;
    };
    let system = system();
    git_repo(&base.join("a"), &[("version", "1.0\n")]);
    git_repo(&base.join("b"), &[("x", "1\n")]);
    let repo = base.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("flake.nix"),
        flake_nix(&system, &["a", "b"], &base),
    )
    .unwrap();
    nix(&repo, &["flake", "lock"], &nix_config);
    let a_new = commit_files(&base.join("a"), &[("version", "broken\n")], "break");

    let out = hearth(&repo, &["update", "--check-build"], Some(&nix_config));
    let body = text(&out.stdout);
    println!("{body}");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("do not build with the new lock"));
    assert!(
        body.contains("❌ Does not build with the new lock: box"),
        "{body}"
    );
    let section = body
        .split("<summary><b>box</b>: ❌ does not build with the new lock</summary>")
        .nth(1)
        .unwrap();
    let drv_line = section
        .lines()
        .find(|l| l.starts_with("Failing derivation: `/nix/store/"))
        .unwrap();
    assert!(drv_line.ends_with("-hello-broken.drv`"), "{drv_line}");
    assert!(
        section.contains("error: hello.c:3: expected ;"),
        "log tail: {body}"
    );
    // The lock is updated anyway, so the PR shows what broke.
    assert!(std::fs::read_to_string(repo.join("flake.lock"))
        .unwrap()
        .contains(&a_new));
}
