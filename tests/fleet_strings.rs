//! End to end, from host file to evaluated Nix: arbitrary Unicode in string fields (a
//! samba comment, workgroup and share name, an NFS export path, a module file name) is either
//! rejected with `file:line:col`, or compiles to Nix that the real evaluator reads back as
//! exactly the text written (and, for exports, to one line that reads back as the path).

use hearth::compile::compile_repo;
use hearth::lines::exports;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::path::Path;
use std::process::Command;

const CASES: usize = 48;

#[derive(Debug, Clone)]
struct Fields {
    comment: String,
    workgroup: String,
    share: String,
    nfs_path: String,
    /// A module file name (created, so it exists), without `/`.
    module: String,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\\\\"'${} \n\ta-z\r\u{0}\u{1b}é🎉\\[\\]]{1,12}",
        "[a-z]{1,6}('?\\$\\{[a-z]{1,4}\\}|''|\\$\\$)[a-z ]{0,4}",
    ]
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn write_fleet(dir: &Path, f: &Fields) {
    std::fs::create_dir_all(dir.join("hosts")).unwrap();
    std::fs::write(dir.join("hearth.toml"), "domain = \"home.arpa\"\n").unwrap();
    std::fs::create_dir_all(dir.join("modules")).unwrap();
    std::fs::write(
        dir.join("modules").join(format!("{}.nix", f.module)),
        "{ }\n",
    )
    .unwrap();
    let host = format!(
        "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\nmodules = [{}]\n\n[ssh]\naddress = \"192.168.1.20\"\n\n\
         [services.samba]\nworkgroup = {}\n\n[services.samba.shares.{}]\npath = \"/tank/photos\"\ncomment = {}\n\n\
         [services.nfs.exports.media]\npath = {}\nclients = \"192.168.1.0/24\"\noptions = \"ro\"\n",
        toml_str(&format!("modules/{}.nix", f.module)),
        toml_str(&f.workgroup),
        toml_str(&f.share),
        toml_str(&f.comment),
        toml_str(&format!("/{}", f.nfs_path)),
    );
    std::fs::write(dir.join("hosts/nas.toml"), host).unwrap();
}

#[test]
fn string_fields_are_rejected_with_a_place_or_read_back_exactly() {
    let mut runner = TestRunner::deterministic();
    let module = text().prop_filter("a file name", |m| !m.contains(['/', '\0']));
    // One field at a time gets the arbitrary text, the others a plain value: with five
    // arbitrary fields nearly every fleet is refused by its first bad field, and the
    // read-back half of the test would see nothing.
    let strategy = (0..5usize, text(), module).prop_map(|(which, t, m)| {
        let pick = |i: usize, plain: &str| if i == which { t.clone() } else { plain.into() };
        Fields {
            comment: pick(0, "Photos"),
            workgroup: pick(1, "WORKGROUP"),
            share: pick(2, "photos"),
            nfs_path: pick(3, "tank/media"),
            module: if which == 4 { m } else { "media".into() },
        }
    });
    let base = tempfile::tempdir().unwrap();
    let located = regex::Regex::new(r"hosts/nas\.toml:\d+:\d+").unwrap();
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for i in 0..CASES {
        let f = strategy.new_tree(&mut runner).unwrap().current();
        let dir = base.path().join(format!("f{i}"));
        write_fleet(&dir, &f);
        match compile_repo(&dir) {
            Err(e) => {
                let msg = format!("{e:#}");
                assert!(
                    located.is_match(&msg),
                    "{f:?}: rejected without a place: {msg}"
                );
                rejected += 1;
            }
            Ok(out) => {
                let module = dir.join("generated/nas/default.nix");
                std::fs::create_dir_all(module.parent().unwrap()).unwrap();
                std::fs::write(&module, &out.files[Path::new("generated/nas/default.nix")])
                    .unwrap();
                accepted.push((module, f));
            }
        }
    }
    assert!(
        !accepted.is_empty() && rejected > 0,
        "{} accepted, {rejected} rejected",
        accepted.len()
    );
    // One evaluation for every accepted fleet: [ workgroup shares exports ] per module.
    let mut expr = String::from("[\n");
    for (module, _) in &accepted {
        expr.push_str(&format!(
            "  (let m = import {} {{ config = {{ }}; lib = {{ }}; pkgs = {{ }}; }}; s = m.services; in \
             [ s.samba.settings.global.workgroup (builtins.removeAttrs s.samba.settings [ \"global\" ]) \
             s.nfs.server.exports (map toString m.imports) ])\n",
            module.display()
        ));
    }
    expr.push_str("]\n");
    let file = base.path().join("eval.nix");
    std::fs::write(&file, expr).unwrap();
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(&file)
        .output()
        .expect("nix-instantiate is needed for this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for ((_module, f), g) in accepted.iter().zip(&got) {
        assert_eq!(g[0], serde_json::json!(f.workgroup), "{f:?}");
        let shares = g[1].as_object().unwrap();
        assert_eq!(shares.keys().collect::<Vec<_>>(), [&f.share], "{f:?}");
        assert_eq!(
            shares[&f.share]["comment"],
            serde_json::json!(f.comment),
            "{f:?}"
        );
        let exports_text = g[2].as_str().unwrap();
        let lines: Vec<&str> = exports_text.lines().collect();
        assert_eq!(lines.len(), 1, "{f:?}: {exports_text:?}");
        let (path, client, options) = exports::parse(lines[0])
            .unwrap_or_else(|| panic!("{f:?}: not one export: {:?}", lines[0]));
        assert_eq!(path, format!("/{}", f.nfs_path));
        assert_eq!(
            (client.as_str(), options.as_str()),
            ("192.168.1.0/24", "ro")
        );
    }
}
