//! Real closures: two raw-derivation toplevels built with `nix build`, diffed by the
//! library and by `hearth diff --from --to`.

mod update_support;
use hearth::update::closure_diff::{ChangeKind, HostDiff};
use std::path::Path;
use update_support::*;

/// A NixOS-shaped toplevel: `sw` → system-path referencing `system`, plus `other`
/// packages in the closure. `payload` bytes go into the toplevel itself.
fn toplevel_expr(system: &str, sys_pkgs: &[&str], other: &[&str], payload: usize) -> String {
    let pkg = |n: &&str| format!("(mk \"{n}\" \"echo {n} > $out\")");
    let links = |v: &[&str]| -> String {
        v.iter()
            .enumerate()
            .map(|(i, n)| format!(" ln -s ${{{}}} $out/p{i};", pkg(n)))
            .collect()
    };
    format!(
        r#"let
  mk = name: script: derivation {{ inherit name; system = "{system}"; builder = "/bin/sh"; args = [ "-c" script ]; }};
  sw = mk "system-path" "PATH=/usr/bin:/bin; mkdir $out;{sys}";
in mk "nixos-system-box-1" "PATH=/usr/bin:/bin; mkdir $out; ln -s ${{sw}} $out/sw;{oth} head -c {payload} /dev/zero > $out/payload"
"#,
        sys = links(sys_pkgs),
        oth = links(other),
    )
}

fn build(dir: &Path, name: &str, expr: &str, nix_config: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, expr).unwrap();
    let json = nix(
        dir,
        &["build", "--no-link", "--json", "-f", file.to_str().unwrap()],
        nix_config,
    );
    hearth::nix::flake::parse_build_json(&json).unwrap()
}

#[test]
fn real_closures_diff_by_package() {
    let (_g, base) = tempdir();
    let Some(nix_config) = offline_nix(&base) else {
        return;
    };
    let system = system();
    let old = build(
        &base,
        "old.nix",
        &toplevel_expr(
            &system,
            &["htop-3.3.0", "samba-4.20.1"],
            &["linux-6.12.40", "python3-3.12.4", "zlib-1.3.1"],
            1000,
        ),
        &nix_config,
    );
    let new = build(
        &base,
        "new.nix",
        &toplevel_expr(
            &system,
            &["btop-1.4.0", "samba-4.19.9"],
            &[
                "linux-6.12.44",
                "python3-3.11.9",
                "python3-3.12.4",
                "zlib-1.3.1",
            ],
            200_000,
        ),
        &nix_config,
    );

    // Library level: closures come from the real store via `nix path-info`.
    std::env::set_var("NIX_CONFIG", &nix_config);
    let old_c = hearth::nix::closure::closure(&old).unwrap();
    let new_c = hearth::nix::closure::closure(&new).unwrap();
    assert!(old_c.iter().any(|p| p.path == old) && new_c.iter().any(|p| p.path == new));
    let d = HostDiff::new(&old_c, &old, &new_c, &new);
    let kind = |n: &str| d.diff.changes.iter().find(|c| c.name == n).map(|c| c.kind);
    assert_eq!(kind("linux"), Some(ChangeKind::Upgraded));
    assert_eq!(kind("samba"), Some(ChangeKind::Downgraded));
    assert_eq!(kind("btop"), Some(ChangeKind::Added));
    assert_eq!(kind("htop"), Some(ChangeKind::Removed));
    assert_eq!(kind("zlib"), None);
    let py = d.diff.changes.iter().find(|c| c.name == "python3").unwrap();
    assert_eq!(py.old, vec!["3.12.4"]);
    assert_eq!(py.new, vec!["3.11.9", "3.12.4"]);
    assert_eq!(py.kind, ChangeKind::Changed);
    let sum =
        |c: &[hearth::update::closure_diff::ClosurePath]| c.iter().map(|p| p.nar_size).sum::<u64>();
    assert_eq!(
        (d.diff.old_size, d.diff.new_size),
        (sum(&old_c), sum(&new_c))
    );
    assert!(
        d.diff.size_delta() >= 199_000,
        "payload grew: {}",
        d.diff.size_delta()
    );
    let sys = d.system_packages.as_ref().expect("system-path found");
    assert!(
        sys.contains("htop")
            && sys.contains("btop")
            && sys.contains("samba")
            && !sys.contains("linux")
    );

    // The binary: `hearth diff --from --to`.
    let out = hearth(
        &base,
        &["diff", "--from", &old, "--to", &new],
        Some(&nix_config),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    println!("{stdout}");
    let sys_part = stdout
        .split("environment.systemPackages:")
        .nth(1)
        .unwrap()
        .split("other packages:")
        .next()
        .unwrap();
    assert!(sys_part.contains("[A] btop  — → 1.4.0"), "{stdout}");
    assert!(sys_part.contains("[D] samba  4.20.1 → 4.19.9"), "{stdout}");
    assert!(sys_part.contains("[R] htop  3.3.0 → —"), "{stdout}");
    let other = stdout.split("other packages:").nth(1).unwrap();
    assert!(other.contains("[U] linux  6.12.40 → 6.12.44"), "{stdout}");
    assert!(
        other.contains("[C] python3  3.12.4 → 3.11.9, 3.12.4"),
        "{stdout}"
    );
    assert!(
        stdout.starts_with(
            "system: 1 upgraded, 1 downgraded, 1 changed, 1 added, 1 removed; closure "
        ),
        "{stdout}"
    );
    assert!(stdout.lines().next().unwrap().contains("(+"), "{stdout}");
}
