//! The inventory format: `hearth.toml` (fleet-wide) and `hosts/<name>.toml` (one machine).
//!
//! These types are the contract between the parser (`inventory::load`), the compiler
//! (`compile`), the deployer (`deploy`) and the lab (`lab`). The JSON Schema that
//! `hearth schema` prints is derived from them, so doc comments here are user-facing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::values;
pub use crate::values::Role;

/// Schemas of fields whose strings have a kind (see `values`): `format`, `pattern`,
/// and for maps the kind of their keys (`propertyNames`).
mod kinds {
    use super::values::{list_schema, string_schema, Kind};
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

    fn keyed(value: Schema, key: Kind) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": value,
            "propertyNames": string_schema(key),
        })
    }
    fn map_of<T: JsonSchema>(g: &mut SchemaGenerator, key: Kind) -> Schema {
        keyed(g.subschema_for::<T>(), key)
    }

    macro_rules! string_kinds {
        ($($f:ident => $k:ident),* $(,)?) => {
            $(pub fn $f(_: &mut SchemaGenerator) -> Schema { string_schema(Kind::$k) })*
        };
    }
    macro_rules! list_kinds {
        ($($f:ident => $k:ident),* $(,)?) => {
            $(pub fn $f(_: &mut SchemaGenerator) -> Schema { list_schema(Kind::$k) })*
        };
    }
    string_kinds! {
        domain => DomainName, time_zone => TimeZone, state_version => StateVersion,
        gc_age => GcAge, ssh_key => SshPublicKey, host_address => HostAddress,
        ssh_user => SshUser, user_name => UserName, interface => Interface, name => Name,
        device => DevicePath, size => Size, mountpoint => Mountpoint,
        record_size => RecordSize, compression => Compression, abs_path => AbsPath,
        ip_address => IpAddress, cidr => Cidr, host_id => HostId,
    }
    list_kinds! {
        ssh_keys => SshPublicKey, cache_urls => CacheUrl, nix_keys => NixPublicKey,
        devices => DevicePath, features => Feature, units => UnitName, urls => HttpUrl,
        repo_paths => RepoPath, ip_addresses => IpAddress, tags => Tag, host_names => HostName,
    }
    pub fn admins(g: &mut SchemaGenerator) -> Schema {
        map_of::<super::Admin>(g, Kind::UserName)
    }
    pub fn networks(g: &mut SchemaGenerator) -> Schema {
        map_of::<super::Network>(g, Kind::Name)
    }
    pub fn secrets(g: &mut SchemaGenerator) -> Schema {
        map_of::<super::SecretDef>(g, Kind::Name)
    }
    pub fn pools(g: &mut SchemaGenerator) -> Schema {
        map_of::<super::Pool>(g, Kind::PoolName)
    }
    pub fn datasets(g: &mut SchemaGenerator) -> Schema {
        map_of::<super::Dataset>(g, Kind::DatasetName)
    }
    pub fn pool_options(_: &mut SchemaGenerator) -> Schema {
        keyed(string_schema(Kind::ZfsValue), Kind::PoolProperty)
    }
}

/// `hearth.toml`: facts shared by the whole fleet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Optional schema reference for editors (taplo / Even Better TOML).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// DNS domain of the fleet, e.g. `home.arpa`. Hosts get `networking.domain`.
    #[schemars(schema_with = "kinds::domain")]
    pub domain: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    #[serde(default = "default_time_zone")]
    #[schemars(schema_with = "kinds::time_zone")]
    pub time_zone: String,
    /// NixOS `system.stateVersion` for hosts that don't set their own.
    #[serde(default = "default_state_version")]
    #[schemars(schema_with = "kinds::state_version")]
    pub state_version: String,
    /// Administrators: get a wheel account with these SSH keys on every host,
    /// and can decrypt every agenix secret.
    #[serde(default)]
    #[schemars(schema_with = "kinds::admins")]
    pub admins: BTreeMap<String, Admin>,
    /// Nix settings applied to every host.
    #[serde(default)]
    pub nix: NixSettings,
    /// Default deploy policy; a host's `[deploy]` overrides single fields.
    #[serde(default)]
    pub deploy: DeployPolicyDefaults,
    /// Named networks that hosts' static addresses refer to.
    #[serde(default)]
    #[schemars(schema_with = "kinds::networks")]
    pub networks: BTreeMap<String, Network>,
    /// Secrets managed with agenix: name → which hosts need it.
    #[serde(default)]
    #[schemars(schema_with = "kinds::secrets")]
    pub secrets: BTreeMap<String, SecretDef>,
}

