//! Checks the structure alone can't express: values that must have a form (host ids,
//! CIDRs, disk paths), one host file against the fleet file, and hosts against each
//! other (duplicate addresses, builders, backup targets, secrets).

mod obs;

use super::diag::{did_you_mean, list_code, Diagnostic, Label, Sources};
use super::model::*;
use crate::values::parse_cidr;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use toml_edit::{ImDocument, Item, Value};

/// A step of a path into a document: a key or an array index.
#[derive(Clone, Copy)]
pub enum P<'a> {
    K(&'a str),
    I(usize),
}

/// The span of the value at `path` (a table's header), or of the deepest key found.
pub fn locate(doc: &ImDocument<String>, path: &[P]) -> Range<usize> {
    #[derive(Clone, Copy)]
    enum Cur<'a> {
        Item(&'a Item),
        Value(&'a Value),
        Table(&'a toml_edit::Table),
    }
    let mut cur = Cur::Table(doc.as_table());
    let mut fallback = 0..0;
    for step in path {
        let next = match (*step, cur) {
            (P::K(k), Cur::Table(t)) | (P::K(k), Cur::Item(Item::Table(t))) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Cur::Item(item))),
            (P::K(k), Cur::Item(Item::Value(Value::InlineTable(t))))
            | (P::K(k), Cur::Value(Value::InlineTable(t))) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Cur::Item(item))),
            (P::I(i), Cur::Item(Item::Value(Value::Array(a))))
            | (P::I(i), Cur::Value(Value::Array(a))) => a.get(i).map(|v| (v.span(), Cur::Value(v))),
            (P::I(i), Cur::Item(Item::ArrayOfTables(a))) => {
                a.get(i).map(|t| (t.span(), Cur::Table(t)))
            }
            _ => None,
        };
        match next {
            Some((span, c)) => {
                if let Some(s) = span {
                    fallback = s;
                }
                cur = c;
            }
            None => return fallback,
        }
    }
    let own = match cur {
        Cur::Item(i) => i.span(),
        Cur::Value(v) => v.span(),
        Cur::Table(t) => t.span(),
    };
    own.unwrap_or(fallback)
}

/// One file: its id in `Sources`, its text, and its document (parsed on first use).
#[derive(Clone, Copy)]
pub struct Src<'a> {
    pub id: usize,
    pub text: &'a str,
    pub doc: &'a OnceCell<ImDocument<String>>,
}

impl<'a> Src<'a> {
    fn doc(&self) -> &'a ImDocument<String> {
        self.doc.get_or_init(|| {
            // It parsed once already; an empty document is only a fallback for spans.
            ImDocument::parse(self.text.to_string()).unwrap_or_else(|_| {
                ImDocument::parse(String::new()).expect("an empty document parses")
            })
        })
    }
}

pub struct HostIn<'a> {
    pub name: &'a str,
    pub src: Src<'a>,
    pub file: &'a HostFile,
}

pub struct Checks<'a> {
    pub root: &'a Path,
    pub sources: &'a Sources,
    pub out: &'a mut Vec<Diagnostic>,
    /// Every host name (from file names), including hosts whose file has errors.
    pub names: &'a [String],
    /// The machine running hearth, e.g. `x86_64-linux`.
    pub local_system: String,
}

