//! `hearth image --dry-run` on the repository's own fleet: where the Helios64's image builds
//! (its builder, emulated), the exact nix command, and how to write it. Needs `nix` (to read
//! the local Nix's systems, as placement does); changes nothing.

use std::process::Command;

#[test]
fn image_dry_run_builds_on_the_builder_and_prints_the_write_commands() {
    if Command::new("sh")
        .args(["-c", "command -v nix"])
        .output()
        .map_or(true, |o| o.stdout.is_empty())
    {
        println!("SKIPPED: nix is not installed");
        return;
    }
    let repo = env!("CARGO_MANIFEST_DIR");
    let before = std::fs::read_to_string(format!("{repo}/hosts/helios64.toml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["-C", repo, "image", "helios64", "--dry-run"])
        .env(
            "NIX_CONFIG",
            "experimental-features = nix-command flakes\nsubstituters =\n",
        )
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("build: aarch64-linux system on builder nixos (emulated)"),
        "{text}"
    );
    assert!(text.contains("--max-jobs 0 "), "{text}");
    assert!(
        text.contains("--out-link result-helios64 --builders 'ssh://nixbuild@"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}#images.helios64\n",
            std::fs::canonicalize(repo).unwrap().display()
        )),
        "{text}"
    );
    assert!(
        text.contains("zstdcat result-helios64/sd-image/*.img.zst | sudo dd of=/dev/sdX bs=4M conv=fsync status=progress"),
        "{text}"
    );
    assert!(
        text.contains("of=/dev/disk/by-id/mmc-AJTD4R_0x5c3a9e71 "),
        "{text}"
    );
    let after = std::fs::read_to_string(format!("{repo}/hosts/helios64.toml")).unwrap();
    assert_eq!(before, after, "a dry run changes nothing");
}
