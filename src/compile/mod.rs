//! Compile a validated inventory into `generated/`: per-host NixOS modules, disko
//! layouts, the fleet index and agenix rules.
//!
//! `compile` is pure (inventory + catalog → file contents); `run_gen` checks every
//! file with rnix, then writes only what changed, atomically.

pub mod emit;
pub mod locate;
pub mod nix;
pub mod render;
pub mod resolve;
pub mod stamp;
pub mod wiring;
pub mod write;

use crate::catalog::Catalog;
use crate::inventory::{self, Inventory};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const GENERATED_DIR: &str = "generated";
pub const SECRETS_RULES: &str = "secrets/secrets.nix";

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// Write nothing; list stale, missing and extra files and exit 1 if any.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Only this host.
    pub host: Option<String>,
    /// Print JSON instead of TOML-like text.
    #[arg(long)]
    pub json: bool,
    /// Only the derived wiring between hosts (vhosts, DNS records, …), one table per section.
    #[arg(long, conflicts_with = "host")]
    pub wiring: bool,
}

/// Everything `gen` writes, by repo-relative path, plus the resolution it came from.
pub struct Output {
    pub files: BTreeMap<PathBuf, String>,
    pub resolved: resolve::Resolved,
}

/// A compile failure: every problem found, each naming its source file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct CompileErrors(pub Vec<String>);

/// Inventory + catalog → the contents of every generated file. Pure. The text comes
/// from the printer; `check_parses` confirms it with rnix before anything is written.
pub fn compile(inv: &Inventory, catalog: &Catalog) -> Result<Output, CompileErrors> {
    let located = |errors: Vec<String>| {
        CompileErrors(
            errors
                .iter()
                .map(|e| locate::with_location(&inv.root, e))
                .collect(),
        )
    };
    let resolved = resolve::resolve(inv, catalog).map_err(located)?;
    let renderer =
        render::Renderer::new(catalog).map_err(|e| CompileErrors(vec![format!("{e:#}")]))?;
    // The public halves of the fleet's keys (`keys/`): signing and peer logins.
    let trust = crate::nix::sign::Trust::load(&inv.root, inv.hosts.keys().cloned())
        .map_err(|e| CompileErrors(vec![format!("{e:#}")]))?;
    // Hosts are independent: emit them on every core.
    let names: Vec<&String> = resolved.hosts.keys().collect();
    let per_host = parallel_map(&names, |name| {
        host_files(inv, catalog, &renderer, &resolved, name)
    });
    let mut files = BTreeMap::new();
    let mut errors = Vec::new();
    for (f, e) in per_host {
        files.extend(f);
        errors.extend(e);
    }
    errors.extend(fleet_files(inv, &resolved, &trust, &mut files));
    if errors.is_empty() {
        Ok(Output { files, resolved })
    } else {
        Err(located(errors))
    }
}

/// One host's files: `default.nix` (its module) and `disko.nix` when it has `[disks]`.
fn host_files(
    inv: &Inventory,
    catalog: &Catalog,
    renderer: &render::Renderer,
    resolved: &resolve::Resolved,
    name: &str,
) -> (Vec<(PathBuf, String)>, Vec<String>) {
    let gen = Path::new(GENERATED_DIR);
    let rh = &resolved.hosts[name];
    let host = &inv.hosts[name];
    let src = host.source.display().to_string();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    match emit::host_module(inv, catalog, renderer, resolved, rh) {
        Ok(module) => {
            let mut sources = format!("{src}, {}", inventory::FLEET_FILE);
            for def in rh.services.keys().filter_map(|s| catalog.get(s)) {
                if def.origin != "builtin" {
                    sources.push_str(", ");
                    sources.push_str(&def.origin);
                }
            }
            sources.push_str(" and fleet facts");
            match nix::format_file(&emit::header(&sources), Some(emit::MODULE_ARGS), &module) {
                Ok(text) => files.push((gen.join(name).join("default.nix"), text)),
                Err(e) => errors.push(format!("{src}: {e}")),
            }
        }
        Err(e) => errors.extend(e),
    }
    if let Some(layout) = emit::disko(host, rh) {
        match nix::format_file(&emit::header(&format!("{src} ([disks])")), None, &layout) {
            Ok(text) => files.push((gen.join(name).join("disko.nix"), text)),
            Err(e) => errors.push(format!("{src} ([disks]): {e}")),
        }
    }
    (files, errors)
}

