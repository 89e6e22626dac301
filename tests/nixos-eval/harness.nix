# hearth's generated host module evaluated with lib.evalModules against the REAL NixOS
# modules (from the vendored nixpkgs-sparse tree) of the services it enables. Everything
# else is a stub: options outside the real modules' namespaces are loose attrsets, `pkgs`
# is a set of fake derivations. Forces every value under the real namespaces plus
# `assertions` and `warnings`; returns the failed assertions' messages (empty when clean).
# A type error or an unknown option under a real namespace aborts the evaluation with the
# option path in the message.
{ nixpkgsLib, sparse, host, realModules, realServices, extraModules ? [ ], extraOutput ? null }:
let
  lib = import (nixpkgsLib + "/lib");
  inherit (lib) mkOption types;
  fake = name: {
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
  };
  # Nix has no catch-all attribute, so the stub lists the packages the modules name.
  pkgs = lib.genAttrs [ "restic" "restic-rest-server" "rclone" "coreutils" "bash" "openssh"
    "samba" "wsdd" "nfs-utils" "iperf3" "tailscale" "wireguard-tools" "fail2ban" "prometheus"
    "prometheus-node-exporter" "zfs" "iproute2" "iptables" "nftables" "systemd" "util-linux"
    "gnugrep" "gnused" "procps" "kmod" "writeShellScript" "ethtool" "jq" "getent"
    "caddy" "blocky" "jellyfin" "jellyfin-web" "jellyfin-ffmpeg" "authelia" "k3s" "rke2"
    "grafana" "grafana-loki" "grafana-alloy" "prometheus-alertmanager" "envsubst" "logger" ] fake // {
    writeShellScript = name: _: fake name;
    writeShellScriptBin = name: _: fake name;
    writeScript = name: _: fake name;
    writeText = name: _: fake name;
    writeTextFile = a: fake (a.name or "file");
    runCommand = name: _: _: fake name;
    runCommandLocal = name: _: _: fake name;
    runCommandNoCCLocal = name: _: _: fake name;
    xorg.lndir = fake "lndir";
    formats = import (sparse + "/pkgs/pkgs-lib/formats.nix") { inherit lib pkgs; };
    stdenv = rec { hostPlatform = { system = "x86_64-linux"; isLinux = true; }; buildPlatform = hostPlatform; isLinux = true; };
    lib = lib;
    path = "/nix/store/fake-nixpkgs";
  };
  # The `utils` argument is not vendored (see the tree's README): the parts the modules use.
  utils = {
    systemdUtils.unitOptions.unitOption = types.oneOf [ types.bool types.int types.str types.path (types.listOf types.str) ];
    escapeSystemdPath = s: lib.replaceStrings [ "/" ] [ "-" ] (lib.removePrefix "/" s);
    escapeSystemdExecArgs = lib.concatMapStringsSep " " lib.escapeShellArg;
  };
  raw = import host;
  dummyArgs = { config = { }; inherit lib pkgs; options = { }; };
  hostAttrs = removeAttrs (raw dummyArgs) [ "imports" ];
  stubTop = lib.subtractLists [ "services" ] (builtins.attrNames hostAttrs);
  # Services the host sets plus those the real modules write (not vendored), minus the real.
  writtenByRealModules = [ "rpcbind" "logrotate" "udev" "dbus" "resolved" "avahi" "prometheus" "openssh" ];
  stubServices = lib.subtractLists realServices
    (lib.unique (builtins.attrNames (hostAttrs.services or { }) ++ writtenByRealModules));
  loose = mkOption { type = types.lazyAttrsOf types.anything; default = { }; };
  stubs = {
    options = lib.genAttrs stubTop (_: loose) // {
      services = lib.genAttrs stubServices (_: loose);
      age.secrets = mkOption {
        default = { };
        type = types.attrsOf (types.submodule ({ name, ... }: {
          freeformType = types.lazyAttrsOf types.anything;
          options.path = mkOption { type = types.str; default = "/run/agenix/${name}"; };
        }));
      };
      users = loose; systemd = loose; networking = loose; environment = loose;
      boot = loose; nix = loose; programs = loose; security = loose; fileSystems = loose;
      ids = loose; system = loose; hardware = loose; meta = loose;
    };
  };
  # Values of stubbed core options that the real modules read (NixOS's own defaults).
  coreValues = {
    networking.nftables.enable = false;
    networking.firewall.enable = true;
    boot.isContainer = false;
    systemd.package = fake "systemd";
    networking.firewall.package = fake "iptables";
    networking.enableIPv6 = true;
    environment.etc = { };
  };
  hostModule = lib.setFunctionArgs (args: removeAttrs (raw args) [ "imports" ]) (lib.functionArgs raw);
  eval = lib.evalModules {
    modules = [ stubs coreValues hostModule { _module.args = { inherit pkgs; inherit utils; }; } ]
      ++ map (p: sparse + "/${p}") realModules ++ extraModules;
  };
  cfg = eval.config;
  # Every DEFINED option under the real namespaces (defaults too would force removed
  # options, whose value is a throw), with its path in the trace on failure.
  definedValues = opts:
    if lib.isOption opts then lib.optional opts.isDefined opts.value
    else if builtins.isAttrs opts then lib.concatMap definedValues (builtins.attrValues opts)
    else [ ];
  forced = builtins.deepSeq (map (s: definedValues (eval.options.services.${s} or { })) realServices);
  failed = map (a: a.message) (lib.filter (a: !a.assertion) (cfg.assertions or [ ]));
in
forced (builtins.deepSeq cfg.warnings ({ inherit failed; warnings = cfg.warnings; }
  # A test may ask for more of the evaluated config (e.g. files as a module renders them).
  // lib.optionalAttrs (extraOutput != null) { extra = extraOutput { inherit lib cfg; }; }))
