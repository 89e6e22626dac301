//! `inventory::load` on a synthetic fleet of 1,000 small hosts (parse, structural walk with
//! every value checked for its kind, cross-file checks, deserialize). Target: under 100 ms. Run: `cargo bench --bench inventory`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;

const HOSTS: usize = 1000;

fn write_fleet(root: &Path) {
    std::fs::write(
        root.join("hearth.toml"),
        "domain = \"home.arpa\"\n[networks.lan]\ncidr = \"10.0.0.0/16\"\ngateway = \"10.0.0.1\"\n",
    )
    .unwrap();
    let hosts = root.join("hosts");
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("builder.toml"),
        "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\nroles = [\"builder\", \"backup-target\"]\n[ssh]\naddress = \"10.0.255.1\"\n[builder]\nsystems = [\"x86_64-linux\"]\nemulated = [\"aarch64-linux\"]\n",
    )
    .unwrap();
    for i in 0..HOSTS - 1 {
        let (a, b) = (i / 250, i % 250 + 2);
        let text = format!(
            r#"#:schema ../schema/host.schema.json
system = "aarch64-linux"
hardware = "helios64"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA{i:0>42} root@host{i}"
tags = ["nas", "rack-{a}"]
build = "builder:builder"

[ssh]
address = "10.0.{a}.{b}"

[network]
interface = "end0"
address = "10.0.{a}.{b}/16"
network = "lan"

[disks.root]
device = "/dev/disk/by-id/mmc-host{i}"
filesystem = "ext4"

[disks.pools.tank]
mode = "mirror"
disks = ["/dev/disk/by-id/ata-{i}-1", "/dev/disk/by-id/ata-{i}-2"]

[disks.pools.tank.datasets.media]
mountpoint = "/srv/media"
recordsize = "1M"

[services.openssh]
[services.node-exporter]
[services.restic]
target = "builder"
schedule = "Mon *-*-* 03:00"
[services.iperf3]
[services.samba]
workgroup = "HOME"
shares.media = {{ path = "/srv/media", read_only = true, valid_users = ["alice", "@family"] }}
[services.nfs]
exports.media = {{ path = "/srv/media", clients = "10.0.0.0/16", options = "ro,all_squash,no_subtree_check" }}

[deploy.health]
units = ["sshd.service"]
tcp = [22]
"#
        );
        std::fs::write(hosts.join(format!("host{i:04}.toml")), text).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_fleet(dir.path());
    let inv = hearth::inventory::load(dir.path()).expect("synthetic fleet is valid");
    assert_eq!(inv.hosts.len(), HOSTS);
    let mut g = c.benchmark_group("inventory");
    g.sample_size(20);
    g.bench_function("load 1000 hosts", |b| {
        b.iter(|| hearth::inventory::load(dir.path()).unwrap())
    });
    // Baselines: what reading and parsing alone cost, to see the checker's share.
    let files: Vec<_> = std::fs::read_dir(dir.path().join("hosts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    g.bench_function("read 1000 host files", |b| {
        b.iter(|| {
            files
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("read + toml_edit parse 1000 host files", |b| {
        b.iter(|| {
            files
                .iter()
                .map(|f| {
                    let text = std::fs::read_to_string(f).unwrap();
                    toml_edit::ImDocument::parse(text).unwrap().as_table().len()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("read + toml::from_str 1000 host files", |b| {
        b.iter(|| {
            files
                .iter()
                .map(|f| {
                    let text = std::fs::read_to_string(f).unwrap();
                    toml::from_str::<hearth::inventory::HostFile>(&text)
                        .unwrap()
                        .tags
                        .len()
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