pub fn default_time_zone() -> String {
    "UTC".into()
}
pub fn default_state_version() -> String {
    "25.11".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// SSH public keys (`ssh-ed25519 AAAA… comment`).
    #[schemars(schema_with = "kinds::ssh_keys")]
    pub ssh_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NixSettings {
    /// Extra binary caches (`nix.settings.substituters`).
    #[serde(default)]
    #[schemars(schema_with = "kinds::cache_urls")]
    pub substituters: Vec<String>,
    /// Public keys of those caches (`nix.settings.trusted-public-keys`).
    #[serde(default)]
    #[schemars(schema_with = "kinds::nix_keys")]
    pub trusted_public_keys: Vec<String>,
    /// Weekly garbage collection of generations older than this (e.g. `30d`); unset = no GC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::gc_age")]
    pub gc_older_than: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The network in CIDR notation, e.g. `192.168.1.0/24`.
    #[schemars(schema_with = "kinds::cidr")]
    pub cidr: String,
    /// Default gateway for static hosts on this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::ip_address")]
    pub gateway: Option<String>,
    /// DNS servers for static hosts on this network.
    #[serde(default)]
    #[schemars(schema_with = "kinds::ip_addresses")]
    pub dns: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretDef {
    /// Hosts whose host key can decrypt this secret (admins always can).
    #[serde(default)]
    #[schemars(schema_with = "kinds::host_names")]
    pub hosts: Vec<String>,
}

/// Fleet-wide deploy defaults. Every field is optional in a host file and falls back to these.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeployPolicyDefaults {
    /// Roll back automatically unless the deployer confirms over a fresh SSH connection.
    #[serde(default = "yes")]
    pub magic_rollback: bool,
    /// Seconds the host waits for confirmation before rolling back on its own. At least 3:
    /// confirming takes a fresh SSH connection, and below that every deploy rolls back.
    #[serde(default = "default_confirm_timeout")]
    #[schemars(range(min = 3, max = 3600))]
    pub confirm_timeout: u32,
    /// Seconds the health checks may take in total.
    #[serde(default = "default_health_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub health_timeout: u32,
    /// Let the target fetch paths from its substituters instead of from the deployer.
    #[serde(default = "yes")]
    pub substitute_on_destination: bool,
}

impl Default for DeployPolicyDefaults {
    fn default() -> Self {
        Self {
            magic_rollback: true,
            confirm_timeout: default_confirm_timeout(),
            health_timeout: default_health_timeout(),
            substitute_on_destination: true,
        }
    }
}

fn yes() -> bool {
    true
}
pub fn default_confirm_timeout() -> u32 {
    30
}
pub fn default_health_timeout() -> u32 {
    60
}

/// `hosts/<name>.toml`: one machine. The host's name is the file name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Nix system double of the machine.
    pub system: System,
    /// Hardware profile.
    pub hardware: Hardware,
    /// Boot loader; defaults from the hardware profile (`extlinux` on helios64,
    /// `systemd-boot` on generic-x86_64, none on lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_loader: Option<BootLoader>,
    /// Overrides `state_version` from `hearth.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::state_version")]
    pub state_version: Option<String>,
    /// 8 hex digits for `networking.hostId`; derived from the host name with sha256 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::host_id")]
    pub host_id: Option<String>,
    /// The host's SSH public host key (`ssh-ed25519 AAAA…`): feeds `programs.ssh.knownHosts`,
    /// the deployer's `known_hosts`, and agenix recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::ssh_key")]
    pub host_key: Option<String>,
    /// How the deployer reaches the host.
    pub ssh: SshTarget,
    /// Network configuration: DHCP (the default) or a static address.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Disk layout for disko: the root disk and ZFS data pools. Without it hearth generates no `disko.nix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Disks>,
    /// Catalog services: `[services.<name>]` with that service's settings.
    /// The keys each service accepts come from its catalog entry.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, BTreeMap<String, serde_json::Value>>")]
    pub services: BTreeMap<String, toml::Table>,
    /// Fleet roles of this host.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Free-form labels for selecting hosts with `@tag`.
    #[serde(default)]
    #[schemars(schema_with = "kinds::tags")]
    pub tags: Vec<String>,
    /// Settings of the `builder` role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<BuilderRole>,
    /// Settings of the `backup-target` role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_target: Option<BackupTargetRole>,
    /// Where this host's system is built.
    #[serde(default)]
    pub build: BuildPolicy,
    #[serde(default)]
    pub deploy: DeployPolicy,
    /// Extra TCP/UDP ports to open beyond those the services derive.
    #[serde(default)]
    pub firewall: FirewallExtra,
    /// Hand-written NixOS modules to import, relative to the repository root
    /// (e.g. `modules/nixos/media.nix`). The escape hatch: anything NixOS can do.
    #[serde(default)]
    #[schemars(schema_with = "kinds::repo_paths")]
    pub modules: Vec<String>,
    /// Settings for the `lab` hardware profile (test hosts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabSettings>,
}

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum System {
    #[serde(rename = "x86_64-linux")]
    X86_64Linux,
    #[serde(rename = "aarch64-linux")]
    Aarch64Linux,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::X86_64Linux => "x86_64-linux",
            System::Aarch64Linux => "aarch64-linux",
        }
    }
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Hardware {
    /// Kobol Helios64 (RK3399) NAS: imports `modules/nixos/helios64.nix`.
    Helios64,
    /// Any UEFI x86_64 machine.
    #[serde(rename = "generic-x86_64")]
    GenericX86_64,
    /// A hearth lab test host: a NixOS-like toplevel built without nixpkgs.
    Lab,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BootLoader {
    SystemdBoot,
    Grub,
    Extlinux,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SshTarget {
    /// IP address or DNS name.
    #[schemars(schema_with = "kinds::host_address")]
    pub address: String,
    /// SSH port.
    #[serde(default = "default_ssh_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Deploy user; a non-root user needs passwordless `sudo`.
    #[serde(default = "default_ssh_user")]
    #[schemars(schema_with = "kinds::ssh_user")]
    pub user: String,
}

pub fn default_ssh_port() -> u16 {
    22
}
pub fn default_ssh_user() -> String {
    "root".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Use DHCP on all interfaces (the default) unless `address` is set.
    #[serde(default = "yes")]
    pub dhcp: bool,
    /// Interface for the static address, e.g. `end0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::interface")]
    pub interface: Option<String>,
    /// Static address with prefix length, e.g. `192.168.1.20/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::cidr")]
    pub address: Option<String>,
    /// Name of a network in `hearth.toml` that supplies gateway and DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::name")]
    pub network: Option<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            dhcp: true,
            interface: None,
            address: None,
            network: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Disks {
    /// Allow device paths outside `/dev/disk/by-id` (they can change between boots).
    #[serde(default)]
    pub allow_unstable_paths: bool,
    /// The disk holding `/` (and the ESP).
    pub root: RootDisk,
    /// ZFS data pools by pool name.
    #[serde(default)]
    #[schemars(schema_with = "kinds::pools")]
    pub pools: BTreeMap<String, Pool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RootDisk {
    /// The root device, e.g. `/dev/disk/by-id/mmc-AJTD4R_0x12345678`.
    #[schemars(schema_with = "kinds::device")]
    pub device: String,
    /// Filesystem of `/`.
    pub filesystem: RootFilesystem,
    /// Create an EFI system partition; defaults to true when the boot loader is UEFI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esp: Option<bool>,
    /// Size of the ESP.
    #[serde(default = "default_esp_size")]
    #[schemars(schema_with = "kinds::size")]
    pub esp_size: String,
    /// Swap partition size, e.g. `8G`; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::size")]
    pub swap: Option<String>,
}

pub fn default_esp_size() -> String {
    "512M".into()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RootFilesystem {
    Ext4,
    Btrfs,
    Zfs,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Redundancy: `mirror` (2+ disks), `raidz1` (2+), `raidz2` (3+).
    pub mode: PoolMode,
    /// Member disks, by id.
    #[schemars(schema_with = "kinds::devices")]
    pub disks: Vec<String>,
    /// Extra pool properties (`zpool create -o`), e.g. `ashift = "12"`.
    #[serde(default)]
    #[schemars(schema_with = "kinds::pool_options")]
    pub options: BTreeMap<String, String>,
    /// Datasets by name (relative to the pool).
    #[serde(default)]
    #[schemars(schema_with = "kinds::datasets")]
    pub datasets: BTreeMap<String, Dataset>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Mirror,
    Raidz1,
    Raidz2,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Where the dataset is mounted, e.g. `/srv/media`; `none` or `legacy` are passed to ZFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::mountpoint")]
    pub mountpoint: Option<String>,
    /// ZFS `recordsize`, e.g. `1M` for large media files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::record_size")]
    pub recordsize: Option<String>,
    /// ZFS `compression`, e.g. `zstd` or `lz4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::compression")]
    pub compression: Option<String>,
    /// ZFS `quota`, e.g. `500G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::size")]
    pub quota: Option<String>,
    /// Take automatic snapshots of this dataset (with the `zfs` service).
    #[serde(default = "yes")]
    pub snapshots: bool,
    /// Include this dataset's mountpoint in restic backups.
    #[serde(default)]
    pub backup: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuilderRole {
    /// Systems this builder builds natively.
    #[serde(default)]
    pub systems: Vec<System>,
    /// Foreign systems it builds by emulation (`boot.binfmt.emulatedSystems`).
    #[serde(default)]
    pub emulated: Vec<System>,
    /// Builds run at once on this builder (`maxJobs` in `nix.buildMachines`).
    #[serde(default = "default_max_jobs")]
    #[schemars(range(min = 1, max = 1024))]
    pub max_jobs: u32,
    /// Preference among builders; higher is preferred (`speedFactor`).
    #[serde(default = "default_speed_factor")]
    #[schemars(range(min = 1, max = 1000))]
    pub speed_factor: u32,
    /// Supported features, e.g. `big-parallel`, `kvm`, `nixos-test`.
    #[serde(default)]
    #[schemars(schema_with = "kinds::features")]
    pub features: Vec<String>,
    /// SSH user the Nix daemon logs in as.
    #[serde(default = "default_builder_user")]
    #[schemars(schema_with = "kinds::user_name")]
    pub user: String,
    /// Let the builder fetch dependencies from its caches (`builders-use-substitutes`).
    #[serde(default = "yes")]
    pub substitutes: bool,
    /// Public half of the build user's own SSH key (`~/.ssh/id_ed25519` on the builder).
    /// Every host this builder can build for authorizes it for `nix-daemon --stdio` only,
    /// so a builder-to-target copy needs neither agent forwarding nor `--builder-identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kinds::ssh_key")]
    pub push_key: Option<String>,
}

pub fn default_max_jobs() -> u32 {
    4
}
pub fn default_speed_factor() -> u32 {
    1
}
pub fn default_builder_user() -> String {
    "nixbuild".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackupTargetRole {
    /// Directory that receives the restic repositories, one per client.
    #[serde(default = "default_backup_path")]
    #[schemars(schema_with = "kinds::abs_path")]
    pub path: String,
}

pub fn default_backup_path() -> String {
    "/srv/backup".into()
}

/// `local`, `target`, `auto`, or `builder:<host>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BuildPolicy {
    #[default]
    Auto,
    Local,
    Target,
    Builder(String),
}

impl BuildPolicy {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "local" => Ok(Self::Local),
            "target" => Ok(Self::Target),
            _ => match s.strip_prefix("builder:") {
                Some(name) if !name.is_empty() => Ok(Self::Builder(name.to_string())),
                _ => Err(format!(
                    "unknown build policy `{s}`: expected `auto`, `local`, `target` or `builder:<host>`"
                )),
            },
        }
    }
}

impl std::fmt::Display for BuildPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Local => f.write_str("local"),
            Self::Target => f.write_str("target"),
            Self::Builder(b) => write!(f, "builder:{b}"),
        }
    }
}

impl Serialize for BuildPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for BuildPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BuildPolicy::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for BuildPolicy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BuildPolicy".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Where the system is built: `auto` (local if possible, else a builder, else the target), `local`, `target`, or `builder:<host>`.",
            "pattern": "^(auto|local|target|builder:[A-Za-z0-9_-]+)$"
        })
    }
}

