//! Where a host's system is built: on this machine, on a builder, or on the target itself.
//! Pure: the inventory and the local Nix's abilities in, a decision and a human reason out.

use super::localnix::LocalNix;
use crate::inventory::{BuildPolicy, BuilderRole, Host, Inventory, Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// The deployer's own Nix.
    Local,
    /// A host with the `builder` role; `emulated` when it builds the system through binfmt.
    Builder { name: String, emulated: bool },
    /// The target host builds its own system.
    Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub location: Where,
    /// Why, as a sentence for `hearth deploy --dry-run`.
    pub reason: String,
}

/// A `builder:<name>` policy that can't be honoured. Typed because deploy fails just that host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("{source_file}: `build = \"builder:{builder}\"` names no host; add hosts/{builder}.toml or pick another builder")]
    UnknownBuilder {
        source_file: String,
        builder: String,
    },
    #[error("{source_file}: `build = \"builder:{builder}\"` but {builder} lacks the `builder` role; add `roles = [\"builder\"]` and a [builder] section to hosts/{builder}.toml")]
    NotABuilder {
        source_file: String,
        builder: String,
    },
    #[error("{source_file}: `build = \"builder:{builder}\"` but {builder} does not build {system}; list it under `systems` or `emulated` in its [builder] section")]
    BuilderLacksSystem {
        source_file: String,
        builder: String,
        system: String,
    },
}

/// A builder's settings: its `[builder]` section, or the defaults when it only has the role.
pub fn builder_role(host: &Host) -> Option<BuilderRole> {
    if !host.file.roles.contains(&Role::Builder) {
        return None;
    }
    Some(
        host.file
            .builder
            .clone()
            .unwrap_or_else(|| toml::from_str("").expect("every [builder] field has a default")),
    )
}

/// Systems a builder builds natively: `systems`, or its own system when that list is empty.
pub fn native_systems(host: &Host, role: &BuilderRole) -> Vec<String> {
    if role.systems.is_empty() {
        vec![host.file.system.as_str().to_string()]
    } else {
        role.systems
            .iter()
            .map(|s| s.as_str().to_string())
            .collect()
    }
}

/// How `builder` builds `system`: `Some(false)` natively, `Some(true)` by emulation, `None` not at all.
pub fn builds(host: &Host, role: &BuilderRole, system: &str) -> Option<bool> {
    if native_systems(host, role).iter().any(|s| s == system) {
        Some(false)
    } else if role.emulated.iter().any(|s| s.as_str() == system) {
        Some(true)
    } else {
        None
    }
}

fn how(emulated: bool) -> &'static str {
    if emulated {
        "by emulation"
    } else {
        "natively"
    }
}

/// Decide where `host` is built.
pub fn place(
    host: &Host,
    inventory: &Inventory,
    local: &LocalNix,
) -> Result<Placement, PlacementError> {
    let system = host.file.system.as_str();
    let local_can = local.can_build(system);
    let local_desc = format!("this machine's Nix builds {}", local.systems().join(", "));
    match &host.file.build {
        BuildPolicy::Local => {
            let mut reason = "build policy is `local`".to_string();
            if !local_can {
                reason.push_str(&format!(
                    "; but {local_desc}, not {system}, so this only works if its own nix.conf lists a builder for {system}"
                ));
            }
            Ok(Placement {
                location: Where::Local,
                reason,
            })
        }
        BuildPolicy::Target => Ok(Placement {
            location: Where::Target,
            reason: format!(
                "build policy is `target`: {} builds its own system",
                host.name
            ),
        }),
        BuildPolicy::Builder(name) => named_builder(host, inventory, name),
        BuildPolicy::Auto if local_can => {
            let what = if local.system == system {
                "natively"
            } else {
                "through extra-platforms"
            };
            Ok(Placement {
                location: Where::Local,
                reason: format!("this machine's Nix builds {system} {what}"),
            })
        }
        BuildPolicy::Auto => Ok(best_builder(host, inventory, &local_desc)),
    }
}

/// `build = "builder:<name>"`: that host, which must be a builder for the host's system.
fn named_builder(
    host: &Host,
    inventory: &Inventory,
    name: &str,
) -> Result<Placement, PlacementError> {
    let system = host.file.system.as_str();
    let source_file = host.source.display().to_string();
    let b = inventory
        .host(name)
        .ok_or_else(|| PlacementError::UnknownBuilder {
            source_file: source_file.clone(),
            builder: name.to_string(),
        })?;
    let role = builder_role(b).ok_or_else(|| PlacementError::NotABuilder {
        source_file: source_file.clone(),
        builder: name.to_string(),
    })?;
    let emulated = builds(b, &role, system).ok_or_else(|| PlacementError::BuilderLacksSystem {
        source_file,
        builder: name.to_string(),
        system: system.to_string(),
    })?;
    Ok(Placement {
        location: Where::Builder {
            name: name.to_string(),
            emulated,
        },
        reason: format!(
            "build policy is `builder:{name}`; {name} builds {system} {}",
            how(emulated)
        ),
    })
}

