//! Remote builders against real lab hosts (namespaces, sshd, separate /nix). Needs root;
//! otherwise prints `SKIPPED:`. One test function, because the steps share one lab and
//! set NIX_CONFIG for the whole process.
//!
//! h1: a builder with `extra-platforms = aarch64-linux`; h2: an aarch64-linux target;
//! h3: an x86_64 host that builds its own system, and later a builder that lies.

mod lab_support;
use hearth::builders::check::{check_all, TRAPS};
use hearth::builders::exec::{build_placed, Built, ExecOptions, Route};
use hearth::builders::mechanism::Runner;
use hearth::builders::sshenv::SshEnv;
use hearth::builders::{place, LocalNix, Where};
use hearth::inventory::Inventory;
use hearth::lab::{regenerate, Lab, LabConfig};
use lab_support::DownOnDrop;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn step(name: &str, t0: Instant) {
    println!("[{:>6.2}s] {name}", t0.elapsed().as_secs_f64());
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

fn edit_host(lab: &Lab, name: &str, f: impl FnOnce(String) -> String) {
    let path = lab.fleet_dir().join("hosts").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, f(text)).unwrap();
}

fn toplevel(lab: &Lab, host: &str) -> String {
    format!(
        "{}#nixosConfigurations.{host}.config.system.build.toplevel",
        lab.flake_ref()
    )
}