/// A host's deploy policy; unset fields come from `[deploy]` in `hearth.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeployPolicy {
    /// Overrides `deploy.magic_rollback` from `hearth.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magic_rollback: Option<bool>,
    /// Overrides `deploy.confirm_timeout` from `hearth.toml` (seconds, at least 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 3600))]
    pub confirm_timeout: Option<u32>,
    /// Overrides `deploy.health_timeout` from `hearth.toml` (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub health_timeout: Option<u32>,
    /// Overrides `deploy.substitute_on_destination` from `hearth.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute_on_destination: Option<bool>,
    /// Health checks run after activation; a failure rolls the host back.
    #[serde(default)]
    pub health: HealthChecks,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthChecks {
    /// systemd units that must be active after activation.
    #[serde(default)]
    #[schemars(schema_with = "kinds::units")]
    pub units: Vec<String>,
    /// TCP ports that must accept connections on the host.
    #[serde(default)]
    #[schemars(inner(range(min = 1)))]
    pub tcp: Vec<u16>,
    /// URLs that must answer 2xx, asked from the host itself.
    #[serde(default)]
    #[schemars(schema_with = "kinds::urls")]
    pub http: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FirewallExtra {
    /// Extra TCP ports to open.
    #[serde(default)]
    #[schemars(inner(range(min = 1)))]
    pub tcp: Vec<u16>,
    /// Extra UDP ports to open.
    #[serde(default)]
    #[schemars(inner(range(min = 1)))]
    pub udp: Vec<u16>,
}

/// Test-host behaviour for the `lab` hardware profile.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabSettings {
    /// What activation does wrong, if anything.
    #[serde(default)]
    pub fault: LabFault,
    /// Size of the toplevel's payload in MiB, spread over `payload_paths` store paths.
    #[serde(default)]
    pub payload_mib: u32,
    /// Number of store paths the payload is spread over.
    #[serde(default = "default_payload_paths")]
    #[schemars(range(min = 1, max = 100000))]
    pub payload_paths: u32,
    /// TCP port of the payload service that activation (re)starts.
    #[serde(default = "default_payload_port")]
    #[schemars(range(min = 1))]
    pub payload_port: u16,
    /// Changes the toplevel's hash without changing behaviour (forces a new generation).
    #[serde(default)]
    pub revision: u32,
    /// Boot systemd as this host's PID 1 (`hearth lab up`): sshd, the nix-daemon and the
    /// payload run as units, as on NixOS. Unset: the lab's choice (`--systemd`,
    /// `--no-systemd`, `HEARTH_LAB_SYSTEMD=1`; otherwise off). Read when the host boots:
    /// changing it needs `hearth lab down` first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<bool>,
}

pub fn default_payload_paths() -> u32 {
    1
}
pub fn default_payload_port() -> u16 {
    8080
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LabFault {
    #[default]
    None,
    /// `switch-to-configuration` exits non-zero.
    ActivationFails,
    /// `switch-to-configuration` never returns.
    ActivationHangs,
    /// Activation takes the host's link down.
    LinkDown,
    /// Activation takes the host's link down for 10 s, then it comes back by itself: a
    /// short outage across the start of the confirmation window.
    LinkFlap,
    /// Activation kills sshd.
    KillSshd,
    /// The payload service does not come up, so its health check fails.
    PayloadDown,
}
