//! `cargo bench --bench compile`: a synthetic fleet of 1,000 hosts with 8 services
//! each. Prints the wall time of a full compile (load + emit + check + write into an
//! empty generated/), of a no-op re-run (the stamp shortcut), and of a re-run
//! without the stamp (full compile, content-hash compare, nothing written).
//! Targets: full < 100 ms, no-op < 20 ms.

use hearth::compile::{self, GenOutcome};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

fn write_fleet(root: &Path, hosts: usize) {
    std::fs::create_dir_all(root.join("hosts")).unwrap();
    std::fs::write(
        root.join("hearth.toml"),
        r#"domain = "bench.arpa"
time_zone = "UTC"
[admins.alice]
ssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceAliceAliceAliceAliceAliceAliceAlice1 alice"]
[nix]
substituters = ["https://cache.bench.arpa"]
trusted_public_keys = ["cache.bench.arpa-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
[networks.lan]
cidr = "10.0.0.0/16"
gateway = "10.0.0.1"
dns = ["10.0.0.1"]
"#,
    )
    .unwrap();
    for i in 0..hosts {
        let mut h = String::new();
        let (system, hardware) = if i % 2 == 0 {
            ("aarch64-linux", "helios64")
        } else {
            ("x86_64-linux", "generic-x86_64")
        };
        let roles = match i {
            0 => r#"roles = ["backup-target"]"#,
            1 => r#"roles = ["monitoring", "builder"]"#,
            _ => "",
        };
        let _ = write!(
            h,
            r#"system = "{system}"
hardware = "{hardware}"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHost{i:0>40}"
{roles}
tags = ["bench", "group{g}"]

[ssh]
address = "10.0.{a}.{b}"

[network]
interface = "end0"
address = "10.0.{a}.{b}/16"
network = "lan"

[disks.root]
device = "/dev/disk/by-id/mmc-ROOT_{i}"
filesystem = "ext4"

[disks.pools.tank]
mode = "mirror"
disks = ["/dev/disk/by-id/ata-DISK_{i}_A", "/dev/disk/by-id/ata-DISK_{i}_B"]

[disks.pools.tank.datasets.data]
mountpoint = "/tank/data"
recordsize = "1M"
backup = true

[disks.pools.tank.datasets.media]
mountpoint = "/tank/media"
compression = "zstd"

[services.node-exporter]
[services.iperf3]
[services.fail2ban]
[services.zfs]
[services.samba.shares.data]
path = "/tank/data"
[services.nfs.exports.media]
path = "/tank/media"
[services.restic]
{restic_target}
"#,
            g = i % 10,
            a = i / 250,
            b = i % 250 + 2,
            restic_target = if i == 0 {
                "rclone_remote = \"b2:bench\""
            } else {
                ""
            },
        );
        if i == 1 {
            h.push_str("\n[builder]\nemulated = [\"aarch64-linux\"]\n");
        }
        std::fs::write(root.join("hosts").join(format!("host{i:04}.toml")), h).unwrap();
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this with `--test`-like args; keep it quick there.
    // HEARTH_BENCH_HOSTS shrinks the fleet for a quick debug run.
    let hosts: usize = std::env::var("HEARTH_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rounds = if std::env::args().any(|a| a == "--bench") {
        5
    } else {
        1
    };
    let mut full = Vec::new();
    let mut noop = Vec::new();
    let mut rerun = Vec::new();
    let mut pure = Vec::new();
    let mut files = 0;
    let mut phases = Vec::new();
    let mut fs_baseline = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_fleet(root, hosts);
        if let Ok(keep) = std::env::var("HEARTH_BENCH_KEEP") {
            let _ = std::fs::remove_dir_all(&keep);
            std::fs::create_dir_all(&keep).unwrap();
            for sub in ["hearth.toml", "hosts"] {
                std::process::Command::new("cp")
                    .arg("-r")
                    .arg(root.join(sub))
                    .arg(&keep)
                    .status()
                    .unwrap();
            }
        }

        let (t, outcome) = time(|| compile::generate(root).unwrap());
        let GenOutcome::Compiled(changes) = outcome else {
            panic!("expected a full compile")
        };
        files = changes.missing.len();
        full.push(t);

        let (t, outcome) = time(|| compile::generate(root).unwrap());
        assert_eq!(outcome, GenOutcome::UpToDate);
        noop.push(t);

        std::fs::remove_file(root.join(compile::stamp::STAMP_FILE)).unwrap();
        let (t, outcome) = time(|| compile::generate(root).unwrap());
        assert_eq!(outcome, GenOutcome::Compiled(Default::default()));
        rerun.push(t);

        let (t, _) = time(|| compile::compile_repo(root).unwrap());
        pure.push(t);

        let (t_cat, catalog) = time(|| hearth::catalog::Catalog::load(root).unwrap());
        let (t_inv, inv) = time(|| hearth::inventory::load(root).unwrap());
        let (t_res, res) = time(|| compile::resolve::resolve(&inv, &catalog).unwrap());
        let (t_emit, _) = time(|| compile::compile(&inv, &catalog).unwrap());
        let out = compile::compile(&inv, &catalog).unwrap();
        let texts: Vec<&String> = out.files.values().collect();
        let (t_parse, _) =
            time(|| compile::parallel_map(&texts, |t| compile::nix::check_parse(t).is_ok()));
        let bytes: usize = texts.iter().map(|t| t.len()).sum();
        phases.push((t_cat, t_inv, t_res, t_emit, t_parse, bytes, res.hosts.len()));

        // What this machine's filesystem alone costs for the same files (plain writes,
        // no temp file + rename), to put the full-compile figure in context.
        let raw = tempfile::tempdir_in(root).unwrap();
        let (t, _) = time(|| {
            for (rel, text) in &out.files {
                let path = raw.path().join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        });
        fs_baseline.push(t);
    }
    println!("compile benchmark: {hosts} hosts x 8 services, {files} files, median of {rounds}");
    println!(
        "  full compile (load + emit + rnix check + write of every file): {}  (target < 100 ms)",
        ms(median(full))
    );
    println!(
        "  no-op re-run (stamp):                           {}  (target < 20 ms)",
        ms(median(noop))
    );
    println!(
        "  re-run without stamp (compile + hash compare, nothing written): {}",
        ms(median(rerun))
    );
    println!(
        "  compile only (load + emit, no check, no write):  {}",
        ms(median(pure))
    );
    if let Some((cat, inv, res, emit, parse, bytes, n)) = phases.last() {
        println!(
            "  phases (last round, {n} hosts): catalog {}, inventory::load {}, resolve {}, compile {}; rnix check of all {} KiB: {}",
            ms(*cat),
            ms(*inv),
            ms(*res),
            ms(*emit),
            bytes / 1024,
            ms(*parse)
        );
    }
    println!(
        "  filesystem baseline: plain writes of the same {files} files: {}",
        ms(median(fs_baseline))
    );
}