/// The fleet-wide files: `common.nix`, `fleet.nix` and the agenix rules. Errors of the
/// common module come after those of the files (the order `gen` has always printed).
fn fleet_files(
    inv: &Inventory,
    resolved: &resolve::Resolved,
    trust: &crate::nix::sign::Trust,
    files: &mut BTreeMap<PathBuf, String>,
) -> Vec<String> {
    let gen = Path::new(GENERATED_DIR);
    let mut errors = Vec::new();
    let mut common_errors = Vec::new();
    let mut put = |path: PathBuf, text: Result<String, nix::NixValueError>, from: &str| match text {
        Ok(text) => {
            files.insert(path, text);
        }
        Err(e) => errors.push(format!("{from}: {e}")),
    };
    let fleet_sources = format!(
        "{} and {}/*.toml",
        inventory::FLEET_FILE,
        inventory::HOSTS_DIR
    );
    match emit::common_module(inv, trust) {
        Ok(common) => {
            let header = format!(
                "{}\nFleet-wide settings every host module imports.",
                emit::header(&fleet_sources)
            );
            let text = nix::format_file(&header, None, &common);
            put(gen.join(emit::COMMON_FILE), text, &fleet_sources)
        }
        Err(e) => common_errors = e,
    }
    let index = emit::fleet_index(inv, resolved);
    let text = nix::format_file(&emit::header(&fleet_sources), None, &index);
    put(gen.join("fleet.nix"), text, &fleet_sources);
    if !resolved.secrets.is_empty() {
        let header = format!(
            "{}\nagenix rules: each secret can be decrypted by the admins and the hosts that use it.",
            emit::header(&fleet_sources)
        );
        let text = nix::format_file(&header, None, &emit::secrets_rules(inv, resolved));
        put(PathBuf::from(SECRETS_RULES), text, &fleet_sources);
    }
    errors.extend(common_errors);
    errors
}

/// Parse `paths` of `files` with rnix; every file that doesn't parse, with line and column.
/// `gen` runs this on what it is about to write and refuses to write anything otherwise.
pub fn check_parses<'a>(
    files: &BTreeMap<PathBuf, String>,
    paths: impl Iterator<Item = &'a PathBuf>,
) -> Result<(), CompileErrors> {
    let todo: Vec<(&PathBuf, &String)> = paths.map(|p| (p, &files[p])).collect();
    let errors: Vec<String> = parallel_map(&todo, |(path, text)| {
        nix::check_parse(text)
            .err()
            .map(|e| format!("internal error: {} would not parse at {e}", path.display()))
    })
    .into_iter()
    .flatten()
    .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CompileErrors(errors))
    }
}

/// `f` over `items` on up to `available_parallelism` threads, results in order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || items.len() < 64 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("compile thread panicked"))
            .collect()
    })
}

/// Load inventory and catalog, compile.
pub fn compile_repo(root: &Path) -> anyhow::Result<Output> {
    let catalog = Catalog::load(root)?;
    let inv = inventory::load(root)?;
    Ok(compile(&inv, &catalog)?)
}

/// Everything `gen` does short of writing: compile, and parse every file it would
/// write. `hearth check` runs this, so whatever `gen` would reject, `check` rejects.
pub fn dry_run(inv: &Inventory, catalog: &Catalog) -> Result<Output, CompileErrors> {
    let out = compile(inv, catalog)?;
    check_parses(&out.files, out.files.keys())?;
    Ok(out)
}

/// Repo-relative files the output refers to without reading them (the hardware
/// profiles, catalog imports and host modules): the no-op stamp watches them.
pub fn referenced_files(inv: &Inventory, catalog: &Catalog) -> Vec<PathBuf> {
    let mut paths = std::collections::BTreeSet::new();
    for host in inv.hosts.values() {
        let hw = emit::hardware_name(host.file.hardware);
        paths.insert(PathBuf::from(format!("modules/nixos/{hw}.nix")));
        for m in &host.file.modules {
            paths.insert(PathBuf::from(m.trim_start_matches("./")));
        }
        // caddy's `trust_root`: `gen` checks it exists, so its removal must recompile.
        let root = host
            .file
            .services
            .get("caddy")
            .and_then(|c| c.get("trust_root"));
        if let Some(path) = root.and_then(|v| v.as_str()) {
            paths.insert(PathBuf::from(path));
        }
    }
    for def in catalog.services.values() {
        paths.extend(def.imports.iter().map(PathBuf::from));
    }
    paths.into_iter().collect()
}

/// What `gen` did.
#[derive(Debug, PartialEq, Eq)]
pub enum GenOutcome {
    /// The stamp proved nothing changed; nothing was compiled.
    UpToDate,
    /// Compiled; these files were written or deleted.
    Compiled(write::Changes),
}

