use super::*;
use crate::catalog::{ServiceDef, SettingDef, SettingKind};

const FLEET: &str = "domain = \"home.arpa\"\n";
const HOST: &str = "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\nbuild = \"target\"\n";

/// A temporary repository with `hearth.toml` and the given host files.
fn fleet(hosts: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FLEET_FILE), FLEET).unwrap();
    std::fs::create_dir(dir.path().join(HOSTS_DIR)).unwrap();
    for (name, text) in hosts {
        std::fs::write(
            dir.path().join(HOSTS_DIR).join(format!("{name}.toml")),
            text,
        )
        .unwrap();
    }
    dir
}

fn host(extra: &str, addr: &str) -> String {
    format!("{HOST}ssh = {{ address = \"{addr}\" }}\n{extra}")
}

fn setting(kind: SettingKind) -> SettingDef {
    SettingDef::of(kind)
}

fn catalog() -> Catalog {
    let mut nfs = ServiceDef {
        name: "nfs".into(),
        description: "NFS exports".into(),
        settings: Default::default(),
        default_enabled: false,
        roles: vec![],
        ports: Default::default(),
        data_dirs: vec![],
        imports: vec![],
        web: None,
        template: String::new(),
        origin: "test".into(),
    };
    nfs.settings
        .insert("port".into(), setting(SettingKind::Port));
    let mut export = setting(SettingKind::Table);
    export.fields.insert(
        "path".into(),
        SettingDef {
            required: true,
            ..setting(SettingKind::Value(crate::inventory::values::Kind::AbsPath))
        },
    );
    nfs.settings.insert(
        "exports".into(),
        SettingDef {
            entries: Some(Box::new(export)),
            ..setting(SettingKind::Table)
        },
    );
    nfs.settings
        .insert("clients".into(), setting(SettingKind::StringList));
    nfs.settings.insert(
        "root".into(),
        SettingDef {
            required: true,
            ..setting(SettingKind::String)
        },
    );
    nfs.settings.insert(
        "version".into(),
        SettingDef {
            values: vec!["v3".into(), "v4".into()],
            ..setting(SettingKind::Enum)
        },
    );
    let mut iperf = nfs.clone();
    iperf.name = "iperf3".into();
    iperf.settings.clear();
    let mut c = Catalog::default();
    c.services.insert("nfs".into(), nfs);
    c.services.insert("iperf3".into(), iperf);
    c
}

fn messages(report: &Report) -> Vec<String> {
    report
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.location().unwrap_or_default(), d.message))
        .collect()
}

#[test]
fn host_id_is_the_sha256_prefix_of_the_name() {
    // printf helios64 | sha256sum | cut -c1-8
    assert_eq!(host_id("helios64"), "296748f2");
    assert_eq!(host_id("nixos"), "6ed332bc");
    assert_eq!(host_id("helios64"), host_id("helios64"));
}

#[test]
fn host_id_prefers_the_files_value() {
    let dir = fleet(&[
        ("a", &host("host_id = \"deadbeef\"\n", "10.0.0.1")),
        ("b", &host("", "10.0.0.2")),
    ]);
    let inv = load(dir.path()).unwrap();
    assert_eq!(inv.host("a").unwrap().host_id(), "deadbeef");
    assert_eq!(inv.host("b").unwrap().host_id(), host_id("b"));
}

#[test]
fn services_are_checked_against_the_catalog() {
    let text = host(
        "[services.nfs]\nport = 70000\nversion = \"v5\"\nclients = \"lan\"\nexprots = {}\n[services.ipref3]\n",
        "10.0.0.1",
    );
    let dir = fleet(&[("a", &text)]);
    let report = check_with_catalog(dir.path(), &catalog());
    let m = messages(&report);
    let expect = [
        "hosts/a.toml:5:1 missing required setting `root` in service `nfs`",
        "hosts/a.toml:6:8 `services.nfs.port` is out of range",
        "hosts/a.toml:7:11 invalid value `v5` for `services.nfs.version`",
        "hosts/a.toml:8:11 wrong type for `services.nfs.clients`: expected array, found string",
        "hosts/a.toml:9:1 unknown setting `exprots` in service `nfs`",
        "hosts/a.toml:10:11 unknown service `ipref3`",
    ];
    assert_eq!(m, expect);
    let out = report.render(false);
    assert!(out.contains("did you mean `exports`?"), "{out}");
    assert!(out.contains("did you mean `iperf3`?"), "{out}");
    assert!(out.contains("allowed values: `v3` or `v4`"), "{out}");
    assert!(report.inventory.is_none());
}

