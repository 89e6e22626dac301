//! `hearth deploy` of an aarch64-linux lab host from an x86_64 deployer: the plan places the
//! build on the lab builder and says why; the deploy builds there, the builder copies to the
//! target, the host activates, and the deployer's store never holds the system. A builder
//! that is down fails the deploy with its name, and no host is touched.
//! Needs root; otherwise prints `SKIPPED:`.

mod lab_support;
use hearth::lab::{regenerate, Lab, LabConfig};
use lab_support::DownOnDrop;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn edit_host(lab: &Lab, name: &str, f: impl FnOnce(String) -> String) {
    let path = lab.fleet_dir().join("hosts").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, f(text)).unwrap();
}

fn hearth(lab: &Lab, args: &[&str]) -> Output {
    let id = lab.identity_path().display().to_string();
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(lab.fleet_dir())
        .args(args)
        .args([
            "--flake",
            &lab.flake_ref(),
            "--ssh-identity",
            &id,
            "--builder-identity",
            &id,
        ])
        .env("NIX_CONFIG", lab.nix_config())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn valid_locally(path: &str) -> bool {
    Command::new("nix")
        .args(["path-info", path])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn deploy_places_aarch64_host_on_the_lab_builder() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cfg = LabConfig::new(
        "bdep",
        "10.77.234.0".parse().unwrap(),
        dir.path().join("lab"),
    )
    .unwrap();
    Lab::down(&cfg).unwrap();
    let _guard = DownOnDrop(cfg.clone());
    let lab = Lab::up(cfg.clone(), 4, &["h1".to_string()]).unwrap();
    let rev = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 1_000_000) as u32;
    edit_host(&lab, "h2", |t| {
        t.replacen("system = \"x86_64-linux\"", "system = \"aarch64-linux\"", 1)
            .replacen("revision = 0", &format!("revision = {rev}"), 1)
    });
    edit_host(&lab, "h4", |t| {
        t.replacen("system = \"x86_64-linux\"", "system = \"aarch64-linux\"", 1)
            .replacen("revision = 0", &format!("revision = {rev}"), 1)
    });
    regenerate(lab.fleet_dir()).unwrap();
    println!("[{:>6.2}s] lab up", t0.elapsed().as_secs_f64());

    // --dry-run: where and why, nothing changed.
    let dry = hearth(&lab, &["deploy", "h2", "h3", "--dry-run"]);
    let out = text(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(out.contains("on builder h1 (emulated)"), "{out}");
    assert!(
        out.contains("not aarch64-linux; builder h1 builds it by emulation"),
        "{out}"
    );
    assert!(
        out.contains("builder h1 directly (not through this machine)"),
        "{out}"
    );
    assert!(
        out.contains("build:    local (this machine's Nix builds x86_64-linux natively)"),
        "{out}"
    );
    assert!(
        lab.state("h2").unwrap().current_system.is_none(),
        "dry run changed h2"
    );

    // The real deploy: built on h1, copied h1 → h2, activated; never in our store.
    // h2 and h4 build side by side on h1.
    let run = hearth(&lab, &["deploy", "h2", "h4", "--json"]);
    let out = text(&run);
    assert!(run.status.success(), "{out}");
    let state = lab.state("h2").unwrap();
    let current = state.current_system.clone().expect("h2 activated");
    assert!(current.contains("nixos-system-h2-lab-r"), "{current}");
    assert!(
        !valid_locally(&current),
        "the deployer's store received {current}"
    );
    assert!(lab
        .console_exec("h1", &format!("nix-store --check-validity {current}"))
        .is_ok());
    let h4 = lab
        .state("h4")
        .unwrap()
        .current_system
        .expect("h4 activated");
    assert!(
        h4.contains("nixos-system-h4-lab-r") && !valid_locally(&h4),
        "{h4}"
    );
    println!(
        "[{:>6.2}s] deployed h2 and h4 via h1",
        t0.elapsed().as_secs_f64()
    );

    // Builder down: the deploy fails naming h1, and neither h2 nor h3 changes.
    lab.kill_sshd("h1").unwrap();
    edit_host(&lab, "h2", |t| {
        t.replacen(
            &format!("revision = {rev}"),
            &format!("revision = {}", rev + 1),
            1,
        )
    });
    edit_host(&lab, "h3", |t| {
        t.replacen("revision = 0", &format!("revision = {rev}"), 1)
    });
    regenerate(lab.fleet_dir()).unwrap();
    let h3_before = lab.state("h3").unwrap();
    let run = hearth(&lab, &["deploy", "h2", "h3"]);
    let out = text(&run);
    assert!(!run.status.success(), "{out}");
    assert!(out.contains("building on h1 (10.77.234."), "{out}");
    let h2_after = lab.state("h2").unwrap();
    assert_eq!(
        h2_after.current_system.as_deref(),
        Some(current.as_str()),
        "h2 changed:\n{out}"
    );
    assert_eq!(h2_after.generations.len(), state.generations.len());
    let h3_after = lab.state("h3").unwrap();
    assert_eq!(
        h3_after.current_system, h3_before.current_system,
        "h3 was partly deployed:\n{out}"
    );
    assert_eq!(h3_after.generations, h3_before.generations);
    println!(
        "[{:>6.2}s] builder down: no host touched",
        t0.elapsed().as_secs_f64()
    );
}
