# hearth's generated host module evaluated with lib.evalModules against the REAL NixOS
# modules (from the vendored nixpkgs-sparse tree) of the services it enables. Everything
# else is a stub: options outside the real modules' namespaces are loose (freeform), `pkgs`
# is a set of fake derivations. Forces every defined value under the real namespaces plus
# `assertions` and `warnings`; returns the failed assertions' messages and the warnings
# (empty when clean). A type error or an unknown option under a real namespace aborts the
# evaluation with the option path in the message.
# `realServices` are the `services.*` names the real modules declare; `realPaths` the dotted
# paths outside `services` they declare (e.g. "boot.zfs", "nix.buildMachines"), which must
# list every such namespace of the loaded modules (the stubs leave room for exactly those).
# `system` is the host's (generated/fleet.nix): binfmt.nix refuses to emulate it.
{ nixpkgsLib, sparse, host, realModules, realServices, realPaths ? [ ], extraModules ? [ ]
, extraOutput ? null, system ? "x86_64-linux" }:
let
  lib = import (nixpkgsLib + "/lib");
  inherit (lib) mkOption types;
  # `out` points back at the same set, so deepSeq sees a cycle, not an endless chain.
  fake = name: let drv = {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    drvPath = "/nix/store/00000000000000000000000000000000-${name}.drv";
    meta = { };
    passthru = { };
    version = "0";
    pname = name;
    override = _: fake name;
    overrideAttrs = _: fake name;
    out = drv;
    kernelModuleAttribute = name; # zfs.nix: the kernel package set's module attribute
    withKerberos = false; # sshd.nix asserts on it
  }; in drv;
  # Nix has no catch-all attribute, so the stub lists the packages the modules name.
  pkgs = lib.genAttrs [ "restic" "restic-rest-server" "rclone" "coreutils" "bash" "openssh"
    "samba" "wsdd" "nfs-utils" "iperf3" "tailscale" "wireguard-tools" "fail2ban" "prometheus"
    "prometheus-node-exporter" "zfs" "iproute2" "iptables" "nftables" "systemd" "util-linux"
    "gnugrep" "gnused" "procps" "kmod" "writeShellScript" "ethtool" "jq" "getent"
    "caddy" "blocky" "jellyfin" "jellyfin-web" "jellyfin-ffmpeg" "authelia" "k3s" "rke2"
    "grafana" "grafana-loki" "grafana-alloy" "prometheus-alertmanager" "envsubst" "logger"
    "nix" "qemu-user" "openresolv" "amneziawg-tools" "zfs_unstable" "zfstools" "gawk" "curl"
    "hostname-debian" "zpool-auto-expand-partitions" "acl" ] fake // {
    writeShellScript = name: _: fake name;
    writeShellScriptBin = name: _: fake name;
    writeScript = name: _: fake name;
    writeText = name: _: fake name;
    writeTextFile = a: fake (a.name or "file");
    runCommand = name: _: _: fake name;
    runCommandLocal = name: _: _: fake name;
    runCommandNoCCLocal = name: _: _: fake name;
    formats = import (sparse + "/pkgs/pkgs-lib/formats.nix") { inherit lib pkgs; };
    # binfmt.nix asks the platform for its emulator (lib.systems), so a real elaborated one.
    stdenv = rec { hostPlatform = lib.systems.elaborate { inherit system; }; buildPlatform = hostPlatform; isLinux = true; };
    wrapQemuBinfmtP = name: _: fake name;
    pkgsStatic = pkgs;
    buildPackages = pkgs;
    xorg = { lndir = fake "lndir"; xauth = fake "xauth"; };
    runtimeShell = "/bin/sh";
    lib = lib;
    path = "/nix/store/fake-nixpkgs";
  };
  # The `utils` argument is not vendored (see the tree's README): the parts the modules use.
  utils = {
    systemdUtils.unitOptions.unitOption = types.oneOf [ types.bool types.int types.str types.path (types.listOf types.str) ];
    escapeSystemdPath = s: lib.replaceStrings [ "/" ] [ "-" ] (lib.removePrefix "/" s);
    escapeSystemdExecArgs = lib.concatMapStringsSep " " lib.escapeShellArg;
    # zfs.nix; nixos/lib/utils.nix has the same list of boot-critical mount points.
    fsNeededForBoot = fs: fs.neededForBoot or false || lib.elem fs.mountPoint
      [ "/" "/nix" "/nix/store" "/var" "/var/log" "/var/lib" "/var/lib/nixos" "/etc" "/usr" ];
  };
  raw = import host;
  dummyArgs = { config = { }; inherit lib pkgs; options = { }; };
  hostAttrs = removeAttrs (raw dummyArgs) [ "imports" ];
  stubTop = lib.subtractLists [ "services" ] (builtins.attrNames hostAttrs);
  # Services the host sets plus those the real modules read or write (not vendored), minus
  # the real.
  writtenByRealModules = [ "rpcbind" "logrotate" "udev" "dbus" "resolved" "avahi" "prometheus"
    "openssh" "mail" "zfs" ];
  stubServices = lib.subtractLists realServices
    (lib.unique (builtins.attrNames (hostAttrs.services or { }) ++ writtenByRealModules));
  loose = mkOption { type = types.lazyAttrsOf types.anything; default = { }; };
  # A top-level stub is a freeform submodule, not a loose attrset: a real module that declares
  # options below it (networking.wireguard) merges its declarations into the submodule, so
  # those take effect and everything else stays loose.
  freeform = { freeformType = types.lazyAttrsOf types.anything; };
  free = mkOption { type = types.submodule freeform; default = { }; };
  core = [ "users" "systemd" "networking" "environment" "programs" "security" "fileSystems"
    "ids" "system" "hardware" "meta" ];
  # `boot` and `nix` are trees of loose options instead: zfs.nix and nix-remote-build.nix
  # define them under conditions that read them (`mkIf config.boot.zfs.enabled { boot.… }`,
  # `boot.initrd = mkIf config.boot.initrd.supportedFilesystems.zfs …`), which on one
  # submodule option is an infinite recursion, as NixOS splits them into separate options.
  # A leaf is a loose option (null) or one of the given type: the names the real modules read
  # or write, plus the host's own second-level names, minus those a real module declares
  # (`realPaths`).
  splitTops = {
    boot = lib.genAttrs [ "isContainer" "kernelPackages" "kernelModules" "kernelParams"
      "extraModulePackages" "loader" "kernel" "zfs" "binfmt" ] (_: null)
      // {
      supportedFilesystems = fsList;
      initrd = { supportedFilesystems = fsList; } // lib.genAttrs [ "kernelModules"
        "availableKernelModules" "extraUtilsCommands" "extraUtilsCommandsTest" "postResumeCommands" "postDeviceCommands"
        "clevis" "services" ] (_: null)
        // { systemd = lib.genAttrs [ "enable" "package" "packages" "services" "targets"
          "extraBin" "storePaths" ] (_: null); };
    };
    nix = lib.genAttrs [ "enable" "package" "settings" "buildMachines" "distributedBuilds" "gc" ]
      (_: null);
  };
  declaredBelow = top: map (p: lib.elemAt (lib.splitString "." p) 1)
    (lib.filter (lib.hasPrefix "${top}.") realPaths);
  treeStub = lib.mapAttrs (_: v: if v == null then mkOption { type = types.anything; }
    else if lib.isOptionType v then mkOption { type = v; default = { }; } else treeStub v);
  # tasks/filesystems.nix's type: nfsd.nix sets a list, hearth an attrset.
  fsList = types.coercedTo (types.listOf types.str) (lib.flip lib.genAttrs (_: true))
    (types.attrsOf types.bool);
  splitStub = top: tree: treeStub (removeAttrs
    (lib.genAttrs (builtins.attrNames (hostAttrs.${top} or { })) (_: null) // tree)
    (declaredBelow top));
  stubs = {
    options = lib.genAttrs
      (lib.subtractLists (builtins.attrNames splitTops) (lib.unique (stubTop ++ core))) (_: free)
      // lib.mapAttrs splitStub splitTops // {
      services = lib.genAttrs stubServices (_: loose);
      age.secrets = mkOption {
        default = { };
        type = types.attrsOf (types.submodule ({ name, ... }: {
          freeformType = types.lazyAttrsOf types.anything;
          options.path = mkOption { type = types.str; default = "/run/agenix/${name}"; };
        }));
      };
    };
  };
  # users.users as users-groups.nix declares it (attrs of submodules), freeform here, so that
  # sshd.nix's per-user `openssh` options merge into each user.
  userStub = {
    options.users.users = mkOption { type = types.attrsOf (types.submodule freeform); default = { }; };
  };
  # Values of stubbed core options that the real modules read (NixOS's own defaults).
  coreValues = {
    networking.nftables.enable = false;
    networking.firewall.enable = true;
    boot.isContainer = false;
    systemd.package = fake "systemd";
    networking.firewall.package = fake "iptables";
    networking.enableIPv6 = true;
    networking.hostId = lib.mkDefault null; # zfs.nix asserts it is set
    environment.etc = { };
    nix.enable = true; # nix-remote-build.nix
    nix.package = fake "nix";
    programs.ssh = { package = fake "openssh"; setXAuthLocation = false; }; # sshd.nix
    system.nssModules.path = "";
    security.wrapperDir = "/run/wrappers/bin"; # zfs.nix
    services.mail.sendmailSetuidWrapper = null;
    boot.kernelPackages = lib.genAttrs [ "zfs" "zfs_unstable" "wireguard" "amneziawg" ] fake
      // { kernel = fake "linux" // { version = "6.12"; }; };
    boot.initrd = {
      systemd.enable = false;
      clevis = { enable = false; useTang = false; devices = { }; };
    };
    # The mounts zfs.nix derives its pools from. hearth's come from disko, in an import the
    # harness drops, so its pool checks see none (tests/disko_eval.rs checks the layouts).
    system.build.fileSystems = [ ];
  };
  hostModule = lib.setFunctionArgs (args: removeAttrs (raw args) [ "imports" ]) (lib.functionArgs raw);
  eval = lib.evalModules {
    modules = [ stubs userStub coreValues hostModule { _module.args = { inherit pkgs utils sparse; }; } ]
      ++ map (p: sparse + "/${p}") realModules ++ extraModules;
  };
  cfg = eval.config;
  # Every DEFINED option under the real namespaces (defaults too would force removed
  # options, whose value is a throw), with its path in the trace on failure.
  definedValues = opts:
    if lib.isOption opts then lib.optional opts.isDefined opts.value
    else if builtins.isAttrs opts then lib.concatMap definedValues (builtins.attrValues opts)
    else [ ];
  # Each namespace at a dotted path: its location, options and evaluated config. A stubbed
  # top level is a submodule, whose evaluated options are in its valueMeta; `<name>` is every
  # attribute of an attrsOf submodule ("users.users.<name>.openssh": sshd.nix's options of
  # each user, not the stubbed rest of the user).
  namespaces = loc: opts: value: path:
    let h = lib.head path; t = lib.tail path; in
    if path == [ ] then [ { inherit loc opts value; } ]
    else if lib.isOption opts then
      (if h == "<name>" then
        lib.concatLists (lib.mapAttrsToList
          (n: m: namespaces (loc ++ [ n ]) m.configuration.options m.configuration.config t)
          (opts.valueMeta.attrs or { }))
      else if opts ? valueMeta.configuration then
        namespaces loc opts.valueMeta.configuration.options opts.valueMeta.configuration.config path
      else [ ])
    else if opts ? ${h} then namespaces (loc ++ [ h ]) opts.${h} (value.${h} or { }) t
    else [ ];
  found = lib.concatMap (p: namespaces [ ] eval.options cfg (lib.splitString "." p))
    (map (s: "services.${s}") realServices ++ realPaths);
  forced = builtins.deepSeq (map (n: definedValues n.opts) found);
  # Inside a freeform stub (users.users.<name>) a misspelt option of a real module would be
  # taken by the freeform type; NixOS refuses it, so the harness does too.
  undeclared = loc: opts: value: lib.concatLists (lib.mapAttrsToList (n: v:
    if !(opts ? ${n}) then [ (lib.showOption (loc ++ [ n ])) ]
    else if lib.isOption opts.${n} || !builtins.isAttrs v then [ ]
    else undeclared (loc ++ [ n ]) opts.${n} v) value);
  strays = lib.concatMap
    (n: lib.optionals (!lib.isOption n.opts) (undeclared n.loc n.opts n.value)) found;
  checked = x: if strays == [ ] then x
    else throw "The option `${lib.head strays}' does not exist (declared by no real module).";
  failed = map (a: a.message) (lib.filter (a: !a.assertion) (cfg.assertions or [ ]));
in
checked (forced (builtins.deepSeq cfg.warnings ({ inherit failed; warnings = cfg.warnings; }
  # A test may ask for more of the evaluated config (e.g. files as a module renders them).
  // lib.optionalAttrs (extraOutput != null) { extra = extraOutput { inherit lib cfg; }; })))