impl Checks<'_> {
    fn at(&self, src: Src, path: &[P], text: impl Into<String>) -> Label {
        self.sources.label(src.id, locate(src.doc(), path), text)
    }

    /// A secondary label at `path`, only if the file spells that key out.
    fn also_at(&self, d: Diagnostic, src: Src, path: &[P], text: impl Into<String>) -> Diagnostic {
        if locate(src.doc(), path) == (0..0) {
            return d;
        }
        d.also(self.at(src, path, text))
    }

    fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }

    fn suggest_host(&self, d: Diagnostic, wrong: &str) -> Diagnostic {
        match did_you_mean(wrong, self.names.iter().map(String::as_str)) {
            Some(close) => d.help(format!("did you mean `{close}`?")),
            None => d,
        }
    }

    // -- hearth.toml --------------------------------------------------------

    pub fn fleet(&mut self, src: Src, fleet: &FleetFile) {
        for name in fleet.admins.keys() {
            let Some(why) = reserved_account(name) else {
                continue;
            };
            let l = self.at(src, &[P::K("admins"), P::K(name)], "not an admin account");
            self.push(
                Diagnostic::error(format!("an admin may not be named `{name}`"))
                    .at(l)
                    .help(format!("{why}; admins get their own wheel account: use the person's own name, e.g. `[admins.alice]`")),
            );
        }
        // The forms of `cidr`, `gateway` and `dns` are checked with the file; here, whether
        // they fit together.
        for (name, net) in &fleet.networks {
            let Some(cidr) = parse_cidr(&net.cidr) else {
                continue;
            };
            let Some(gw) = &net.gateway else { continue };
            if gw
                .parse::<IpAddr>()
                .is_ok_and(|ip| !cidr_contains(cidr, ip))
            {
                let l = self.at(
                    src,
                    &[P::K("networks"), P::K(name), P::K("gateway")],
                    format!("not in {}", net.cidr),
                );
                self.push(
                    Diagnostic::error(format!("gateway `{gw}` is outside network `{name}`"))
                        .at(l)
                        .help(format!("use an address inside `{}`", net.cidr)),
                );
            }
        }
        for (secret, def) in &fleet.secrets {
            for (i, host) in def.hosts.iter().enumerate() {
                if !self.names.contains(host) {
                    let l = self.at(
                        src,
                        &[P::K("secrets"), P::K(secret), P::K("hosts"), P::I(i)],
                        "no such host",
                    );
                    let d =
                        Diagnostic::error(format!("secret `{secret}` names unknown host `{host}`"))
                            .at(l);
                    let d = self.suggest_host(d, host);
                    self.push(d.help(format!(
                        "hosts are the files in `hosts/`: {}",
                        list_code(self.names)
                    )));
                }
            }
        }
    }

    // -- one host -----------------------------------------------------------

    /// Checks that need no host file contents: the name itself.
    pub fn host_name(&mut self, id: usize, name: &str) {
        if !valid_host_name(name) {
            let l = self
                .sources
                .label(id, 0..0, "the host name is the file name");
            self.push(
                Diagnostic::error(format!("`{name}` is not a valid host name"))
                    .at(l)
                    .help("rename the file: a host name is 1 to 63 lowercase letters, digits and `-`, not starting or ending with `-`"),
            );
        }
    }

    pub fn host(&mut self, h: &HostIn, fleet: Option<&FleetFile>) {
        self.hardware_system(h);
        self.roles(h);
        self.build_user(h, fleet);
        self.network(h, fleet);
        if let Some(disks) = &h.file.disks {
            self.disks(h.src, disks);
            self.esp(h, disks);
        }
        self.lab_table(h);
        self.modules(h);
    }

    /// `system` must be what the hardware profile runs.
    fn hardware_system(&mut self, h: &HostIn) {
        let (src, f) = (h.src, h.file);
        let hw_system = match f.hardware {
            Hardware::Helios64 => Some(System::Aarch64Linux),
            Hardware::GenericX86_64 => Some(System::X86_64Linux),
            Hardware::Lab => None,
        };
        let Some(expected) = hw_system.filter(|s| *s != f.system) else {
            return;
        };
        let l = self.at(
            src,
            &[P::K("system")],
            format!("the hardware needs `{expected}`"),
        );
        let hw = self.at(src, &[P::K("hardware")], "hardware profile set here");
        self.push(
            Diagnostic::error(format!(
                "`system = \"{}\"` does not match the hardware profile",
                f.system
            ))
            .at(l)
            .also(hw)
            .help(format!("set `system = \"{expected}\"`")),
        );
    }

    /// `[lab]` only on lab hosts.
    fn lab_table(&mut self, h: &HostIn) {
        if h.file.lab.is_some() && h.file.hardware != Hardware::Lab {
            let l = self.at(h.src, &[P::K("lab")], "only for lab hosts");
            self.push(
                Diagnostic::error("`[lab]` on a host that is not a lab host")
                    .at(l)
                    .help("remove `[lab]`, or set `hardware = \"lab\"` for a throwaway test host"),
            );
        }
    }

    /// Every `modules` entry is a file inside the repository.
    fn modules(&mut self, h: &HostIn) {
        let src = h.src;
        for (i, module) in h.file.modules.iter().enumerate() {
            let path = self.root.join(module);
            if path.is_file() && !inside(self.root, &path) {
                let l = self.at(
                    src,
                    &[P::K("modules"), P::I(i)],
                    "leads outside the repository",
                );
                self.push(
                    Diagnostic::error(format!("module `{module}` is outside the repository"))
                        .at(l)
                        .help("a symbolic link leads out of the repository; copy the module into it (e.g. under `modules/nixos/`)"),
                );
                continue;
            }
            if module.is_empty() || Path::new(module).is_absolute() || !path.is_file() {
                let l = self.at(src, &[P::K("modules"), P::I(i)], "file not found");
                self.push(
                    Diagnostic::error(format!("module `{module}` not found"))
                        .at(l)
                        .help("give a path relative to the repository root, e.g. `modules/nixos/media.nix`, of a file that exists"),
                );
            }
        }
    }

    /// The build user gets an account of its own; sharing it with an admin or the deploy
    /// user would merge two accounts and drop one's keys.
    fn build_user(&mut self, h: &HostIn, fleet: Option<&FleetFile>) {
        let Some(b) = &h.file.builder else { return };
        let user = b.user.as_str();
        let what = if user == "root" {
            return;
        } else if fleet.is_some_and(|f| f.admins.contains_key(user)) {
            "an admin"
        } else if h.file.ssh.user == user {
            "this host's SSH (deploy) user"
        } else {
            return;
        };
        let l = self.at(
            h.src,
            &[P::K("builder"), P::K("user")],
            format!("also {what}"),
        );
        self.push(
            Diagnostic::error(format!("the build user `{user}` is also {what}"))
                .at(l)
                .help("the build user gets an account of its own: pick another name, e.g. `nixbuild` (the default)"),
        );
    }

    fn roles(&mut self, h: &HostIn) {
        let (src, f) = (h.src, h.file);
        let has = |r: Role| f.roles.contains(&r);
        if has(Role::Builder) && f.builder.is_none() {
            let l = self.at(src, &[P::K("roles")], "has the `builder` role");
            self.push(
                Diagnostic::error("the `builder` role needs a `[builder]` table")
                    .at(l)
                    .help("add `[builder]` with `systems = [...]` (and `emulated = [...]` for foreign systems)"),
            );
        }
        if f.builder.is_some() && !has(Role::Builder) {
            let l = self.at(src, &[P::K("builder")], "`[builder]` without the role");
            self.push(
                Diagnostic::error("`[builder]` is set but `roles` lacks `builder`")
                    .at(l)
                    .help("add \"builder\" to `roles`, or remove `[builder]`"),
            );
        }
        if f.backup_target.is_some() && !has(Role::BackupTarget) {
            let l = self.at(
                src,
                &[P::K("backup_target")],
                "`[backup_target]` without the role",
            );
            self.push(
                Diagnostic::error("`[backup_target]` is set but `roles` lacks `backup-target`")
                    .at(l)
                    .help("add \"backup-target\" to `roles`, or remove `[backup_target]`"),
            );
        }
        let mut seen = Vec::new();
        for (i, r) in f.roles.iter().enumerate() {
            if seen.contains(r) {
                let l = self.at(src, &[P::K("roles"), P::I(i)], "listed twice");
                self.push(
                    Diagnostic::error("duplicate role")
                        .at(l)
                        .help("remove the second one"),
                );
            }
            seen.push(*r);
        }
    }

    fn network(&mut self, h: &HostIn, fleet: Option<&FleetFile>) {
        let (src, net) = (h.src, &h.file.network);
        let mut address_net = None;
        if let Some(addr) = &net.address {
            // Its form is checked with the file.
            address_net = parse_cidr(addr);
            if net.interface.is_none() {
                let l = self.at(
                    src,
                    &[P::K("network"), P::K("address")],
                    "static address without an interface",
                );
                self.push(
                    Diagnostic::error("a static `network.address` needs `network.interface`")
                        .at(l)
                        .help("add `interface = \"end0\"` (the name shown by `ip link`) to `[network]`"),
                );
            }
        }
        let Some(name) = &net.network else { return };
        let Some(fleet) = fleet else { return };
        match fleet.networks.get(name) {
            None => {
                let l = self.at(
                    src,
                    &[P::K("network"), P::K("network")],
                    "not defined in hearth.toml",
                );
                let mut d = Diagnostic::error(format!("unknown network `{name}`")).at(l);
                if let Some(close) = did_you_mean(name, fleet.networks.keys().map(String::as_str)) {
                    d = d.help(format!("did you mean `{close}`?"));
                }
                let defined: Vec<&String> = fleet.networks.keys().collect();
                d = if defined.is_empty() {
                    d.help(format!(
                        "define it in hearth.toml: `[networks.{name}]` with `cidr = \"…\"`"
                    ))
                } else {
                    d.help(format!("networks in hearth.toml: {}", list_code(&defined)))
                };
                self.push(d);
            }
            Some(def) => {
                if let (Some((ip, _)), Some(cidr)) = (address_net, parse_cidr(&def.cidr)) {
                    if !cidr_contains(cidr, ip) {
                        let l = self.at(
                            src,
                            &[P::K("network"), P::K("address")],
                            format!("not in {}", def.cidr),
                        );
                        self.push(
                            Diagnostic::error(format!(
                                "static address is outside network `{name}`"
                            ))
                            .at(l)
                            .help(format!(
                                "use an address inside `{}`, or another network",
                                def.cidr
                            )),
                        );
                    }
                }
            }
        }
    }

    fn disks(&mut self, src: Src, disks: &Disks) {
        let mut devices: Vec<(&str, Vec<P>)> = vec![(
            disks.root.device.as_str(),
            vec![P::K("disks"), P::K("root"), P::K("device")],
        )];
        for (pool, p) in &disks.pools {
            for (i, d) in p.disks.iter().enumerate() {
                devices.push((
                    d.as_str(),
                    vec![
                        P::K("disks"),
                        P::K("pools"),
                        P::K(pool),
                        P::K("disks"),
                        P::I(i),
                    ],
                ));
            }
            let min = match p.mode {
                PoolMode::Mirror | PoolMode::Raidz1 => 2,
                PoolMode::Raidz2 => 3,
            };
            if p.disks.len() < min {
                let mode = toml::Value::try_from(p.mode)
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .unwrap_or_default();
                let l = self.at(
                    src,
                    &[P::K("disks"), P::K("pools"), P::K(pool), P::K("disks")],
                    format!("{} disk(s)", p.disks.len()),
                );
                self.push(
                    Diagnostic::error(format!(
                        "pool `{pool}`: a {mode} needs at least {min} disks"
                    ))
                    .at(l)
                    .help("add disks, or pick a mode that fits the number of disks"),
                );
            }
        }
        self.pools_and_mounts(src, disks);
        let mut seen: BTreeMap<&str, Vec<P>> = BTreeMap::new();
        for (dev, path) in devices {
            if !disks.allow_unstable_paths && !dev.starts_with("/dev/disk/by-id/") {
                let l = self.at(src, &path, "not a /dev/disk/by-id path");
                self.push(
                    Diagnostic::error(format!("disk `{dev}` is not named by id"))
                        .at(l)
                        .help("use its `/dev/disk/by-id/…` path (see `ls -l /dev/disk/by-id`): names like `/dev/sda` can change between boots")
                        .help("or set `allow_unstable_paths = true` in `[disks]` if you accept that"),
                );
            }
            if let Some(first) = seen.get(dev) {
                let l = self.at(src, &path, "used again here");
                let f = self.at(src, first, "first used here");
                self.push(
                    Diagnostic::error(format!("disk `{dev}` is used twice"))
                        .at(l)
                        .also(f)
                        .help("each disk belongs to one pool or to the root"),
                );
            } else {
                seen.insert(dev, path);
            }
        }
    }

    /// systemd-boot lives on the EFI system partition: without one the host can't boot.
    fn esp(&mut self, h: &HostIn, disks: &Disks) {
        let loader = h.file.boot_loader.unwrap_or(match h.file.hardware {
            Hardware::GenericX86_64 => BootLoader::SystemdBoot,
            Hardware::Helios64 => BootLoader::Extlinux,
            Hardware::Lab => BootLoader::None,
        });
        if loader == BootLoader::SystemdBoot && disks.root.esp == Some(false) {
            let l = self.at(
                h.src,
                &[P::K("disks"), P::K("root"), P::K("esp")],
                "no EFI system partition",
            );
            let d =
                Diagnostic::error("systemd-boot needs an EFI system partition, but `esp = false`")
                    .at(l);
            let d = self.also_at(d, h.src, &[P::K("boot_loader")], "systemd-boot chosen here");
            self.push(d.help("remove `esp = false`, or pick a boot loader that needs no ESP (`extlinux`, `grub` on BIOS)"));
        }
    }

    /// Pools that would merge with the root pool, and datasets mounted at one place twice.
    fn pools_and_mounts(&mut self, src: Src, disks: &Disks) {
        for pool in disks.pools.keys() {
            if pool == ROOT_POOL {
                let l = self.at(
                    src,
                    &[P::K("disks"), P::K("pools"), P::K(pool)],
                    "the root pool's name",
                );
                self.push(
                    Diagnostic::error(format!("a data pool may not be named `{ROOT_POOL}`"))
                        .at(l)
                        .help(format!("`{ROOT_POOL}` is the pool hearth creates for a ZFS root; the two would be merged into one: pick another name, e.g. `tank`")),
                );
            }
        }
        let mut seen: BTreeMap<&str, Vec<P>> = BTreeMap::new();
        for (pool, p) in &disks.pools {
            for (ds, d) in &p.datasets {
                let Some(mp) = d.mountpoint.as_deref() else {
                    continue;
                };
                if mp == "none" || mp == "legacy" {
                    continue;
                }
                let path = vec![
                    P::K("disks"),
                    P::K("pools"),
                    P::K(pool),
                    P::K("datasets"),
                    P::K(ds),
                    P::K("mountpoint"),
                ];
                let key = mp.trim_end_matches('/');
                match seen.get(key) {
                    Some(first) => {
                        let l = self.at(src, &path, "mounted here again");
                        let f = self.at(src, first, "first mounted here");
                        self.push(
                            Diagnostic::error(format!("two datasets are mounted at `{mp}`"))
                                .at(l)
                                .also(f)
                                .help("give each dataset its own mountpoint, or `mountpoint = \"none\"`"),
                        );
                    }
                    None => {
                        seen.insert(key, path);
                    }
                }
            }
        }
    }

    // -- across hosts -------------------------------------------------------

    pub fn fleet_wide(&mut self, hosts: &[HostIn]) {
        self.observability(hosts);
        self.duplicates(hosts);
        let by_name: BTreeMap<&str, &HostIn> = hosts.iter().map(|h| (h.name, h)).collect();
        let builders: Vec<&HostIn> = hosts
            .iter()
            .filter(|h| h.file.roles.contains(&Role::Builder))
            .collect();
        let backup_targets: Vec<&str> = hosts
            .iter()
            .filter(|h| h.file.roles.contains(&Role::BackupTarget))
            .map(|h| h.name)
            .collect();
        for h in hosts {
            self.build_policy(h, &by_name, &builders);
            self.restic(h, &by_name, &backup_targets);
        }
    }

    fn duplicates(&mut self, hosts: &[HostIn]) {
        let mut ssh: BTreeMap<(String, u16), &HostIn> = BTreeMap::new();
        let mut ips: BTreeMap<IpAddr, &HostIn> = BTreeMap::new();
        for h in hosts {
            let key = (h.file.ssh.address.to_ascii_lowercase(), h.file.ssh.port);
            if let Some(first) = ssh.get(&key) {
                let path = [P::K("ssh"), P::K("address")];
                let l = self.at(h.src, &path, "used again here");
                let f = self.at(
                    first.src,
                    &path,
                    format!("first used by `{}` here", first.name),
                );
                self.push(
                    Diagnostic::error(format!(
                        "hosts `{}` and `{}` have the same SSH address `{}:{}`",
                        first.name, h.name, key.0, key.1
                    ))
                    .at(l)
                    .also(f)
                    .help("each host needs its own address (or its own `ssh.port`)"),
                );
            } else {
                ssh.insert(key, h);
            }
            let static_ip = h
                .file
                .network
                .address
                .as_deref()
                .and_then(parse_cidr)
                .map(|(ip, _)| ip);
            if let Some(ip) = static_ip {
                if let Some(first) = ips.get(&ip) {
                    let path = [P::K("network"), P::K("address")];
                    let l = self.at(h.src, &path, "used again here");
                    let f = self.at(
                        first.src,
                        &path,
                        format!("first used by `{}` here", first.name),
                    );
                    self.push(
                        Diagnostic::error(format!(
                            "hosts `{}` and `{}` have the same static address `{ip}`",
                            first.name, h.name
                        ))
                        .at(l)
                        .also(f)
                        .help("give each host its own address"),
                    );
                } else {
                    ips.insert(ip, h);
                }
            }
        }
    }

    fn build_policy(
        &mut self,
        h: &HostIn,
        by_name: &BTreeMap<&str, &HostIn>,
        builders: &[&HostIn],
    ) {
        let system = h.file.system;
        match &h.file.build {
            BuildPolicy::Builder(b) => {
                let l = || self.at(h.src, &[P::K("build")], "names the builder");
                if !self.names.contains(b) {
                    let d = Diagnostic::error(format!("builder `{b}` does not exist")).at(l());
                    let d = self.suggest_host(d, b);
                    self.push(d.help("name a host from `hosts/` that has the `builder` role"));
                    return;
                }
                // Its file has errors of its own: nothing more to say here.
                let Some(target) = by_name.get(b.as_str()) else {
                    return;
                };
                if !target.file.roles.contains(&Role::Builder) {
                    let d = Diagnostic::error(format!("`{b}` is not a builder")).at(l());
                    let d = self.also_at(d, target.src, &[P::K("roles")], "no `builder` role here");
                    let d = d.help(format!("add \"builder\" to `roles` of `{b}` (with a `[builder]` table), or build elsewhere"));
                    self.push(d);
                } else if !can_build(target.file, system) {
                    let d = Diagnostic::error(format!("builder `{b}` cannot build `{system}`"))
                        .at(l())
                        .also(self.at(target.src, &[P::K("builder")], "its systems are set here"))
                        .help(format!(
                            "add \"{system}\" to `systems` or `emulated` in `[builder]` of `{b}`"
                        ));
                    self.push(d);
                }
            }
            BuildPolicy::Target => {}
            policy @ (BuildPolicy::Auto | BuildPolicy::Local) => {
                let local = self.local_system == system.as_str();
                let remote = builders.iter().any(|b| can_build(b.file, system));
                let (message, needed) = match policy {
                    BuildPolicy::Local if !local => (
                        format!(
                            "`build = \"local\"` but this machine is `{}`, not `{system}`",
                            self.local_system
                        ),
                        true,
                    ),
                    BuildPolicy::Auto if !local && !remote => (
                        format!(
                            "no builder and not this machine (`{}`) can build `{system}`",
                            self.local_system
                        ),
                        true,
                    ),
                    _ => (String::new(), false),
                };
                if needed {
                    let l = self.at(h.src, &[P::K("system")], "nothing in the fleet builds this");
                    self.push(
                        Diagnostic::warning(message)
                            .at(l)
                            .help(format!(
                                "give a builder host `emulated = [\"{system}\"]` (or `systems`) in its `[builder]`, or set `build = \"target\"` to build on the host itself"
                            )),
                    );
                }
            }
        }
    }

    fn restic(&mut self, h: &HostIn, by_name: &BTreeMap<&str, &HostIn>, backup_targets: &[&str]) {
        let Some(restic) = h.file.services.get("restic") else {
            return;
        };
        let text = |k: &str| {
            restic
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (target, rclone) = (text("target"), text("rclone_remote"));
        let section = [P::K("services"), P::K("restic")];
        if !target.is_empty() {
            let l = || {
                self.at(
                    h.src,
                    &[P::K("services"), P::K("restic"), P::K("target")],
                    "the backup target",
                )
            };
            if !self.names.contains(&target) {
                let d =
                    Diagnostic::error(format!("backup target `{target}` does not exist")).at(l());
                let d = self.suggest_host(d, &target);
                self.push(d.help("name a host from `hosts/` that has the `backup-target` role"));
            } else if let Some(t) = by_name.get(target.as_str()) {
                if !t.file.roles.contains(&Role::BackupTarget) {
                    let d = Diagnostic::error(format!("`{target}` is not a backup target")).at(l());
                    let d =
                        self.also_at(d, t.src, &[P::K("roles")], "no `backup-target` role here");
                    let d = d.help(format!(
                        "add \"backup-target\" to `roles` of `{target}`, or back up elsewhere"
                    ));
                    self.push(d);
                }
            }
        } else if rclone.is_empty() {
            match backup_targets {
                [_] => {}
                [] => {
                    let l = self.at(h.src, &section, "backs up to nowhere");
                    self.push(
                        Diagnostic::error("restic has no backup target")
                            .at(l)
                            .help("give a host the `backup-target` role, or set `rclone_remote` in `[services.restic]`"),
                    );
                }
                many => {
                    let l = self.at(h.src, &section, "which backup target?");
                    self.push(
                        Diagnostic::error("restic has several possible backup targets")
                            .at(l)
                            .help(format!("set `target` to one of {}", list_code(many))),
                    );
                }
            }
        }
    }
}

