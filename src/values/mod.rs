//! Kinds of string values: what a host-file string becomes (an SSH user name, a time
//! zone, a ZFS size, an exports(5) client, ...) and the one check for each kind.
//!
//! A kind appears three times and is written once, here: as the JSON Schema `format` +
//! `pattern` of the field (so editors flag the mistake), as the check the loader runs
//! where the file is read (so `hearth check` reports it with `file:line:col`), and as
//! the "what is allowed" text of the diagnostic and of docs/HOST_FILE.md. Catalog
//! settings name the same kinds (`kind = "size"`), so repo-local services get them too.

use schemars::{json_schema, Schema};
use std::net::IpAddr;
pub mod role;
pub use role::Role;

/// What a string value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One line of text: no control characters at all.
    Line,
    /// Free text: newlines and tabs, but no other control characters.
    Text,
    /// A login name used for SSH (`[ssh] user`): POSIX-ish, may end in `$`.
    SshUser,
    /// A local account name (admins, builder user).
    UserName,
    /// A samba `valid users` entry: a user or `@group`.
    SmbUser,
    /// A value written into smb.conf.
    SmbText,
    /// An IP address or DNS name the deployer connects to.
    HostAddress,
    /// `ssh-ed25519 AAAA… comment`, parsed.
    SshPublicKey,
    /// A tz database name (`Europe/Berlin`, `UTC`).
    TimeZone,
    /// A systemd `OnCalendar=` expression.
    Calendar,
    /// A duration like `90d`, `30s`, `1h30m`.
    Duration,
    /// `--delete-older-than` of nix-collect-garbage: days, `30d`.
    GcAge,
    /// A size with unit: `512M`, `8T`.
    Size,
    /// ZFS `recordsize`: a power of two from 512 to 16M.
    RecordSize,
    /// ZFS `compression`.
    Compression,
    /// `system.stateVersion`: a NixOS release.
    StateVersion,
    /// A DNS domain name.
    DomainName,
    /// A path relative to the repository root that stays inside it.
    RepoPath,
    /// A name that becomes a file name and a Nix attribute (secrets, networks, entries).
    Name,
    /// A ZFS pool name.
    PoolName,
    /// A ZFS dataset name relative to its pool (`media`, `media/photos`).
    DatasetName,
    /// A `zpool create -o` property name.
    PoolProperty,
    /// A ZFS property value.
    ZfsValue,
    /// An absolute path without whitespace or `..`.
    AbsPath,
    /// A device path (`/dev/...`).
    DevicePath,
    /// A dataset mountpoint: an absolute path other than `/`, `none` or `legacy`.
    Mountpoint,
    /// An exports(5) client: host, wildcard, network or `@netgroup`.
    NfsClient,
    /// exports(5) options, comma-separated.
    NfsOptions,
    /// An IP address or a network in CIDR notation.
    IpOrCidr,
    /// A network interface name.
    Interface,
    /// A systemd unit name.
    UnitName,
    /// An http(s) URL.
    HttpUrl,
    /// A Nix binary cache URL.
    CacheUrl,
    /// A Nix binary cache signing key `name:base64`.
    NixPublicKey,
    /// A Nix system feature (`big-parallel`, `kvm`).
    Feature,
    /// A WireGuard public key (base64 of 32 bytes).
    WireguardKey,
    /// A `host:port` endpoint.
    Endpoint,
    /// An rclone remote `name:path`.
    RcloneRemote,
    /// A host of the fleet by name, or empty.
    HostRef,
    /// A restic exclude pattern.
    Pattern,
    /// The name of an agenix secret, or empty for none.
    SecretRef,
    /// A samba share name (an smb.conf section).
    SmbShare,
    /// A plain IP address.
    IpAddress,
    /// `address/prefix`.
    Cidr,
    /// ZFS `networking.hostId`: 8 hex digits.
    HostId,
    /// A host tag (`@tag`).
    Tag,
    /// A host of the fleet by name.
    HostName,
    /// An e-mail address (`user@domain`).
    Email,
}

use Kind::*;

/// Every kind, for the format lookup and the tests.
pub const ALL: &[Kind] = &[
    Line,
    Text,
    SshUser,
    UserName,
    SmbUser,
    SmbText,
    HostAddress,
    SshPublicKey,
    TimeZone,
    Calendar,
    Duration,
    GcAge,
    Size,
    RecordSize,
    Compression,
    StateVersion,
    DomainName,
    RepoPath,
    Name,
    PoolName,
    DatasetName,
    PoolProperty,
    ZfsValue,
    AbsPath,
    DevicePath,
    Mountpoint,
    NfsClient,
    NfsOptions,
    IpOrCidr,
    Interface,
    UnitName,
    HttpUrl,
    CacheUrl,
    NixPublicKey,
    Feature,
    WireguardKey,
    Endpoint,
    RcloneRemote,
    HostRef,
    Pattern,
    SecretRef,
    SmbShare,
    IpAddress,
    Cidr,
    HostId,
    Tag,
    HostName,
    Email,
];

/// NixOS releases, the values `system.stateVersion` takes. A newer release needs a
/// newer hearth: the list is what makes "25.13" an error.
pub const NIXOS_RELEASES: &[&str] = &[
    "13.10", "14.04", "14.12", "15.09", "16.03", "16.09", "17.03", "17.09", "18.03", "18.09",
    "19.03", "19.09", "20.03", "20.09", "21.05", "21.11", "22.05", "22.11", "23.05", "23.11",
    "24.05", "24.11", "25.05", "25.11", "26.05", "26.11",
];

const TZ_NAMES: &str = include_str!("tz_names.txt");

fn time_zones() -> impl Iterator<Item = &'static str> {
    TZ_NAMES
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

const NFS_FLAGS: &[&str] = &[
    "rw",
    "ro",
    "sync",
    "async",
    "secure",
    "insecure",
    "wdelay",
    "no_wdelay",
    "hide",
    "nohide",
    "crossmnt",
    "subtree_check",
    "no_subtree_check",
    "insecure_locks",
    "secure_locks",
    "no_auth_nlm",
    "auth_nlm",
    "root_squash",
    "no_root_squash",
    "all_squash",
    "no_all_squash",
    "mp",
    "mountpoint",
    "nordirplus",
    "pnfs",
    "no_pnfs",
    "security_label",
    "no_acl",
];
/// Options that take `=value`, with the form of the value.
const NFS_VALUED: &[(&str, &str)] = &[
    ("anonuid", "number"),
    ("anongid", "number"),
    ("fsid", "fsid"),
    ("sec", "sec"),
    ("mp", "path"),
    ("mountpoint", "path"),
    ("refer", "text"),
    ("replicas", "text"),
];