/// `hearth gen` without printing: compile and write what changed.
pub fn generate(root: &Path) -> anyhow::Result<GenOutcome> {
    let inputs = stamp::input_hash(root)?;
    if stamp::is_fresh(root, &inputs) {
        return Ok(GenOutcome::UpToDate);
    }
    let catalog = Catalog::load(root)?;
    let inv = inventory::load(root)?;
    let out = compile(&inv, &catalog)?;
    for w in &out.resolved.warnings {
        eprintln!("warning: {w}");
    }
    let changes = write::diff(root, &out.files)?;
    // Unchanged files are not written, so only the others need the rnix check.
    check_parses(&out.files, changes.missing.iter().chain(&changes.stale))?;
    write::apply(root, &out.files, &changes)?;
    stamp::record(root, &inputs, &out.files, &referenced_files(&inv, &catalog))?;
    Ok(GenOutcome::Compiled(changes))
}

pub fn run_gen(root: &Path, args: GenArgs) -> anyhow::Result<u8> {
    if args.check {
        let out = compile_repo(root)?;
        let changes = write::diff(root, &out.files)?;
        for p in &changes.missing {
            println!("missing  {}", p.display());
        }
        for p in &changes.stale {
            println!("stale    {}", p.display());
        }
        for p in &changes.extra {
            println!("extra    {}", p.display());
        }
        if changes.is_empty() {
            println!("generated files are up to date");
            return Ok(0);
        }
        eprintln!("generated files are out of date: run `hearth gen`");
        return Ok(1);
    }
    match generate(root)? {
        GenOutcome::UpToDate => println!("generated files are up to date"),
        GenOutcome::Compiled(c) if c.is_empty() => println!("generated files are up to date"),
        GenOutcome::Compiled(c) => {
            for p in &c.missing {
                println!("created  {}", p.display());
            }
            for p in &c.stale {
                println!("updated  {}", p.display());
            }
            for p in &c.extra {
                println!("deleted  {}", p.display());
            }
        }
    }
    Ok(0)
}

/// The resolved view `hearth show` prints, keys sorted (docs/ARCHITECTURE.md,
/// "Dependencies").
pub fn show_value(
    res: &resolve::Resolved,
    host: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let mut value = match host {
        Some(h) => {
            let rh = res.hosts.get(h).with_context(|| {
                let known: Vec<&str> = res.hosts.keys().map(String::as_str).collect();
                format!("no host `{h}` (hosts: {})", known.join(", "))
            })?;
            serde_json::to_value(rh)?
        }
        None => serde_json::to_value(res)?,
    };
    value.sort_all_objects();
    Ok(value)
}

pub fn run_show(root: &Path, args: ShowArgs) -> anyhow::Result<u8> {
    let catalog = Catalog::load(root)?;
    let inv = inventory::load(root)?;
    let res = resolve::resolve(&inv, &catalog).map_err(CompileErrors)?;
    if args.wiring {
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&res.wiring)?),
            false => print!("{}", wiring::text(&res.wiring)),
        }
        return Ok(0);
    }
    let value = show_value(&res, args.host.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", to_text(&value)?);
    }
    Ok(0)
}

