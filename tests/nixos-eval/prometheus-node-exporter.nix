# services.prometheus.exporters with the REAL node exporter (exporters/node.nix) only.
# prometheus/exporters.nix can't be loaded from nixpkgs-sparse: it imports the file of every
# exporter it knows, and only node.nix is vendored. This shim rebuilds what exporters.nix
# does for one exporter: a submodule whose options are the options every exporter gets
# (`mkExporterOpts` there: same names, types and defaults) plus node.nix's `extraOpts`, and
# the firewallFilter assertion. node.nix's `serviceOpts` (the systemd unit) is not used.
# Other exporters are not declared, so hearth emitting one fails here (they are stubs in
# NixOS terms anyway: see docs/FLAKE.md).
{ config, lib, pkgs, options, utils, sparse, ... }:
let
  inherit (lib) mkOption types;
  node = import (sparse + "/nixos/modules/services/monitoring/prometheus/exporters/node.nix") {
    inherit config lib pkgs options utils;
  };
  # exporters.nix `mkExporterOpts { name; port; }`
  common = name: port: {
    enable = lib.mkEnableOption "the prometheus ${name} exporter";
    port = mkOption { type = types.port; default = port; };
    listenAddress = mkOption { type = types.str; default = "0.0.0.0"; };
    extraFlags = mkOption { type = types.listOf types.str; default = [ ]; };
    openFirewall = mkOption { type = types.bool; default = false; };
    firewallFilter = mkOption { type = types.nullOr types.str; default = null; };
    firewallRules = mkOption { type = types.nullOr types.lines; default = null; };
    user = mkOption { type = types.str; default = "${name}-exporter"; };
    group = mkOption { type = types.str; default = "${name}-exporter"; };
  };
  cfg = config.services.prometheus.exporters.node;
in
{
  options.services.prometheus.exporters = mkOption {
    default = { };
    type = types.submodule {
      options.node = mkOption {
        default = { };
        type = types.submodule { options = common "node" node.port // node.extraOpts; };
      };
    };
  };
  # exporters.nix asserts this for every exporter.
  config.assertions = [{
    assertion = cfg.firewallFilter != null -> cfg.openFirewall;
    message = ''
      The `firewallFilter'-option of exporter node doesn't have any effect unless
      `openFirewall' is set to `true'!
    '';
  }];
}