const POOL_PROPERTIES: &[&str] = &[
    "ashift",
    "autoexpand",
    "autoreplace",
    "autotrim",
    "cachefile",
    "comment",
    "compatibility",
    "delegation",
    "failmode",
    "listsnapshots",
    "multihost",
    "version",
];

impl Kind {
    /// The JSON Schema `format` naming this kind.
    pub fn format(self) -> &'static str {
        match self {
            Line => "line",
            Text => "text",
            SshUser => "ssh-user",
            UserName => "user-name",
            SmbUser => "smb-user",
            SmbText => "smb-text",
            HostAddress => "host-address",
            SshPublicKey => "ssh-public-key",
            TimeZone => "time-zone",
            Calendar => "calendar",
            Duration => "duration",
            GcAge => "gc-age",
            Size => "size",
            RecordSize => "record-size",
            Compression => "compression",
            StateVersion => "state-version",
            DomainName => "domain-name",
            RepoPath => "repo-path",
            Name => "name",
            PoolName => "pool-name",
            DatasetName => "dataset-name",
            PoolProperty => "pool-property",
            ZfsValue => "zfs-value",
            AbsPath => "path",
            DevicePath => "device-path",
            Mountpoint => "mountpoint",
            NfsClient => "nfs-client",
            NfsOptions => "nfs-options",
            IpOrCidr => "ip-or-cidr",
            Interface => "interface",
            UnitName => "unit-name",
            HttpUrl => "http-url",
            CacheUrl => "cache-url",
            NixPublicKey => "nix-public-key",
            Feature => "feature",
            WireguardKey => "wireguard-key",
            Endpoint => "endpoint",
            RcloneRemote => "rclone-remote",
            HostRef => "host-ref",
            Pattern => "pattern",
            SecretRef => "secret-name",
            SmbShare => "smb-share",
            IpAddress => "ip-address",
            Cidr => "cidr",
            HostId => "host-id",
            Tag => "tag",
            HostName => "host-name",
            Email => "email",
        }
    }

    pub fn from_format(f: &str) -> Option<Kind> {
        ALL.iter().copied().find(|k| k.format() == f)
    }

    /// What the value is, for "invalid … `x`".
    pub fn noun(self) -> &'static str {
        match self {
            Line | Text | SmbText | Pattern => "text",
            SshUser => "SSH user name",
            UserName => "user name",
            SmbUser => "samba user",
            HostAddress => "host address",
            SshPublicKey => "SSH public key",
            TimeZone => "time zone",
            Calendar => "calendar expression",
            Duration => "duration",
            GcAge => "age",
            Size => "size",
            RecordSize => "record size",
            Compression => "compression",
            StateVersion => "state version",
            DomainName => "domain name",
            RepoPath => "repository path",
            Name => "name",
            PoolName => "pool name",
            DatasetName => "dataset name",
            PoolProperty => "pool property",
            ZfsValue => "ZFS property value",
            AbsPath => "path",
            DevicePath => "device path",
            Mountpoint => "mountpoint",
            NfsClient => "NFS client",
            NfsOptions => "NFS options",
            IpOrCidr => "address or network",
            Interface => "interface name",
            UnitName => "unit name",
            HttpUrl => "URL",
            CacheUrl => "cache URL",
            NixPublicKey => "Nix public key",
            Feature => "system feature",
            WireguardKey => "WireGuard key",
            Endpoint => "endpoint",
            RcloneRemote => "rclone remote",
            HostRef => "host name",
            SecretRef => "secret name",
            SmbShare => "share name",
            IpAddress => "IP address",
            Cidr => "CIDR",
            HostId => "host id",
            Tag => "tag",
            HostName => "host name",
            Email => "e-mail address",
        }
    }

    /// What is accepted, as the help line of a diagnostic and the docs.
    pub fn allowed(self) -> &'static str {
        match self {
            Line => "one line of text, without control characters",
            Text => "text without control characters other than newline and tab",
            SshUser => "a login name: a lowercase letter or `_`, then lowercase letters, digits, `_` or `-` (may end in `$`), at most 32 characters",
            UserName => "an account name: a lowercase letter or `_`, then lowercase letters, digits, `_` or `-`, at most 32 characters",
            SmbUser => "a user name, or `@group`: lowercase letters, digits, `_` and `-`",
            SmbText => "one line of text without control characters, leading or trailing spaces, or a trailing `\\`",
            HostAddress => "an IP address (`192.168.1.20`, `fd00::20`) or a DNS name (`nas.home.arpa`): letters, digits, `-` and `.`, not starting with `-`",
            SshPublicKey => "one line of a `.pub` file: `ssh-ed25519 AAAA… comment` (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 or sk-… keys, with valid base64)",
            TimeZone => "a tz database name such as `Europe/Berlin`, `America/New_York` or `UTC` (see `timedatectl list-timezones`)",
            Calendar => "a systemd calendar expression: `hourly`, `daily`, `weekly`, `monthly`, …, or `[weekday] [date] [time]` such as `Mon *-*-* 03:00` or `*:0/30`",
            Duration => "a number with a unit, e.g. `30s`, `90d`, `1h30m` (units `ms`, `s`, `m`, `h`, `d`, `w`, `y`)",
            GcAge => "a number of days such as `30d` (what `nix-collect-garbage --delete-older-than` takes)",
            Size => "a positive whole number with a unit `K`, `M`, `G`, `T` or `P`, e.g. `512M` or `8T`",
            RecordSize => "a power of two from `512` to `16M`, e.g. `128K` or `1M`",
            Compression => "`on`, `off`, `lz4`, `zstd`, `zstd-1`…`zstd-19`, `zstd-fast`, `zstd-fast-N`, `gzip`, `gzip-1`…`gzip-9`, `lzjb` or `zle`",
            StateVersion => "a NixOS release such as `25.11` (13.10 to 26.11; set once at install, never raised)",
            DomainName => "a DNS name such as `home.arpa`: labels of letters, digits and `-` (not at either end), separated by `.`",
            RepoPath => "a path relative to the repository root, e.g. `modules/nixos/media.nix`: letters, digits, `_`, `-`, `.`, `+` and `/`, no `..`, no leading `/` or `.`",
            Name => "a name of letters, digits, `_` and `-`, starting with a letter or digit, at most 64 characters",
            PoolName => "a ZFS pool name: a letter, then letters, digits, `_`, `-`, `.` or `:`; not starting with `mirror`, `raidz`, `draid` or `spare`, not `log`, `cache`, `special` or `dedup`",
            DatasetName => "a ZFS dataset name relative to its pool, e.g. `media` or `media/photos`: each part starts with a letter or digit, then letters, digits, `_`, `-`, `.` or `:`",
            PoolProperty => "a zpool property such as `ashift`, `autotrim`, `autoexpand`, `autoreplace`, `failmode`, `comment`, or `feature@<name>`",
            ZfsValue => "a property value of letters, digits, `_`, `-`, `.`, `:`, `@`, `+` and `/`",
            AbsPath => "an absolute path such as `/srv/media`, without whitespace, control characters, `.` or `..` parts",
            DevicePath => "a device path under `/dev/`, e.g. `/dev/disk/by-id/…`, without whitespace or `..`",
            Mountpoint => "an absolute path other than `/` (e.g. `/srv/media`), or `none` or `legacy`",
            NfsClient => "an exports(5) client: `*`, an IP address, a network (`192.168.1.0/24`), a host name (wildcards `*` and `?` allowed), or `@netgroup`",
            NfsOptions => "comma-separated exports(5) options, e.g. `ro,all_squash,no_subtree_check` (rw, ro, sync, async, root_squash, no_root_squash, all_squash, anonuid=N, …)",
            IpOrCidr => "an IP address or a network in CIDR notation, e.g. `10.0.0.2/32`",
            Interface => "a network interface name: 1 to 15 letters, digits, `_`, `-` or `.`, not `.` or `..`",
            UnitName => "a systemd unit such as `nginx.service` or `nix-daemon.socket`",
            HttpUrl => "an `http://` or `https://` URL without spaces",
            CacheUrl => "a binary cache URL: `https://…`, `http://…`, `s3://…`, `ssh://…`, `ssh-ng://…` or `file://…`, without spaces",
            NixPublicKey => "`name:base64` of an ed25519 key, e.g. `cache.nixos.org-1:6NCH…=`",
            Feature => "letters, digits, `_` and `-`, e.g. `big-parallel` or `kvm`",
            WireguardKey => "a WireGuard public key: 44 characters of base64 ending in `=` (`wg pubkey` prints it)",
            Endpoint => "`host:port` or `[ipv6]:port`, e.g. `vpn.example.org:51820`",
            RcloneRemote => "`remote:path` of a configured rclone remote, e.g. `b2:bucket/path`, without whitespace; empty for none",
            HostRef => "the name of a host in `hosts/`, or empty",
            Pattern => "one restic exclude pattern, without control characters",
            SecretRef => "the name of an agenix secret (`secrets/<name>.age`): letters, digits, `_` and `-`, starting with a letter or digit; empty for none",
            IpAddress => "a plain IP address without prefix, e.g. `192.168.1.1` or `fd00::1`",
            Cidr => "an address with its prefix length, e.g. `192.168.1.0/24` or `fd00::/64`",
            HostId => "exactly 8 hex digits (ZFS needs them in `networking.hostId`), e.g. `8425e349`; leave `host_id` out to derive it from the host name",
            Tag => "letters, digits, `-` and `_` (select hosts with `@tag`)",
            HostName => "the name of a host file in `hosts/`: 1 to 63 lowercase letters, digits and `-`",
            Email => "an e-mail address `user@domain` such as `alerts@home.arpa` (letters, digits, `.`, `_`, `%`, `+`, `-` before the `@`)",
            SmbShare => "a share name of letters, digits, spaces, `_`, `-` and `.`, at most 80 characters, not starting or ending with a space; not `global`, `homes` or `printers`",
        }
    }

    /// A regular expression for editors (JSON Schema `pattern`). The loader runs
    /// `check`, which is at least as strict.
    pub fn pattern(self) -> Option<&'static str> {
        Some(match self {
            Line | Pattern => r"^[^\u0000-\u001f\u007f]*$",
            Text => r"^[^\u0000-\u0008\u000b-\u001f\u007f]*$",
            SshUser => r"^[a-z_][a-z0-9_-]*\$?$",
            UserName => r"^[a-z_][a-z0-9_-]*$",
            SmbUser => r"^@?[a-z_][a-z0-9_-]*$",
            SmbText => {
                r"^([^\u0000-\u001f\u007f\s]([^\u0000-\u001f\u007f]*[^\u0000-\u001f\u007f\s\\])?)?$"
            }
            HostAddress => {
                r"^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$"
            }
            SshPublicKey => {
                r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}( [^\u0000-\u001f\u007f]*)?$"
            }
            TimeZone => r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
            Calendar => r"^[A-Za-z0-9*/,.:~ -]+$",
            Duration => r"^([0-9]+(ms|s|m|h|d|w|y))+$",
            GcAge => r"^[1-9][0-9]{0,4}d$",
            Size => r"^[1-9][0-9]*[KMGTP]$",
            RecordSize => r"^([0-9]+[KM]?)$",
            Compression => {
                r"^(on|off|lz4|lzjb|zle|gzip(-[1-9])?|zstd(-([1-9]|1[0-9]))?|zstd-fast(-[0-9]+)?)$"
            }
            StateVersion => return None,
            DomainName => {
                r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
            }
            RepoPath => r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*$",
            Name => r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
            PoolName => r"^[A-Za-z][A-Za-z0-9_.:-]*$",
            DatasetName => r"^[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9][A-Za-z0-9_.:-]*)*$",
            PoolProperty => r"^([a-z]+|feature@[a-z_]+)$",
            ZfsValue => r"^[A-Za-z0-9_.:@+/-]+$",
            AbsPath => r"^(/[^\u0000-\u0020\u007f/]+)+/?$",
            DevicePath => r"^/dev/[^\u0000-\u0020\u007f]+$",
            Mountpoint => r"^((/[^\u0000-\u0020\u007f/]+)+/?|none|legacy)$",
            NfsClient => {
                r"^(\*|@[A-Za-z0-9_.-]+|[A-Za-z0-9*?][A-Za-z0-9*?.-]*(/[0-9.]+)?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/[0-9]+)?)$"
            }
            NfsOptions => r"^[a-z_]+(=[A-Za-z0-9_.:/-]+)?(,[a-z_]+(=[A-Za-z0-9_.:/-]+)?)*$",
            IpOrCidr => r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$",
            Interface => r"^[A-Za-z0-9_.-]{1,15}$",
            UnitName => {
                r"^[A-Za-z0-9:_.@\\-]+\.(service|socket|target|mount|automount|timer|path|swap|slice|scope|device)$"
            }
            HttpUrl => r"^https?://[^\u0000-\u0020\u007f]+$",
            CacheUrl => r"^(https?|s3|ssh|ssh-ng|file)://[^\u0000-\u0020\u007f]+$",
            NixPublicKey => r"^[A-Za-z0-9._-]+:[A-Za-z0-9+/]{43}=$",
            Feature => r"^[A-Za-z0-9_-]+$",
            WireguardKey => r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$",
            Endpoint => r"^([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$",
            RcloneRemote => r"^([A-Za-z0-9_][A-Za-z0-9_.-]*:[^\u0000-\u0020\u007f]*)?$",
            HostRef => r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?)?$",
            SecretRef => r"^([A-Za-z0-9][A-Za-z0-9_-]{0,63})?$",
            SmbShare => r"^[A-Za-z0-9_.-]([A-Za-z0-9 _.-]*[A-Za-z0-9_.-])?$",
            IpAddress => r"^[0-9A-Fa-f:.]+$",
            Cidr => r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$",
            HostId => r"^[0-9A-Fa-f]{8}$",
            Tag => r"^[A-Za-z0-9_-]+$",
            HostName => r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
            Email => {
                r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
            }
        })
    }

    fn max_len(self) -> Option<u32> {
        match self {
            SshUser | UserName => Some(32),
            DomainName | HostAddress => Some(253),
            Name => Some(64),
            SmbShare => Some(80),
            Interface => Some(15),
            PoolName | DatasetName => Some(200),
            _ => None,
        }
    }

    /// The schema of a string of this kind.
    pub fn schema(self) -> Schema {
        let mut s = json_schema!({
            "description": format!("Accepted: {}.", self.allowed()),
            "type": "string",
            "format": self.format(),
        });
        // Closed lists go into the schema whole, so editors know them too.
        let closed: Option<Vec<&str>> = match self {
            StateVersion => Some(NIXOS_RELEASES.to_vec()),
            TimeZone => Some(time_zones().collect()),
            _ => None,
        };
        if let Some(values) = closed {
            s.insert("enum".into(), values.into());
        }
        if let Some(n) = self.max_len() {
            s.insert("maxLength".into(), n.into());
        }
        if let Some(p) = self.pattern() {
            s.insert("pattern".into(), p.into());
        }
        s
    }

    /// `Ok` when `v` is a value of this kind; otherwise what is wrong with it.
    pub fn check(self, v: &str) -> Result<(), String> {
        let control = |allow_nl: bool| {
            v.chars()
                .find(|c| c.is_control() && !(allow_nl && (*c == '\n' || *c == '\t')))
                .map(|c| format!("contains the control character {c:?}"))
        };
        if let Some(e) = control(self == Text) {
            return Err(e);
        }
        if let Some(max) = self.max_len() {
            if v.chars().count() > max as usize {
                return Err(format!("longer than {max} characters"));
            }
        }
        match self {
            Line | Text | Pattern => Ok(()),
            SmbText => smb_text(v),
            SshUser => user_name(v, true),
            UserName => user_name(v, false),
            SmbUser => user_name(v.strip_prefix('@').unwrap_or(v), false),
            HostAddress => host_address(v),
            SshPublicKey => ssh_public_key(v),
            TimeZone => time_zones()
                .any(|z| z == v)
                .then_some(())
                .ok_or_else(|| "not in the tz database".into()),
            Calendar => calendar(v),
            Duration => duration(v),
            GcAge => regex_ok(self, v, "not a number of days"),
            Size => regex_ok(self, v, "not a positive size with a unit"),
            RecordSize => record_size(v),
            Compression => regex_ok(self, v, "not a ZFS compression"),
            StateVersion => NIXOS_RELEASES
                .contains(&v)
                .then_some(())
                .ok_or_else(|| "not a NixOS release".into()),
            DomainName => dns_name(v),
            RepoPath => repo_path(v),
            Name => regex_ok(self, v, "not a plain name"),
            PoolName => pool_name(v),
            DatasetName => regex_ok(self, v, "not a dataset name"),
            PoolProperty => pool_property(v),
            ZfsValue => regex_ok(self, v, "not a plain property value"),
            AbsPath => abs_path(v),
            DevicePath => match v.strip_prefix("/dev/") {
                Some(_) => abs_path(v),
                None => Err("not under /dev/".into()),
            },
            Mountpoint => match v {
                "none" | "legacy" => Ok(()),
                "/" => Err("`/` is the root filesystem's".into()),
                _ => abs_path(v),
            },
            NfsClient => nfs_client(v),
            NfsOptions => nfs_options(v),
            IpOrCidr => parse_cidr(v)
                .map(|_| ())
                .ok_or_else(|| "not an address or CIDR".into()),
            Interface => match v {
                "." | ".." => Err("not an interface name".into()),
                _ => regex_ok(self, v, "not an interface name"),
            },
            UnitName => regex_ok(self, v, "not a systemd unit name"),
            HttpUrl => regex_ok(self, v, "not an http(s) URL"),
            CacheUrl => regex_ok(self, v, "not a cache URL"),
            NixPublicKey => nix_public_key(v),
            Feature => regex_ok(self, v, "not a feature name"),
            WireguardKey => match base64(v) {
                Some(b) if b.len() == 32 && v.len() == 44 => Ok(()),
                _ => Err("not base64 of 32 bytes".into()),
            },
            Endpoint => endpoint(v),
            RcloneRemote => regex_ok(self, v, "not `remote:path`"),
            HostRef => regex_ok(self, v, "not a host name"),
            SecretRef => regex_ok(self, v, "not a secret name (no `/`, `.` or spaces)"),
            IpAddress => v
                .parse::<IpAddr>()
                .map(|_| ())
                .map_err(|_| "not an IP address".into()),
            Cidr => match parse_cidr(v) {
                Some(_) if v.contains('/') => Ok(()),
                Some(_) => Err("no `/prefix`".into()),
                None => Err("not `address/prefix`".into()),
            },
            HostId => regex_ok(self, v, "not 8 hex digits"),
            Tag => regex_ok(self, v, "not a tag"),
            HostName => regex_ok(self, v, "not a host name"),
            Email => regex_ok(self, v, "not an e-mail address"),
            SmbShare => match v.to_ascii_lowercase().as_str() {
                "global" | "homes" | "printers" => Err("a section samba treats specially".into()),
                _ => regex_ok(self, v, "not a plain share name"),
            },
        }
    }
}