#[test]
fn valid_services_pass_the_catalog() {
    let text = host("[services.nfs]\nroot = \"/srv\"\nversion = \"v4\"\nclients = [\"lan\"]\n[services.nfs.exports.media]\npath = \"/srv/media\"\n", "10.0.0.1");
    let dir = fleet(&[("a", &text)]);
    let report = check_with_catalog(dir.path(), &catalog());
    assert_eq!(messages(&report), Vec::<String>::new());
    let inv = report.inventory.unwrap();
    assert_eq!(
        inv.hosts["a"].file.services["nfs"]["root"].as_str(),
        Some("/srv")
    );
}

#[test]
fn an_empty_catalog_accepts_any_service() {
    let dir = fleet(&[(
        "a",
        &host("[services.anything]\nwhatever = 1\n", "10.0.0.1"),
    )]);
    let report = check_with_catalog(dir.path(), &Catalog::default());
    assert_eq!(report.error_count(), 0, "{}", report.render(false));
}

#[test]
fn load_returns_a_typed_error_with_every_diagnostic() {
    let dir = fleet(&[
        ("a", &host("bogus = 1\n", "10.0.0.1")),
        ("b", &host("", "10.0.0.1")),
        ("c", "system = \n"),
    ]);
    let err = load(dir.path()).unwrap_err();
    let inv = err.downcast_ref::<InventoryError>().expect("typed error");
    assert_eq!(inv.summary, "2 errors in 2 files");
    let locations: Vec<_> = inv
        .diagnostics
        .iter()
        .filter_map(Diagnostic::location)
        .collect();
    assert_eq!(locations, ["hosts/a.toml:5:1", "hosts/c.toml:1:10"]);
    assert!(
        inv.rendered.contains("--> hosts/c.toml:1:10"),
        "{}",
        inv.rendered
    );
    assert!(err
        .to_string()
        .starts_with("invalid inventory (2 errors in 2 files):"));
}

#[test]
fn cross_file_errors_show_both_places() {
    let dir = fleet(&[("a", &host("", "10.0.0.1")), ("b", &host("", "10.0.0.1"))]);
    let report = check_with_catalog(dir.path(), &Catalog::default());
    assert_eq!(report.error_count(), 1);
    let d = &report.diagnostics[0];
    assert_eq!(d.location().unwrap(), "hosts/b.toml:4:19");
    assert_eq!(d.secondary[0].location(), "hosts/a.toml:4:19");
    let out = report.render(false);
    assert!(out.contains("first used by `a` here"), "{out}");
}

#[test]
fn warnings_do_not_fail_a_load() {
    let foreign = if std::env::consts::ARCH == "aarch64" {
        "x86_64-linux"
    } else {
        "aarch64-linux"
    };
    let text =
        format!("system = \"{foreign}\"\nhardware = \"lab\"\n[ssh]\naddress = \"10.0.0.1\"\n");
    let dir = fleet(&[("a", &text)]);
    let loaded = load_with_warnings(dir.path()).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].severity, Severity::Warning);
    assert!(
        loaded.warnings[0].message.contains("can build"),
        "{}",
        loaded.warnings[0].message
    );
    assert!(loaded.rendered_warnings.starts_with("warning: "));
    assert_eq!(loaded.inventory.hosts.len(), 1);
}

#[test]
fn builder_emulating_the_system_silences_the_warning() {
    let foreign = if std::env::consts::ARCH == "aarch64" {
        "x86_64-linux"
    } else {
        "aarch64-linux"
    };
    let text =
        format!("system = \"{foreign}\"\nhardware = \"lab\"\n[ssh]\naddress = \"10.0.0.1\"\n");
    let builder = host(
        &format!("roles = [\"builder\"]\n[builder]\nemulated = [\"{foreign}\"]\n"),
        "10.0.0.2",
    );
    let dir = fleet(&[("a", &text), ("b", &builder)]);
    let loaded = load_with_warnings(dir.path()).unwrap();
    assert!(loaded.warnings.is_empty(), "{}", loaded.rendered_warnings);
}