fn out_path(installable: &str) -> String {
    let out =
        output(Command::new("nix").args(["eval", "--raw", &format!("{installable}.outPath")]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn valid_on(lab: &Lab, host: &str, path: &str) -> bool {
    lab.console_exec(host, &format!("nix-store --check-validity {path}"))
        .is_ok()
}

fn valid_locally(path: &str) -> bool {
    output(Command::new("nix").args(["path-info", path]))
        .status
        .success()
}

#[test]
fn builders_against_lab_hosts() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cfg = LabConfig::new(
        "bld",
        "10.77.231.0".parse().unwrap(),
        dir.path().join("lab"),
    )
    .unwrap();
    Lab::down(&cfg).unwrap();
    let _guard = DownOnDrop(cfg.clone());
    let lab = Lab::up(cfg.clone(), 3, &["h1".to_string()]).unwrap();
    std::env::set_var("NIX_CONFIG", lab.nix_config());
    // A fresh revision per run, so nothing is already in any store.
    let rev = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 1_000_000) as u32;
    edit_host(&lab, "h2", |t| {
        t.replacen("system = \"x86_64-linux\"", "system = \"aarch64-linux\"", 1)
            .replacen("revision = 0", &format!("revision = {rev}"), 1)
    });
    edit_host(&lab, "h3", |t| {
        t.replacen("revision = 0", &format!("revision = {rev}"), 1)
    });
    regenerate(lab.fleet_dir()).unwrap();
    step("lab up: h1 builder, h2 aarch64-linux target, h3 x86_64", t0);

    let inv: Inventory = hearth::inventory::load(lab.fleet_dir()).unwrap();
    let local = LocalNix::detect().unwrap();
    let version = local.version.unwrap();

    // The deployer's own Nix refuses aarch64-linux.
    assert!(
        !local.can_build("aarch64-linux"),
        "this machine's Nix claims aarch64-linux: {local:?}"
    );
    let h2_top = toplevel(&lab, "h2");
    let refused =
        output(Command::new("nix").args(["build", "--no-link", "--builders", "", &h2_top]));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("aarch64-linux"),
        "local build of h2: {err}"
    );
    step("the deployer's Nix refuses aarch64-linux", t0);

    // Placement: h2 goes to h1, by emulation; h3 builds here.
    let p2 = place(&inv.hosts["h2"], &inv, &local).unwrap();
    assert_eq!(
        p2.location,
        Where::Builder {
            name: "h1".into(),
            emulated: true
        },
        "{}",
        p2.reason
    );
    assert!(
        p2.reason.contains("builder h1 builds it by emulation"),
        "{}",
        p2.reason
    );
    assert_eq!(
        place(&inv.hosts["h3"], &inv, &local).unwrap().location,
        Where::Local
    );

    let ssh = SshEnv::new(&inv, Some(&lab.identity_path())).unwrap();
    let runner = Runner { version, ssh: &ssh };
    let opts = ExecOptions {
        route: Route::BuilderToTarget,
        builder_identity: Some(lab.identity_path().display().to_string()),
        ..Default::default()
    };

    // Builder to target: built on h1, copied by h1 to h2, never in the deployer's store.
    let built = build_placed(
        &inv,
        &runner,
        &inv.hosts["h2"],
        &p2.location,
        &h2_top,
        &opts,
    )
    .unwrap();
    let Built::OnTarget { out } = &built else {
        panic!("expected OnTarget, got {built:?}")
    };
    assert!(valid_on(&lab, "h1", out), "built on the builder");
    assert!(valid_on(&lab, "h2", out), "closure reached the target");
    assert!(!valid_on(&lab, "h3", out), "and nowhere else");
    assert!(!valid_locally(out), "the deployer's store received {out}");
    let arch = lab
        .console_exec("h2", &format!("grep -c . {out}/nixos-version"))
        .unwrap();
    assert_eq!(arch.trim(), "1");
    step(
        "builder-to-target: on h1 and h2, not in the deployer's store",
        t0,
    );

    // On the target itself: h3 builds its own system.
    let h3_top = toplevel(&lab, "h3");
    let built = build_placed(
        &inv,
        &runner,
        &inv.hosts["h3"],
        &Where::Target,
        &h3_top,
        &opts,
    )
    .unwrap();
    assert!(matches!(built, Built::OnTarget { .. }));
    assert!(valid_on(&lab, "h3", built.out()));
    assert!(!valid_on(&lab, "h1", built.out()) && !valid_locally(built.out()));
    step("build on the target", t0);

    // Through the deployer: local nix with a generated --builders list; output comes back here.
    let through = ExecOptions {
        route: Route::ThroughDeployer,
        local_identity: Some(lab.identity_path()),
        ..Default::default()
    };
    let built = build_placed(
        &inv,
        &runner,
        &inv.hosts["h2"],
        &p2.location,
        &h2_top,
        &through,
    )
    .unwrap();
    assert!(matches!(built, Built::Local { .. }));
    assert!(valid_locally(built.out()));
    step("local build through the builder (machines list)", t0);

    // `builders check`: h1 is healthy.
    let reports = check_all(&inv, &[], &ssh, &runner, &local).unwrap();
    assert_eq!(reports.len(), 1);
    let text = reports[0].render();
    assert!(reports[0].problems().is_empty(), "{text}");
    assert!(
        text.contains("aarch64-linux (emulated): builds") && text.contains("trusted:    yes"),
        "{text}"
    );
    assert!(text.contains("nix (Nix)"), "{text}");
    step("builders check: h1 healthy", t0);

    // h3 becomes a builder on paper only: it claims aarch64-linux (its nix.conf says
    // nothing of it), and its ssh user goes through a daemon that trusts nobody.
    edit_host(&lab, "h3", |t| {
        format!("{}\n", t.replacen("hardware = \"lab\"", "hardware = \"lab\"\nroles = [\"builder\"]", 1))
            + "\n[builder]\nsystems = [\"x86_64-linux\"]\nemulated = [\"aarch64-linux\"]\nuser = \"root\"\n"
    });
    let h3_dir = lab.host("h3").unwrap().dir.clone();
    let daemon_conf = h3_dir.join("daemon-conf");
    std::fs::create_dir_all(&daemon_conf).unwrap();
    let conf = std::fs::read_to_string(h3_dir.join("etc-nix/nix.conf")).unwrap();
    // The daemon reads its own copy (with `store = daemon` it would connect to itself).
    std::fs::write(
        daemon_conf.join("nix.conf"),
        format!("{conf}\ntrusted-users = nobody\n"),
    )
    .unwrap();
    std::fs::write(
        h3_dir.join("etc-nix/nix.conf"),
        format!("{conf}\nstore = daemon\n"),
    )
    .unwrap();
    let start = format!(
        "NIX_CONF_DIR={} nohup nix-daemon >/tmp/hearth-test-daemon.log 2>&1 </dev/null & sleep 1; test -S /nix/var/nix/daemon-socket/socket",
        daemon_conf.display()
    );
    lab.console_exec("h3", &start).unwrap();
    let inv = hearth::inventory::load(lab.fleet_dir()).unwrap();
    let reports = check_all(&inv, &["h3".to_string()], &ssh, &runner, &local).unwrap();
    let text = reports[0].render();
    println!("{text}\n{TRAPS}");
    let problems = reports[0].problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("user `root` is not trusted")
                && p.contains("lacks a valid signature")),
        "{text}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("claims aarch64-linux but its Nix builds only x86_64-linux")),
        "{text}"
    );
    assert!(text.contains("trusted:    NO"), "{text}");
    step(
        "builders check: untrusted user and a missing system reported",
        t0,
    );

    // A builder that is down: a clear error naming it; nothing reaches the target.
    lab.kill_sshd("h1").unwrap();
    edit_host(&lab, "h2", |t| {
        t.replacen(
            &format!("revision = {rev}"),
            &format!("revision = {}", rev + 1),
            1,
        )
    });
    regenerate(lab.fleet_dir()).unwrap();
    let inv = hearth::inventory::load(lab.fleet_dir()).unwrap();
    let h2_new = out_path(&h2_top);
    let err = build_placed(
        &inv,
        &runner,
        &inv.hosts["h2"],
        &p2.location,
        &h2_top,
        &opts,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("building on h1 (10.77.231."), "{msg}");
    assert!(
        msg.contains("Connection refused") || msg.contains("connect to host"),
        "{msg}"
    );
    assert!(
        !valid_on(&lab, "h2", &h2_new),
        "nothing of the new system reached h2"
    );
    step("builder down: error names h1, target untouched", t0);
}