fn regex_ok(kind: Kind, v: &str, why: &str) -> Result<(), String> {
    use std::sync::OnceLock;
    // One compiled pattern per kind, built on first use (`Kind` is a fieldless enum).
    static CACHE: [OnceLock<regex::Regex>; 64] = [const { OnceLock::new() }; 64];
    let re = CACHE[kind as usize]
        .get_or_init(|| regex::Regex::new(kind.pattern().unwrap_or(".*")).expect("static"));
    if re.is_match(v) {
        Ok(())
    } else {
        Err(why.into())
    }
}

fn user_name(v: &str, dollar: bool) -> Result<(), String> {
    let body = if dollar {
        v.strip_suffix('$').unwrap_or(v)
    } else {
        v
    };
    let mut chars = body.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && v.len() <= 32 {
        Ok(())
    } else if v.starts_with('-') {
        Err("starts with `-`".into())
    } else {
        Err("not a user name".into())
    }
}

fn smb_text(v: &str) -> Result<(), String> {
    if v.trim() != v {
        return Err("smb.conf drops leading and trailing spaces".into());
    }
    if v.ends_with('\\') {
        return Err("a trailing `\\` continues the smb.conf line".into());
    }
    Ok(())
}

/// A DNS name: RFC 1123 labels.
fn dns_name(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("empty".into());
    }
    if v.starts_with('-') {
        return Err("starts with `-`".into());
    }
    for label in v.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("`{label}` is not a DNS label"));
        }
    }
    Ok(())
}