/// Why `name` can't be an admin's account: NixOS or hearth already defines it.
fn reserved_account(name: &str) -> Option<&'static str> {
    match name {
        "root" => Some("root already accepts every admin's keys"),
        "nobody" | "sshd" | "messagebus" | "nscd" => Some("NixOS defines this system account"),
        _ if name.starts_with("nixbld") || name.starts_with("systemd-") => {
            Some("NixOS defines this system account")
        }
        _ => None,
    }
}

/// The pool hearth creates for a ZFS root filesystem (see compile's disko output).
pub const ROOT_POOL: &str = "zroot";

/// What a builder host can build: its own system, `systems` and `emulated`.
fn can_build(builder: &HostFile, system: System) -> bool {
    builder.system == system
        || builder
            .builder
            .as_ref()
            .is_some_and(|b| b.systems.contains(&system) || b.emulated.contains(&system))
}

/// RFC 1123 labels, lowercase: what DNS, NixOS `networking.hostName` and Nix attribute
/// names all accept without quoting surprises.
pub fn valid_host_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `path`, symbolic links resolved, is inside `root`.
fn inside(root: &Path, path: &Path) -> bool {
    match (root.canonicalize(), path.canonicalize()) {
        (Ok(r), Ok(p)) => p.starts_with(r),
        _ => false,
    }
}