#[test]
fn garbage_never_panics() {
    let cases = [
        "",
        "\u{0}",
        "[[[",
        "a = \"\u{e9}",
        "system = [1, {]",
        "[ssh]\n[ssh]\n",
        "ssh = 1\n[ssh.x]\n",
        "system = \"x86_64-linux\"\nhardware = \"lab\"\nssh = { address = 1, port = -1 }\n",
        "[disks.pools.x]\nmode = 1\ndisks = [1, \"a\"]\n",
        "roles = [\"builder\", 3]\n[builder]\nsystems = \"x\"",
        "\u{feff}system = 1",
        "a.b.c.d.e = 1",
        "[services]\nx = 1\n[services.y]\nz = [[]]\n",
    ];
    for (i, text) in cases.iter().enumerate() {
        let dir = fleet(&[("h", text)]);
        for catalog in [Catalog::default(), catalog()] {
            let report = check_with_catalog(dir.path(), &catalog);
            assert!(report.error_count() > 0, "case {i} should fail");
            let _ = report.render(false);
        }
    }
}

#[test]
fn many_files_report_every_error_in_file_order() {
    // Enough hosts to take the multi-threaded path on a multi-core machine.
    let texts: Vec<(String, String)> = (0..300)
        .map(|i| {
            let extra = if i % 50 == 7 { "bogus = 1\n" } else { "" };
            (
                format!("h{i:03}"),
                host(extra, &format!("10.0.{}.{}", i / 200, i % 200 + 1)),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let dir = fleet(&refs);
    let report = check_with_catalog(dir.path(), &Catalog::default());
    let locations: Vec<String> = report
        .diagnostics
        .iter()
        .filter_map(Diagnostic::location)
        .collect();
    let expected: Vec<String> = (0..300)
        .filter(|i| i % 50 == 7)
        .map(|i| format!("hosts/h{i:03}.toml:5:1"))
        .collect();
    assert_eq!(locations, expected);
}

#[test]
fn mutated_host_files_never_panic() {
    let original = include_str!("../../tests/good_fleet/hosts/helios64.toml");
    let tokens = [
        "\"", "[", "]", "=", "\n", "{", "}", ",", ".", "1", "é", "#", "'''", "x", "-1", " ",
    ];
    let catalog = Catalog::load(Path::new("/nonexistent")).unwrap();
    let dir = fleet(&[]);
    let path = dir.path().join(HOSTS_DIR).join("h.toml");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..150 {
        let mut text = original.to_string();
        for _ in 0..1 + next(3) {
            let mut at = next(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if next(2) == 0 {
                text.insert_str(at, tokens[next(tokens.len())]);
            } else {
                let mut end = (at + 1 + next(8)).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(at..end, "");
            }
        }
        std::fs::write(&path, &text).unwrap();
        let report = check_with_catalog(dir.path(), &catalog);
        let _ = report.render(false);
    }
}

#[test]
fn repo_local_catalog_kinds_are_checked_with_locations() {
    let dir = fleet(&[(
        "a",
        &host(
            "[services.media]\nlibrary = \"/srv/media\\n/ *(rw)\"\ncache = \"lots\"\n[services.media.users.alice]\nquota = \"5G\"\nquot = \"1G\"\n",
            "10.0.0.1",
        ),
    )]);
    let cat = dir.path().join("catalog");
    std::fs::create_dir(&cat).unwrap();
    std::fs::write(
        cat.join("media.toml"),
        "description = \"media\"\n[settings.library]\nkind = \"path\"\n[settings.cache]\nkind = \"size\"\n\
         [settings.users]\nkind = \"table\"\nkeys = \"user-name\"\n[settings.users.entries]\nkind = \"table\"\n\
         [settings.users.entries.fields.quota]\nkind = \"size\"\n",
    )
    .unwrap();
    std::fs::write(cat.join("media.nix.tera"), "{ }").unwrap();
    let report = check(dir.path()).unwrap();
    assert_eq!(
        messages(&report),
        [
            "hosts/a.toml:6:11 invalid path `/srv/media\\n/ *(rw)` for `services.media.library`",
            "hosts/a.toml:7:9 invalid size `lots` for `services.media.cache`",
            "hosts/a.toml:10:1 unknown key `quot` in `[services.media.users.alice]`",
        ]
    );
}