fn host_address(v: &str) -> Result<(), String> {
    if v.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if v.contains(':') {
        return Err("not an IP address".into());
    }
    // Dotted digits that are not an IPv4 address (`192.168.1.300`) are a typo, not a name.
    if v.split('.')
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("not an IPv4 address".into());
    }
    dns_name(v)
}

fn ssh_public_key(v: &str) -> Result<(), String> {
    let mut parts = v.splitn(3, ' ');
    let (algo, data) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !SSH_KEY_TYPES.contains(&algo) {
        return Err(format!("`{}` is not a known key type", shown(algo, 40)));
    }
    let Some(blob) = base64(data) else {
        return Err("the key data is not valid base64".into());
    };
    let embedded = blob
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if embedded != Some(algo.as_bytes()) {
        return Err(format!("the key data is not a `{algo}` key"));
    }
    if algo == "ssh-ed25519" && blob.len() != 4 + 11 + 4 + 32 {
        return Err("the key data has the wrong length for ssh-ed25519".into());
    }
    Ok(())
}

fn nix_public_key(v: &str) -> Result<(), String> {
    let Some((name, key)) = v.split_once(':') else {
        return Err("no `name:` prefix".into());
    };
    if name.is_empty() {
        return Err("empty key name".into());
    }
    match base64(key) {
        Some(b) if b.len() == 32 => regex_ok(NixPublicKey, v, "not `name:base64`"),
        _ => Err("the key is not base64 of 32 bytes".into()),
    }
}