fn cidr_contains((net, prefix): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in ["helios64", "nixos", "a", "web-1", &"a".repeat(63)] {
            assert!(valid_host_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "Web", "a_b", "a.b", &"a".repeat(64), "ä"] {
            assert!(!valid_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        let net = parse_cidr("192.168.1.0/24").unwrap();
        assert!(cidr_contains(net, "192.168.1.20".parse().unwrap()));
        assert!(!cidr_contains(net, "192.168.2.20".parse().unwrap()));
        assert!(cidr_contains(
            parse_cidr("0.0.0.0/0").unwrap(),
            "10.0.0.1".parse().unwrap()
        ));
        assert!(cidr_contains(
            parse_cidr("fd00::/8").unwrap(),
            "fd12::1".parse().unwrap()
        ));
        assert!(parse_cidr("192.168.1.0/33").is_none());
        assert!(parse_cidr("192.168.1/24").is_none());
        assert_eq!(parse_cidr("10.0.0.1").unwrap().1, 32);
    }

    #[test]
    fn locate_finds_values_keys_and_headers() {
        let text = "a = 1\n[t]\nb = [\"x\", \"y\"]\nc.d = true\n[[arr]]\ne = 2\n".to_string();
        let doc = ImDocument::parse(text.clone()).unwrap();
        let s = |r: Range<usize>| &text[r];
        assert_eq!(s(locate(&doc, &[P::K("a")])), "1");
        assert_eq!(s(locate(&doc, &[P::K("t"), P::K("b"), P::I(1)])), "\"y\"");
        assert_eq!(s(locate(&doc, &[P::K("t"), P::K("c"), P::K("d")])), "true");
        // A table's span starts at its header (labels keep only that line).
        assert!(s(locate(&doc, &[P::K("t")])).starts_with("[t]\n"));
        assert_eq!(s(locate(&doc, &[P::K("arr"), P::I(0), P::K("e")])), "2");
        // Missing keys fall back to the deepest key found.
        assert_eq!(s(locate(&doc, &[P::K("t"), P::K("b"), P::I(7)])), "b");
    }
}
