# Type-check a disko layout with real disko and nixpkgs.lib (no full nixpkgs needed) and
# report what NixOS would get from it. Used by tests/disko_eval.rs; by hand:
#
#   nix-instantiate --eval --strict --json tests/disko/eval.nix \
#     --arg disko /work/ext/disko --arg nixpkgsLib /work/ext/nixpkgs.lib \
#     --arg layout ./tests/disko/helios64.nix
{
  disko,
  nixpkgsLib,
  layout,
}:
let
  lib = import (nixpkgsLib + "/lib");
  diskoLib = import (disko + "/lib") { inherit lib; };

  # The slice of NixOS options disko's module sets, declared as NixOS declares them,
  # so disko's mkMerge'd output resolves exactly as on a real host.
  nixosSlice =
    { config, ... }:
    {
      options.fileSystems = lib.mkOption {
        type = lib.types.attrsOf (
          lib.types.submodule {
            options = {
              device = lib.mkOption { type = lib.types.str; };
              fsType = lib.mkOption { type = lib.types.str; };
              options = lib.mkOption {
                type = lib.types.listOf lib.types.str;
                default = [ "defaults" ];
              };
            };
          }
        );
        default = { };
      };
      options.swapDevices = lib.mkOption {
        type = lib.types.listOf (lib.types.attrsOf lib.types.anything);
        default = [ ];
      };
      options.boot = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = { };
      };
      config = {
        fileSystems = config.disko.devices._config.fileSystems or { };
        swapDevices = config.disko.devices._config.swapDevices or [ ];
        boot = config.disko.devices._config.boot or { };
      };
    };

  eval = lib.evalModules {
    modules = [
      { options.disko.devices = lib.mkOption { type = diskoLib.toplevel; }; }
      nixosSlice
      layout
    ];
  };
  devices = eval.config.disko.devices;
in
{
  inherit (eval.config) fileSystems;
  swapDevices = map (swap: swap.device) eval.config.swapDevices;
  disks = lib.mapAttrs (_: disk: disk.device) devices.disk;
  zpools = lib.mapAttrs (_: pool: {
    inherit (pool) mode options rootFsOptions;
    datasets = lib.mapAttrs (_: ds: ds.options) pool.datasets;
  }) devices.zpool;
  # Forcing the format script surfaces errors in partition and dataset contents.
  createScriptBytes = builtins.stringLength devices._create;
}