/// Standard base64 with padding; `None` when malformed.
pub fn base64(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 4 != 0 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.as_bytes();
    let pad = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let mut n = 0u32;
        for (j, c) in chunk.iter().enumerate() {
            let v = if *c == b'=' && last && j >= 4 - pad {
                0
            } else {
                val(*c)?
            };
            n = n << 6 | v;
        }
        // Canonical encodings only: the bits the padding drops must be zero.
        if last && pad > 0 && n & ((1 << (8 * pad)) - 1) != 0 {
            return None;
        }
        let take = if last { 3 - pad } else { 3 };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

/// A number written in decimal digits only (`str::parse` also takes a leading `+`).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn record_size(v: &str) -> Result<(), String> {
    let (num, mult) = match v.as_bytes().last() {
        Some(b'K') => (&v[..v.len() - 1], 1u64 << 10),
        Some(b'M') => (&v[..v.len() - 1], 1u64 << 20),
        _ => (v, 1),
    };
    let bytes = digits(num).map(|n| n.saturating_mul(mult));
    match bytes {
        Some(b) if b.is_power_of_two() && (512..=16 << 20).contains(&b) => Ok(()),
        _ => Err("not a power of two from 512 to 16M".into()),
    }
}

fn repo_path(v: &str) -> Result<(), String> {
    if v.starts_with('/') {
        return Err("absolute; give it relative to the repository root".into());
    }
    if v.split('/').any(|c| c == ".." || c == ".") {
        return Err("has a `.` or `..` part".into());
    }
    regex_ok(RepoPath, v, "not a plain relative path")
}

fn pool_name(v: &str) -> Result<(), String> {
    // zpool(8): these names are reserved, and so is any name starting with the first four.
    const PREFIXES: &[&str] = &["mirror", "raidz", "draid", "spare"];
    const WORDS: &[&str] = &["log", "cache", "special", "dedup"];
    if PREFIXES.iter().any(|p| v.starts_with(p)) || WORDS.contains(&v) {
        return Err("a reserved word of zpool".into());
    }
    regex_ok(PoolName, v, "not a pool name")
}

fn pool_property(v: &str) -> Result<(), String> {
    if POOL_PROPERTIES.contains(&v) || v.strip_prefix("feature@").is_some_and(|f| !f.is_empty()) {
        return regex_ok(PoolProperty, v, "not a pool property");
    }
    Err("not a zpool property".into())
}

fn abs_path(v: &str) -> Result<(), String> {
    if !v.starts_with('/') {
        return Err("not an absolute path".into());
    }
    if v.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    if v.split('/').skip(1).any(|c| c == "." || c == "..") {
        return Err("has a `.` or `..` part".into());
    }
    if v.contains("//") {
        return Err("has an empty part (`//`)".into());
    }
    Ok(())
}

