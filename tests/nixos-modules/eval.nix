# Evaluate modules/nixos/*.nix with nixpkgs.lib alone (no nixpkgs, no Nix 2.18 needed).
# The NixOS options the modules may set are declared below with their real types: this
# list IS the manifest in modules/nixos/README.md, so setting anything else fails with
# "The option ... does not exist". Packages are stand-ins. Used by tests/nixos_modules.rs:
#
#   nix-instantiate --eval --strict --json tests/nixos-modules/eval.nix \
#     --arg nixpkgsLib /work/ext/nixpkgs.lib --arg host ./tests/nixos-modules/helios64-host.nix
{
  nixpkgsLib,
  host,
}:
let
  lib = import (nixpkgsLib + "/lib");
  t = lib.types;

  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };
  pkgs = {
    writeShellApplication =
      {
        name,
        text,
        runtimeInputs ? [ ],
      }:
      fakePackage name // { inherit text runtimeInputs; };
    coreutils = fakePackage "coreutils";
    gawk = fakePackage "gawk";
    restic = fakePackage "restic";
    jq = fakePackage "jq";
    gnused = fakePackage "gnused";
    lm_sensors = fakePackage "lm_sensors";
    i2c-tools = fakePackage "i2c-tools";
  };

  opt = type: default: lib.mkOption { inherit type default; };
  bool = opt t.bool false;
  strList = opt (t.listOf t.str) [ ];

  # systemd unit options, the subset nixos/lib/systemd-unit-options.nix declares that we use.
  unitOption = t.oneOf [
    t.str
    t.int
    t.bool
    (t.listOf t.str)
  ];
  unit = t.submodule {
    options = {
      enable = opt t.bool true;
      description = opt t.str "";
      after = strList;
      wants = strList;
      wantedBy = strList;
      environment = opt (t.attrsOf t.str) { };
      unitConfig = opt (t.attrsOf unitOption) { };
      serviceConfig = opt (t.attrsOf unitOption) { };
      timerConfig = opt (t.attrsOf unitOption) { };
      pathConfig = opt (t.attrsOf unitOption) { };
      startLimitIntervalSec = lib.mkOption { type = t.int; };
    };
  };

  nixosSlice = {
    options = {
      assertions = opt (t.listOf t.attrs) [ ];
      boot.loader.grub.enable = opt t.bool true;
      boot.loader.generic-extlinux-compatible.enable = bool;
      boot.loader.efi.canTouchEfiVariables = bool;
      boot.initrd.availableKernelModules = strList;
      boot.kernelModules = strList;
      boot.kernelParams = strList;
      boot.supportedFilesystems = opt (t.attrsOf t.bool) { };
      boot.zfs.package = opt t.attrs (fakePackage "zfs");
      hardware.deviceTree.enable = bool;
      hardware.deviceTree.name = opt (t.nullOr t.str) null;
      hardware.deviceTree.filter = opt (t.nullOr t.str) null;
      hardware.deviceTree.overlays = opt (t.listOf (
        t.submodule {
          options = {
            name = lib.mkOption { type = t.str; };
            dtsFile = opt (t.nullOr t.path) null;
          };
        }
      )) [ ];
      hardware.fancontrol.enable = bool;
      hardware.fancontrol.config = opt t.lines "";
      hardware.enableRedistributableFirmware = bool;
      hardware.cpu.amd.updateMicrocode = bool;
      hardware.cpu.intel.updateMicrocode = bool;
      zramSwap.enable = bool;
      environment.systemPackages = opt (t.listOf t.attrs) [ ];
      services.udev.extraRules = opt t.lines "";
      services.fwupd.enable = bool;
      services.fstrim.enable = bool;
      services.prometheus.exporters.node.enable = bool;
      services.prometheus.exporters.node.extraFlags = strList;
      systemd.package = opt t.attrs (fakePackage "systemd");
      systemd.services = opt (t.attrsOf unit) { };
      systemd.timers = opt (t.attrsOf unit) { };
      systemd.paths = opt (t.attrsOf unit) { };
      systemd.tmpfiles.rules = strList;
      nix.settings = opt (t.attrsOf t.anything) { };
    };
  };

  eval = lib.evalModules {
    modules = [
      nixosSlice
      { _module.args.pkgs = pkgs; }
      host
    ];
  };
  c = eval.config;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  boot = {
    inherit (c.boot) kernelParams kernelModules supportedFilesystems;
    initrdModules = c.boot.initrd.availableKernelModules;
    grub = c.boot.loader.grub.enable;
    extlinux = c.boot.loader.generic-extlinux-compatible.enable;
    efiVariables = c.boot.loader.efi.canTouchEfiVariables;
  };
  deviceTree = {
    inherit (c.hardware.deviceTree) enable name filter;
    overlays = map (o: {
      inherit (o) name;
      dtsFile = baseNameOf (toString o.dtsFile);
    }) c.hardware.deviceTree.overlays;
  };
  fancontrol = {
    inherit (c.hardware.fancontrol) enable config;
  };
  microcode = {
    amd = c.hardware.cpu.amd.updateMicrocode;
    intel = c.hardware.cpu.intel.updateMicrocode;
  };
  udevRules = c.services.udev.extraRules;
  nodeExporterFlags = c.services.prometheus.exporters.node.extraFlags;
  services = lib.mapAttrs (_: s: {
    inherit (s) wantedBy environment;
    serviceConfig = s.serviceConfig;
  }) c.systemd.services;
  timers = lib.mapAttrs (_: s: {
    inherit (s) wantedBy timerConfig;
  }) c.systemd.timers;
  paths = lib.mapAttrs (_: s: {
    inherit (s) wantedBy pathConfig;
  }) c.systemd.paths;
  tmpfiles = c.systemd.tmpfiles.rules;
  zfsHealth = {
    inherit (c.hearth.zfsHealth) pools faultLed;
    textfileDirectory = toString c.hearth.zfsHealth.textfileDirectory;
  };
  zram = c.zramSwap.enable;
  fstrim = c.services.fstrim.enable;
}