/// `auto` when this machine can't build the system: the best builder that can, else the
/// target itself.
fn best_builder(host: &Host, inventory: &Inventory, local_desc: &str) -> Placement {
    let system = host.file.system.as_str();
    let mut candidates: Vec<(bool, u32, &str)> = inventory
        .hosts
        .values()
        .filter(|b| b.name != host.name)
        .filter_map(|b| {
            let role = builder_role(b)?;
            let emulated = builds(b, &role, system)?;
            Some((emulated, role.speed_factor, b.name.as_str()))
        })
        .collect();
    // Native first, then faster, then by name so the choice is stable.
    candidates.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
    match candidates.first() {
        Some(&(emulated, speed, name)) => {
            let mut reason = format!(
                "{local_desc}, not {system}; builder {name} builds it {} (speed factor {speed})",
                how(emulated)
            );
            if candidates.len() > 1 {
                let others: Vec<&str> = candidates[1..].iter().map(|c| c.2).collect();
                reason.push_str(&format!(", preferred over {}", others.join(", ")));
            }
            Placement {
                location: Where::Builder {
                    name: name.to_string(),
                    emulated,
                },
                reason,
            }
        }
        None => Placement {
            location: Where::Target,
            reason: format!(
                "{local_desc}, not {system}, and no builder lists {system}; building on {} itself",
                host.name
            ),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::inventory::{FleetFile, HostFile};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    pub fn host(name: &str, toml_text: &str) -> Host {
        let base = format!(
            "system = \"x86_64-linux\"\nhardware = \"lab\"\nssh = {{ address = \"10.0.0.{}\" }}\n",
            name.len()
        );
        // A test host that starts with its own `system` replaces the default one.
        let text = if toml_text.starts_with("system =") {
            base.replacen("system = \"x86_64-linux\"\n", "", 1) + toml_text
        } else {
            base + toml_text
        };
        let file: HostFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        Host {
            name: name.into(),
            source: PathBuf::from(format!("hosts/{name}.toml")),
            file,
        }
    }

    pub fn inventory(hosts: Vec<Host>) -> Inventory {
        Inventory {
            root: PathBuf::from("."),
            fleet: FleetFile {
                domain: "lab".into(),
                ..Default::default()
            },
            hosts: hosts
                .into_iter()
                .map(|h| (h.name.clone(), h))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn x86() -> LocalNix {
        let mut n = LocalNix::native("x86_64-linux");
        n.extra_platforms = vec!["i686-linux".into()];
        n
    }

    const ARM: &str = "system = \"aarch64-linux\"\n";
    const EMU: &str = "roles = [\"builder\"]\n[builder]\nsystems = [\"x86_64-linux\"]\nemulated = [\"aarch64-linux\"]\nspeed_factor = 8\n";
    const NATIVE: &str =
        "system = \"aarch64-linux\"\nroles = [\"builder\"]\n[builder]\nspeed_factor = 2\n";

    #[test]
    fn auto_builds_locally_when_local_nix_can() {
        let inv = inventory(vec![host("web", "")]);
        let p = place(&inv.hosts["web"], &inv, &x86()).unwrap();
        assert_eq!(p.location, Where::Local);
        assert!(p.reason.contains("x86_64-linux natively"), "{}", p.reason);

        let mut n = x86();
        n.extra_platforms.push("aarch64-linux".into());
        let inv = inventory(vec![host("nas", ARM)]);
        let p = place(&inv.hosts["nas"], &inv, &n).unwrap();
        assert_eq!(p.location, Where::Local);
        assert!(p.reason.contains("extra-platforms"), "{}", p.reason);
    }

    #[test]
    fn auto_prefers_native_builder_over_faster_emulated_one() {
        let inv = inventory(vec![host("nas", ARM), host("emu", EMU), host("pi", NATIVE)]);
        let p = place(&inv.hosts["nas"], &inv, &x86()).unwrap();
        assert_eq!(
            p.location,
            Where::Builder {
                name: "pi".into(),
                emulated: false
            }
        );
        assert!(p.reason.contains("pi builds it natively"), "{}", p.reason);
        assert!(p.reason.contains("preferred over emu"), "{}", p.reason);
        assert!(
            p.reason
                .contains("builds x86_64-linux, i686-linux, not aarch64-linux"),
            "{}",
            p.reason
        );
    }

    #[test]
    fn auto_picks_emulated_builder_when_it_is_the_only_one() {
        let inv = inventory(vec![host("nas", ARM), host("emu", EMU)]);
        let p = place(&inv.hosts["nas"], &inv, &x86()).unwrap();
        assert_eq!(
            p.location,
            Where::Builder {
                name: "emu".into(),
                emulated: true
            }
        );
        assert!(
            p.reason.contains("by emulation (speed factor 8)"),
            "{}",
            p.reason
        );
    }

    #[test]
    fn auto_prefers_higher_speed_factor_then_name() {
        let fast =
            "roles = [\"builder\"]\n[builder]\nemulated = [\"aarch64-linux\"]\nspeed_factor = 9\n";
        let slow =
            "roles = [\"builder\"]\n[builder]\nemulated = [\"aarch64-linux\"]\nspeed_factor = 3\n";
        let inv = inventory(vec![
            host("nas", ARM),
            host("a-slow", slow),
            host("z-fast", fast),
        ]);
        let p = place(&inv.hosts["nas"], &inv, &x86()).unwrap();
        assert_eq!(
            p.location,
            Where::Builder {
                name: "z-fast".into(),
                emulated: true
            }
        );
        let inv = inventory(vec![host("nas", ARM), host("b", slow), host("a", slow)]);
        let p = place(&inv.hosts["nas"], &inv, &x86()).unwrap();
        assert_eq!(
            p.location,
            Where::Builder {
                name: "a".into(),
                emulated: true
            }
        );
    }

    #[test]
    fn auto_ignores_hosts_without_the_role_and_the_host_itself() {
        // A [builder] section without the role does not make a builder.
        let no_role = "[builder]\nemulated = [\"aarch64-linux\"]\n";
        let self_builder = "system = \"aarch64-linux\"\nroles = [\"builder\"]\n";
        let inv = inventory(vec![host("nas", self_builder), host("x", no_role)]);
        let p = place(&inv.hosts["nas"], &inv, &x86()).unwrap();
        assert_eq!(p.location, Where::Target);
        assert!(
            p.reason
                .contains("no builder lists aarch64-linux; building on nas itself"),
            "{}",
            p.reason
        );
    }

    #[test]
    fn role_without_section_builds_its_own_system() {
        let inv = inventory(vec![
            host("nas", ARM),
            host("pi", "system = \"aarch64-linux\"\nroles = [\"builder\"]\n"),
        ]);
        let p = place(&inv.hosts["nas"], &inv, &x86()).unwrap();
        assert_eq!(
            p.location,
            Where::Builder {
                name: "pi".into(),
                emulated: false
            }
        );
    }

    #[test]
    fn explicit_local_warns_when_local_nix_cannot_build() {
        let inv = inventory(vec![host(
            "nas",
            "system = \"aarch64-linux\"\nbuild = \"local\"\n",
        )]);
        let p = place(&inv.hosts["nas"], &inv, &x86()).unwrap();
        assert_eq!(p.location, Where::Local);
        assert!(
            p.reason.starts_with("build policy is `local`; but"),
            "{}",
            p.reason
        );
        let inv = inventory(vec![host("web", "build = \"local\"\n")]);
        assert_eq!(
            place(&inv.hosts["web"], &inv, &x86()).unwrap().reason,
            "build policy is `local`"
        );
    }

    #[test]
    fn explicit_target() {
        let inv = inventory(vec![host("nas", "build = \"target\"\n"), host("emu", EMU)]);
        let p = place(&inv.hosts["nas"], &inv, &x86()).unwrap();
        assert_eq!(p.location, Where::Target);
        assert_eq!(
            p.reason,
            "build policy is `target`: nas builds its own system"
        );
    }

    #[test]
    fn explicit_builder_even_when_local_could_build() {
        let inv = inventory(vec![
            host("web", "build = \"builder:emu\"\n"),
            host("emu", EMU),
        ]);
        let p = place(&inv.hosts["web"], &inv, &x86()).unwrap();
        assert_eq!(
            p.location,
            Where::Builder {
                name: "emu".into(),
                emulated: false
            }
        );
        assert_eq!(
            p.reason,
            "build policy is `builder:emu`; emu builds x86_64-linux natively"
        );
    }

    #[test]
    fn explicit_builder_errors_name_the_file_and_the_fix() {
        let inv = inventory(vec![
            host(
                "nas",
                "system = \"aarch64-linux\"\nbuild = \"builder:nope\"\n",
            ),
            host("plain", ""),
            host("x86only", "roles = [\"builder\"]\n"),
        ]);
        let e = place(&inv.hosts["nas"], &inv, &x86()).unwrap_err();
        assert!(matches!(e, PlacementError::UnknownBuilder { .. }));
        assert!(e.to_string().starts_with("hosts/nas.toml:"), "{e}");

        let mut nas = inv.hosts["nas"].clone();
        nas.file.build = BuildPolicy::Builder("plain".into());
        let e = place(&nas, &inv, &x86()).unwrap_err();
        assert!(matches!(e, PlacementError::NotABuilder { .. }), "{e}");

        nas.file.build = BuildPolicy::Builder("x86only".into());
        let e = place(&nas, &inv, &x86()).unwrap_err();
        assert!(
            e.to_string()
                .contains("x86only does not build aarch64-linux"),
            "{e}"
        );
    }
}