fn nfs_client(v: &str) -> Result<(), String> {
    if v == "*" {
        return Ok(());
    }
    if v.starts_with('-') {
        return Err("starts with `-`".into());
    }
    if let Some(group) = v.strip_prefix('@') {
        return regex_ok(Name, group, "not a netgroup name");
    }
    if v.parse::<IpAddr>().is_ok() || parse_cidr(v).is_some() {
        return Ok(());
    }
    if let Some((ip, mask)) = v.split_once('/') {
        return match (
            ip.parse::<std::net::Ipv4Addr>(),
            mask.parse::<std::net::Ipv4Addr>(),
        ) {
            (Ok(_), Ok(_)) => Ok(()),
            _ => Err("not a network (`address/prefix` or `address/netmask`)".into()),
        };
    }
    if v.contains(['*', '?']) {
        let plain = v.replace(['*', '?'], "x");
        return dns_name(&plain).map_err(|_| "not a host name pattern".into());
    }
    host_address(v)
}

fn nfs_options(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("empty".into());
    }
    for opt in v.split(',') {
        let (name, value) = match opt.split_once('=') {
            Some((n, val)) => (n, Some(val)),
            None => (opt, None),
        };
        let valued = NFS_VALUED.iter().find(|(n, _)| *n == name);
        let ok = match (value, valued) {
            (None, _) => NFS_FLAGS.contains(&name),
            (Some(val), Some((_, "number"))) => digits(val).is_some_and(|n| n <= u32::MAX as u64),
            (Some(val), Some((_, "path"))) => abs_path(val).is_ok(),
            (Some(val), Some((_, "sec"))) => val
                .split(':')
                .all(|s| ["sys", "krb5", "krb5i", "krb5p"].contains(&s)),
            (Some(val), Some(_)) => !val.is_empty() && !val.contains(char::is_whitespace),
            (Some(_), None) => false,
        };
        if !ok {
            return Err(format!("`{}` is not an exports(5) option", shown(opt, 40)));
        }
    }
    Ok(())
}

fn endpoint(v: &str) -> Result<(), String> {
    let Some((host, port)) = v.rsplit_once(':') else {
        return Err("no `:port`".into());
    };
    if port.len() > 5 || !digits(port).is_some_and(|p| (1..=65535).contains(&p)) {
        return Err("not a port number after `:`".into());
    }
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "not an IPv6 address in `[…]`".into()),
        None => host_address(host),
    }
}

/// `30s`, `1h30m`: numbers each followed by a unit, not all zero.
fn duration(v: &str) -> Result<(), String> {
    regex_ok(Duration, v, "not a number with a unit")?;
    if v.chars().filter(char::is_ascii_digit).all(|c| c == '0') {
        return Err("zero".into());
    }
    Ok(())
}

/// systemd.time(7) calendar events: the shorthands, or `[weekday] [date] [time]`.
fn calendar(v: &str) -> Result<(), String> {
    const SHORT: &[&str] = &[
        "minutely",
        "hourly",
        "daily",
        "monthly",
        "weekly",
        "yearly",
        "annually",
        "quarterly",
        "semiannually",
    ];
    if SHORT.contains(&v) {
        return Ok(());
    }
    let parts: Vec<&str> = v.split(' ').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err("not `[weekday] [date] [time]`".into());
    }
    let mut rest = &parts[..];
    if rest[0].starts_with(|c: char| c.is_ascii_alphabetic()) {
        weekdays(rest[0])?;
        rest = &rest[1..];
    }
    let mut seen_date = false;
    for (i, p) in rest.iter().enumerate() {
        if p.contains(':') && i == rest.len() - 1 {
            fields(p, ':', &[(0, 23), (0, 59), (0, 59)], 2)?;
        } else if p.contains('-') && !seen_date {
            seen_date = true;
            fields(p, '-', &[(1970, 2199), (1, 12), (1, 31)], 2)?;
        } else {
            return Err(format!("`{}` is neither a date nor a time", shown(p, 30)));
        }
    }
    if rest.is_empty() && parts.len() == 1 {
        return Ok(());
    }
    Ok(())
}

