//! Old/new flake.lock fixtures → pull-request body (no Nix needed).

use hearth::update::body::{commit_message, render_body};
use hearth::update::lock::{diff_locks, FlakeLock};
use std::path::Path;

fn lock(name: &str, text: &str) -> FlakeLock {
    FlakeLock::parse(text, Path::new(name)).unwrap()
}

#[test]
fn fixture_locks_give_the_expected_body() {
    let old = lock(
        "old.flake.lock",
        include_str!("update_fixtures/old.flake.lock"),
    );
    let new = lock(
        "new.flake.lock",
        include_str!("update_fixtures/new.flake.lock"),
    );
    let d = diff_locks(&old, &new);
    let body = render_body(&d, &[]);
    println!("{body}");

    let expected_rows = [
        "| `home-manager` | `aaaaaaa` (2024-10-27) | `fffffff` (2024-11-19) | [compare](https://github.com/nix-community/home-manager/compare/aaaaaaa1111111111111111111111111111111111...fffffff6666666666666666666666666666666666) |",
        "| `nixpkgs` | `ccccccc` (2024-11-07) | `1234567` (2024-11-21) | [compare](https://github.com/NixOS/nixpkgs/compare/ccccccc3333333333333333333333333333333333...1234567888888888888888888888888888888888) |",
        "| `sops` | `eeeeeee` (2024-08-30) | `abcdef0` (2024-11-30) | [compare](https://git.sr.ht/~someone/sops/log/abcdef0999999999999999999999999999999999) |",
    ];
    for row in expected_rows {
        assert!(body.contains(row), "missing row {row}\n{body}");
    }
    // Unchanged inputs are not listed.
    assert!(!body.contains("| `nixpkgs-stable` |"), "{body}");
    assert!(
        body.contains(
            "### Added inputs\n\n- `disko`: gitlab:nix-community/disko at `9999999` (2024-11-20)\n"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "### Removed inputs\n\n- `agenix`: github:ryantm/agenix at `bbbbbbb` (2024-07-03)\n"
        ),
        "{body}"
    );
    // `follows` retargeted; the follows of added/removed inputs are not noise here.
    assert!(
        body.contains("### Changed `follows`\n\n- `home-manager/nixpkgs`: follows `nixpkgs` → follows `nixpkgs-stable`\n"),
        "{body}"
    );
    assert!(
        !body.contains("`agenix/nixpkgs`") && !body.contains("`disko/nixpkgs`"),
        "{body}"
    );

    let msg = commit_message(&d);
    assert!(msg.starts_with("chore(flake): update inputs\n\n"), "{msg}");
    assert!(msg.contains("- nixpkgs: ccccccc → 1234567\n"), "{msg}");
    assert!(
        msg.contains("- disko: added at 9999999\n") && msg.contains("- agenix: removed"),
        "{msg}"
    );
}

#[test]
fn gitlab_compare_link_uses_the_host() {
    let old = lock("old", include_str!("update_fixtures/new.flake.lock"));
    let text = include_str!("update_fixtures/new.flake.lock").replace(
        "9999999777777777777777777777777777777777",
        "8888888777777777777777777777777777777777",
    );
    let new = lock("new", &text);
    let body = render_body(&diff_locks(&old, &new), &[]);
    assert!(
        body.contains("[compare](https://gitlab.example.org/nix-community/disko/-/compare/9999999777777777777777777777777777777777...8888888777777777777777777777777777777777)"),
        "{body}"
    );
}

#[test]
fn same_lock_reports_no_change() {
    let l = lock("l", include_str!("update_fixtures/old.flake.lock"));
    let d = diff_locks(&l, &l);
    assert!(d.is_empty());
    assert!(render_body(&d, &[]).contains("No flake input changed."));
}