/// TOML for humans; TOML has no null, so nulls are dropped first.
fn to_text(v: &serde_json::Value) -> anyhow::Result<String> {
    fn strip(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(o) => serde_json::Value::Object(
                o.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.iter().filter(|v| !v.is_null()).map(strip).collect())
            }
            other => other.clone(),
        }
    }
    Ok(toml::to_string_pretty(&strip(v))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_parses_names_every_broken_file() {
        let mut files = BTreeMap::new();
        files.insert(
            PathBuf::from("generated/a/default.nix"),
            "{ a = 1; }".to_string(),
        );
        files.insert(
            PathBuf::from("generated/b/default.nix"),
            "{\n  a = ;\n}".to_string(),
        );
        assert!(check_parses(&files, [PathBuf::from("generated/a/default.nix")].iter()).is_ok());
        let err = check_parses(&files, files.keys()).unwrap_err().to_string();
        assert!(
            err.contains("generated/b/default.nix would not parse at 2:"),
            "{err}"
        );
        assert!(!err.contains("generated/a"), "{err}");
    }

    #[test]
    fn a_builders_push_key_is_authorized_on_the_hosts_it_builds_for_only() {
        let dir = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeAAA nixbuild@big";
        w("hearth.toml", "domain = \"home.arpa\"\n");
        w(
            "hosts/big.toml",
            &format!(
                "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\nroles = [\"builder\"]\n\
                 [ssh]\naddress = \"192.168.1.10\"\n[builder]\nemulated = [\"aarch64-linux\"]\npush_key = \"{key}\"\n"
            ),
        );
        w(
            "hosts/nas.toml",
            "system = \"aarch64-linux\"\nhardware = \"helios64\"\n[ssh]\naddress = \"192.168.1.11\"\nuser = \"deploy\"\n",
        );
        let out = compile_repo(dir.path()).unwrap();
        let nas = &out.files[&PathBuf::from("generated/nas/default.nix")];
        let line = "restrict,command=\\\"nix-daemon --stdio\\\" ssh-ed25519 \
                    AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeAAA hearth-push-from-big";
        assert!(nas.contains(line), "{nas}");
        // On the target's SSH user, which Nix trusts with the unsigned paths it receives.
        assert!(nas.contains("users.deploy"), "{nas}");
        assert!(nas.contains("\"deploy\""), "{nas}");
        let big = &out.files[&PathBuf::from("generated/big/default.nix")];
        assert!(
            !big.contains("hearth-push-from"),
            "not on the builder itself: {big}"
        );
    }

    #[test]
    fn signing_keys_reach_every_host_and_builder_keys_only_their_assigned_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let dep = "home.arpa-deployer-1:0vYtd4fB1GuB3hJ0ly5l5O/P4ay+QdS3kb8d6pi/4Vk=";
        let bld = "big-builder-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        w("hearth.toml", "domain = \"home.arpa\"\n");
        w("keys/deployer.pub", &format!("{dep}\n"));
        w("keys/builder-big.pub", &format!("{bld}\n"));
        w(
            "keys/peer-nas.pub",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJi8ATl8jDn2ekXCJaG+4Uk+MmmHPO4FFP4cS+zELAoV root@nas\n",
        );
        // Real ed25519 key blobs: the inventory parses keys.
        let push_key = |name: &str| match name {
            "big" => "AAAAC3NzaC1lZDI1NTE5AAAAINvRiFl5mRfxrCiOq36L9BsoUbEv1onbh7sftqHhuBlN",
            _ => "AAAAC3NzaC1lZDI1NTE5AAAAIGpdM5e5SKmBHI/NgH9ouu4y7ZSWA8fUDgn5UZq9CKR0",
        };
        let builder = |name: &str, addr: &str, speed: u32| {
            let key = push_key(name);
            format!(
                "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\nroles = [\"builder\"]\n\
                 [ssh]\naddress = \"{addr}\"\n[builder]\nemulated = [\"aarch64-linux\"]\nspeed_factor = {speed}\n\
                 push_key = \"ssh-ed25519 {key} nixbuild@{name}\"\n"
            )
        };
        w("hosts/big.toml", &builder("big", "192.168.1.10", 2));
        w("hosts/small.toml", &builder("small", "192.168.1.12", 1));
        let arm = |addr: &str, build: &str| {
            format!(
                "system = \"aarch64-linux\"\nhardware = \"helios64\"\n{build}[ssh]\naddress = \"{addr}\"\nuser = \"deploy\"\n"
            )
        };
        w("hosts/nas.toml", &arm("192.168.1.11", ""));
        w(
            "hosts/pi.toml",
            &arm("192.168.1.13", "build = \"builder:small\"\n"),
        );
        let out = compile_repo(dir.path()).unwrap();
        let file =
            |h: &str| out.files[&PathBuf::from(format!("generated/{h}/default.nix"))].clone();
        let common = &out.files[&PathBuf::from("generated/common.nix")];
        assert!(common.contains(dep) && common.contains(bld), "{common}");
        assert!(common.contains("trusted-public-keys"), "{common}");
        assert!(
            common.contains("restrict,command=\\\"nix-daemon --stdio\\\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJi8ATl8jDn2ekXCJaG+4Uk+MmmHPO4FFP4cS+zELAoV hearth-peer-nas"),
            "{common}"
        );
        assert!(common.contains("hearth-push"), "{common}");
        // auto picks big (faster) for nas: only big's key, on the push user (big signs).
        let nas = file("nas");
        assert!(
            nas.contains(&format!("{} hearth-push-from-big", push_key("big"))),
            "{nas}"
        );
        assert!(!nas.contains("hearth-push-from-small"), "{nas}");
        assert!(nas.contains("hearth-push.openssh.authorizedKeys"), "{nas}");
        // pi names small, which has no signing key: the old way, on the deploy user.
        let pi = file("pi");
        assert!(pi.contains("hearth-push-from-small"), "{pi}");
        assert!(!pi.contains("hearth-push-from-big"), "{pi}");
        assert!(
            pi.contains("deploy = {") && !pi.contains("hearth-push.openssh"),
            "{pi}"
        );
        assert!(file("big").contains("secret-key-files"));
        assert!(!file("small").contains("secret-key-files"));
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<u32> = (0..1000).collect();
        assert_eq!(
            parallel_map(&items, |i| i * 2),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
    }
}
