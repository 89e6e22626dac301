//! The `--dry-run` text of `hearth install`: what is erased, what builds where, which key
//! goes where. Pure, from facts gathered by `run`.

use std::fmt::Write as _;

pub struct Plan<'a> {
    pub host: &'a str,
    pub target: &'a str,
    /// The erase list, or why the target refuses / could not be read.
    pub disks: Result<String, String>,
    /// Placement's decision and reason, e.g. `builder nixos (emulated): …`.
    pub build: String,
    /// `reuse <path>` or `generate <path>`.
    pub key: String,
    pub host_file: String,
    pub installer: Vec<String>,
    pub rekey: String,
}

pub fn render(p: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "install {} onto {} (dry run: nothing changes)",
        p.host, p.target
    );
    match &p.disks {
        Ok(list) => s.push_str(list),
        Err(why) => {
            let _ = writeln!(s, "disks: {}", why.trim_end());
        }
    }
    let _ = writeln!(s, "build: {}", p.build);
    let _ = writeln!(s, "host key: {}", p.key);
    let _ = writeln!(
        s,
        "  public half -> host_key in {} (then `hearth gen`)",
        p.host_file
    );
    s.push_str("  private half -> /etc/ssh/ssh_host_ed25519_key on the new system (root, 0600)\n");
    let _ = writeln!(s, "  {}", p.rekey);
    let _ = writeln!(s, "run: {}", super::command::shell_line(&p.installer));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_plan() {
        let p = Plan {
            host: "nas",
            target: "root@192.0.2.7",
            disks: Err("refusing to install; the target is left untouched:\n  missing: X\n".into()),
            build: "local: build policy is `local`".into(),
            key: "generate .hearth/install/nas/extra/etc/ssh/ssh_host_ed25519_key".into(),
            host_file: "hosts/nas.toml".into(),
            installer: vec!["nixos-anywhere".into(), "--flake".into(), "/r#nas".into()],
            rekey: "secrets: run `hearth secrets rekey`".into(),
        };
        assert_eq!(
            render(&p),
            "install nas onto root@192.0.2.7 (dry run: nothing changes)\n\
disks: refusing to install; the target is left untouched:\n  missing: X\n\
build: local: build policy is `local`\n\
host key: generate .hearth/install/nas/extra/etc/ssh/ssh_host_ed25519_key\n\
\x20 public half -> host_key in hosts/nas.toml (then `hearth gen`)\n\
\x20 private half -> /etc/ssh/ssh_host_ed25519_key on the new system (root, 0600)\n\
\x20 secrets: run `hearth secrets rekey`\n\
run: nixos-anywhere --flake /r#nas\n"
        );
    }
}