fn weekdays(p: &str) -> Result<(), String> {
    const DAYS: &[&str] = &[
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    for item in p.split(',') {
        for day in item.split("..") {
            if !DAYS.contains(&day.to_ascii_lowercase().as_str()) {
                return Err(format!("`{}` is not a weekday", shown(day, 20)));
            }
        }
    }
    Ok(())
}

/// `2024-*-01` or `*:0/30:00`: `sep`-separated components, each `*`, numbers, ranges
/// `a..b`, lists `a,b` and steps `/n`, within `ranges`; at least `min` components.
fn fields(p: &str, sep: char, ranges: &[(u32, u32)], min: usize) -> Result<(), String> {
    let comps: Vec<&str> = p.split(sep).collect();
    // A date may leave out the year (`*-01` is month-day): align from the right.
    if comps.len() < min || comps.len() > ranges.len() {
        return Err(format!("`{}` has the wrong number of parts", shown(p, 30)));
    }
    let ranges = if sep == '-' {
        &ranges[ranges.len() - comps.len()..]
    } else {
        &ranges[..comps.len()]
    };
    for (c, (lo, hi)) in comps.iter().zip(ranges) {
        for item in c.split(',') {
            let (base, step) = match item.split_once('/') {
                Some((b, s)) => (b, Some(s)),
                None => (item, None),
            };
            if let Some(s) = step {
                if !digits(s).is_some_and(|n| n > 0) {
                    return Err(format!("bad step in `{}`", shown(p, 30)));
                }
            }
            if base == "*" {
                continue;
            }
            for n in base.split("..") {
                // Seconds may have a fraction (`00:00:30.5`).
                let n = n.split('.').next().unwrap_or(n);
                let ok = digits(n).is_some_and(|n| n >= *lo as u64 && n <= *hi as u64);
                if !ok {
                    return Err(format!("`{}` is out of range {lo}–{hi}", shown(item, 20)));
                }
            }
        }
    }
    Ok(())
}

/// A value for a message: control characters escaped, long values cut.
pub fn shown(v: &str, max: usize) -> String {
    let escaped: String = v.chars().flat_map(char::escape_debug).collect();
    let escaped = escaped.replace("\\'", "'").replace("\\\"", "\"");
    if escaped.chars().count() > max {
        let cut: String = escaped.chars().take(max).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

/// `192.168.1.0/24` → (address, prefix). A bare address gets the full prefix.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = match s.split_once('/') {
        // Digits only: `str::parse` would also take `+24`.
        Some((_, p)) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => return None,
        Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((ip, prefix))
}

/// Schema of a string of `kind`, for `#[schemars(schema_with = …)]`.
pub fn string_schema(kind: Kind) -> Schema {
    kind.schema()
}

/// Schema of an array of `kind` strings.
pub fn list_schema(kind: Kind) -> Schema {
    json_schema!({
        "type": "array",
        "items": string_schema(kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(k: Kind, v: &str) {
        assert!(
            k.check(v).is_ok(),
            "{k:?} should accept {v:?}: {:?}",
            k.check(v)
        );
        if let Some(p) = k.pattern() {
            // The editor pattern never rejects what the loader accepts.
            let re = regex::Regex::new(p).unwrap();
            assert!(re.is_match(v), "{k:?} pattern rejects {v:?}");
        }
    }
    fn bad(k: Kind, v: &str) {
        assert!(k.check(v).is_err(), "{k:?} should reject {v:?}");
    }

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOL7e3tGVbE8miB+hYF+hWip1ncEdoBQxnYWwzhOt9U1 alice@laptop";

    #[test]
    fn every_pattern_compiles_and_formats_are_unique() {
        assert!(
            ALL.len() <= 64,
            "the pattern cache in regex_ok holds 64 kinds"
        );
        let mut formats = std::collections::BTreeSet::new();
        for k in ALL {
            assert!(formats.insert(k.format()), "{k:?}");
            assert_eq!(Kind::from_format(k.format()), Some(*k));
            if let Some(p) = k.pattern() {
                regex::Regex::new(p).unwrap_or_else(|e| panic!("{k:?}: {e}"));
            }
        }
    }

    /// A valid value of each kind.
    fn sample(k: Kind) -> &'static str {
        match k {
            Line | Text | SmbText | Pattern => "plain",
            SshUser | UserName | SmbUser => "alice",
            HostAddress | DomainName | NfsClient => "nas.home.arpa",
            SshPublicKey => ED,
            TimeZone => "Europe/Berlin",
            Calendar => "daily",
            Duration => "30s",
            GcAge => "30d",
            Size => "8T",
            RecordSize => "1M",
            Compression => "lz4",
            StateVersion => "25.11",
            RepoPath => "modules/a.nix",
            Name | PoolName | DatasetName | HostRef | SecretRef | SmbShare | Tag | HostName => {
                "media"
            }
            PoolProperty => "ashift",
            ZfsValue => "12",
            AbsPath | Mountpoint => "/srv/media",
            DevicePath => "/dev/disk/by-id/ata-x",
            NfsOptions => "ro,sync",
            IpOrCidr | Cidr => "10.0.0.0/8",
            IpAddress => "10.0.0.1",
            Email => "alerts@home.arpa",
            Interface => "end0",
            UnitName => "sshd.service",
            HttpUrl | CacheUrl => "https://example.org/x",
            NixPublicKey => {
                "nix-community.cachix.org-1:mB9FSh9qf2dCimDSUo8Zy7bkq5CX+/rkCWyvRCYg3Fs="
            }
            Feature => "kvm",
            WireguardKey => "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
            Endpoint => "vpn.example.org:51820",
            RcloneRemote => "b2:bucket/path",
            HostId => "8425e349",
        }
    }

    #[test]
    fn no_kind_accepts_a_control_character() {
        for k in ALL {
            let v = sample(*k);
            ok(*k, v);
            for c in ['\0', '\r', '\u{1b}', '\u{7f}', '\n'] {
                if c == '\n' && *k == Text {
                    continue;
                }
                for bad_value in [format!("{v}{c}"), format!("{c}{v}"), format!("{v}{c}x")] {
                    assert!(k.check(&bad_value).is_err(), "{k:?} accepts {bad_value:?}");
                }
            }
        }
    }

    /// Many pseudo-random strings per kind (mutations of a valid sample with ASCII,
    /// control and non-ASCII characters): no check panics, nothing accepted holds a control
    /// character (beyond `text`'s newline and tab), and the editor pattern accepts whatever
    /// the loader accepts.
    #[test]
    fn random_values_never_panic_and_patterns_agree() {
        const ALPHABET: &[char] = &[
            'a', 'Z', '0', '9', '-', '_', '.', '/', ':', '@', '*', '?', ',', '=', '+', ' ', '$',
            '\\', '\'', '"', '[', ']', '{', '}', '\n', '\t', '\0', '\u{7f}', 'é', '😀', '\u{202e}',
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for k in ALL {
            let re = k.pattern().map(|p| regex::Regex::new(p).unwrap());
            for _ in 0..2000 {
                let mut v: Vec<char> = sample(*k).chars().collect();
                for _ in 0..(next() % 4 + 1) {
                    let c = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
                    let at = (next() % (v.len() as u64 + 1)) as usize;
                    let within = at.min(v.len().saturating_sub(1));
                    match next() % 3 {
                        0 if !v.is_empty() => {
                            v.remove(within);
                        }
                        1 if !v.is_empty() => v[within] = c,
                        _ => v.insert(at, c),
                    }
                }
                let v: String = v.into_iter().collect();
                if k.check(&v).is_ok() {
                    let control = v
                        .chars()
                        .any(|c| c.is_control() && !(*k == Text && (c == '\n' || c == '\t')));
                    assert!(!control, "{k:?} accepts {v:?}");
                    if let Some(re) = &re {
                        assert!(
                            re.is_match(&v),
                            "{k:?}: the pattern rejects {v:?}, which the loader accepts"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn users_and_addresses() {
        ok(SshUser, "root");
        ok(SshUser, "deploy_1");
        ok(SshUser, "machine$");
        bad(SshUser, "Root");
        bad(SshUser, "-oProxyCommand=x");
        bad(SshUser, "a\nProxyCommand x");
        bad(SshUser, &"a".repeat(33));
        ok(HostAddress, "192.168.1.20");
        ok(HostAddress, "fd00::20");
        ok(HostAddress, "nas.home.arpa");
        bad(HostAddress, "-oProxyCommand=touch");
        bad(HostAddress, "192.168.1.300");
        bad(HostAddress, "a b");
        bad(HostAddress, "");
    }

    #[test]
    fn ssh_keys_are_parsed() {
        ok(SshPublicKey, ED);
        ok(SshPublicKey, &ED[..ED.len() - 13]);
        bad(
            SshPublicKey,
            &format!("{ED}\n@cert-authority * ssh-ed25519 AAAA"),
        );
        bad(
            SshPublicKey,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb alice@x",
        );
        // The embedded algorithm must match the stated one.
        bad(SshPublicKey, &ED.replacen("ssh-ed25519", "ssh-rsa", 1));
        bad(SshPublicKey, "ssh-dss AAAAB3NzaC1kc3M=");
        bad(SshPublicKey, "hello world");
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64("aGk=").unwrap(), b"hi");
        assert_eq!(base64("YWJj").unwrap(), b"abc");
        assert!(base64("aGk").is_none());
        assert!(base64("aGl=").is_none(), "non-zero padding bits");
        assert!(base64("a=Gk").is_none());
        assert!(base64("").is_none());
    }

    #[test]
    fn time_values() {
        ok(TimeZone, "Europe/Berlin");
        ok(TimeZone, "UTC");
        bad(TimeZone, "Mars/Olympus");
        bad(TimeZone, "Europe/Berlin ");
        for c in [
            "daily",
            "monthly",
            "*:0/30",
            "Mon *-*-* 03:00",
            "*-*-01 04:00:00",
            "Sat,Sun 10:00",
            "03:30",
        ] {
            ok(Calendar, c);
        }
        for c in [
            "every day",
            "25:00",
            "daily; rm -rf /",
            "*-13-01",
            "Mon..Funday 10:00",
        ] {
            bad(Calendar, c);
        }
        ok(Duration, "90d");
        ok(Duration, "1h30m");
        bad(Duration, "0s");
        bad(Duration, "ninety days");
        ok(GcAge, "30d");
        bad(GcAge, "30d; rm -rf /");
        bad(GcAge, "30");
        ok(StateVersion, "25.11");
        bad(StateVersion, "25.13");
        bad(StateVersion, "latest");
    }

    #[test]
    fn sizes_and_zfs() {
        ok(Size, "512M");
        ok(Size, "8T");
        bad(Size, "-5T");
        bad(Size, "lots");
        bad(Size, "0G");
        ok(RecordSize, "1M");
        ok(RecordSize, "128K");
        bad(RecordSize, "3K");
        bad(RecordSize, "32M");
        ok(Compression, "zstd-3");
        bad(Compression, "brotli");
        ok(PoolName, "tank");
        bad(PoolName, "mirror");
        bad(PoolName, "raidz2");
        ok(DatasetName, "media/photos");
        bad(DatasetName, "../x");
        bad(DatasetName, ".hidden");
        ok(PoolProperty, "ashift");
        ok(PoolProperty, "feature@encryption");
        bad(PoolProperty, "ashfit");
        ok(Mountpoint, "/srv/media");
        ok(Mountpoint, "none");
        bad(Mountpoint, "/");
        bad(Mountpoint, "/srv/../etc");
    }

    #[test]
    fn names_and_paths() {
        ok(Name, "restic-password");
        bad(Name, "../../etc/x");
        bad(Name, ".hidden");
        bad(Name, "a b");
        ok(RepoPath, "modules/nixos/ryzen.nix");
        bad(RepoPath, "../outside.nix");
        bad(RepoPath, "/etc/passwd");
        bad(RepoPath, "modules/../../x.nix");
        ok(DomainName, "home.arpa");
        bad(DomainName, "home..arpa");
        bad(DomainName, "-x.org");
        bad(DomainName, "home arpa");
        ok(AbsPath, "/srv/backup");
        bad(AbsPath, "/srv/media\n/ *(rw,no_root_squash)");
        bad(AbsPath, "srv");
    }

    #[test]
    fn nfs_and_samba() {
        for c in [
            "*",
            "192.168.1.10",
            "192.168.1.0/24",
            "10.0.0.0/255.0.0.0",
            "*.home.arpa",
            "nas",
            "@trusted",
            "fd00::/8",
        ] {
            ok(NfsClient, c);
        }
        for c in ["192", "-x", "a b", "192.168.1.0/33"] {
            bad(NfsClient, c);
        }
        ok(NfsOptions, "ro,all_squash,no_subtree_check");
        ok(NfsOptions, "rw,sync,anonuid=1000,sec=krb5:sys");
        bad(NfsOptions, "rw,no_root_squash\n/ *(rw)");
        bad(NfsOptions, "rw,bogus");
        bad(NfsOptions, "");
        ok(SmbText, "HOME");
        ok(SmbText, "Photos of 2024");
        bad(SmbText, "HOME\n[root]\npath = /");
        bad(SmbText, " padded");
        bad(SmbText, "line\\");
        ok(SmbUser, "@family");
        ok(SmbShare, "family docs");
        bad(SmbShare, "global");
        bad(SmbShare, "x]\n[root");
        bad(SmbShare, " x");
        ok(WireguardKey, "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=");
        bad(WireguardKey, "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8D=");
        ok(Endpoint, "vpn.example.org:51820");
        ok(Endpoint, "[fd00::1]:51820");
        bad(Endpoint, "vpn.example.org");
        ok(
            NixPublicKey,
            "nix-community.cachix.org-1:mB9FSh9qf2dCimDSUo8Zy7bkq5CX+/rkCWyvRCYg3Fs=",
        );
        bad(NixPublicKey, "nix-community.cachix.org-1:short=");
        ok(CacheUrl, "https://nix-community.cachix.org");
        bad(CacheUrl, "https://x.org\nextra");
        ok(Cidr, "192.168.1.0/24");
        bad(Cidr, "192.168.1.0/33");
        bad(Cidr, "192.168.1.10");
        ok(IpAddress, "fd00::1");
        bad(IpAddress, "192.168.1.1/24");
        ok(HostId, "8425e349");
        bad(HostId, "xyz");
        bad(Tag, "living room");
        ok(Line, "x");
        bad(Line, "a\u{0}b");
        ok(Text, "a\nb\tc");
        bad(Text, "a\u{1b}[31m");
    }
}
