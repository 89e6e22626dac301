//! hearth on a stock Nix: a config that enables no experimental features (Debian's 2.8 as
//! installed, or any Nix whose nix.conf does not list `nix-command flakes`). hearth passes
//! `--extra-experimental-features` itself, so `update` and `deploy --dry-run` still work.

mod update_support;
use update_support::*;

/// An offline Nix config that explicitly enables no experimental feature (an empty
/// `experimental-features` also overrides whatever /etc/nix/nix.conf says).
fn stock_config(base: &std::path::Path) -> Option<String> {
    let offline = offline_nix(base)?;
    Some(offline.replace(
        "experimental-features = nix-command flakes\n",
        "experimental-features =\n",
    ))
}

/// The config really is stock: Nix itself refuses the new CLI under it.
fn assert_nix_refuses_new_cli(dir: &std::path::Path, config: &str) {
    let out = std::process::Command::new("nix")
        .current_dir(dir)
        .args(["flake", "metadata"])
        .env("NIX_CONFIG", config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("experimental Nix feature"), "{err}");
}

#[test]
fn update_works_on_a_stock_nix() {
    let (_guard, base) = tempdir();
    let Some(stock) = stock_config(&base) else {
        return;
    };
    let enabled = offline_nix(&base).unwrap();
    let a_old = git_repo(&base.join("a"), &[("version", "1.0\n")]);
    let repo = base.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("flake.nix"),
        format!(
            "{{ inputs.a = {{ url = \"git+file://{}\"; flake = false; }};\n  outputs = {{ self, a }}: {{ }}; }}\n",
            base.join("a").display()
        ),
    )
    .unwrap();
    nix(&repo, &["flake", "lock"], &enabled);
    assert_nix_refuses_new_cli(&repo, &stock);
    let a_new = commit_files(&base.join("a"), &[("version", "2.0\n")], "bump a");

    let out = hearth(&repo, &["update", "a", "--no-diff"], Some(&stock));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = text(&out.stdout);
    assert!(
        body.contains(&a_old[..7]) && body.contains(&a_new[..7]),
        "{body}"
    );
    let lock = std::fs::read_to_string(repo.join("flake.lock")).unwrap();
    assert!(lock.contains(&a_new), "the lock moved to the new rev");
}

#[test]
fn deploy_dry_run_works_on_a_stock_nix() {
    let (_guard, root) = tempdir();
    let Some(stock) = stock_config(&root) else {
        return;
    };
    std::fs::create_dir_all(root.join("hosts")).unwrap();
    std::fs::create_dir_all(root.join("flake")).unwrap();
    std::fs::write(root.join("hearth.toml"), "domain = \"lab.test\"\n").unwrap();
    std::fs::write(
        root.join("hosts/web.toml"),
        "system = \"x86_64-linux\"\nhardware = \"lab\"\nhost_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOL7e3tGVbE8miB+hYF+hWip1ncEdoBQxnYWwzhOt9U1\"\n[ssh]\naddress = \"127.0.0.11\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("flake/flake.nix"),
        "{ outputs = { self }: { nixosConfigurations.web.config.system.build.toplevel = derivation {\n  name = \"web\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"PATH=/usr/bin:/bin; mkdir -p $out\" ]; }; }; }\n",
    )
    .unwrap();
    assert_nix_refuses_new_cli(&root.join("flake"), &stock);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(&root)
        .args(["deploy", "web", "--dry-run"])
        .env("NIX_CONFIG", &stock)
        .env("HEARTH_FLAKE", format!("path:{}/flake", root.display()))
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("web"), "{stdout}");
    assert!(!text(&out.stderr).contains("experimental Nix feature"));
}
