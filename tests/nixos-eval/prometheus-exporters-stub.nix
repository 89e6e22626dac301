# services.prometheus.exporters, loosely typed: nixpkgs-sparse lacks the exporter files that
# prometheus/exporters.nix imports for every exporter, so that module can't be loaded here.
# With this stub, prometheus/default.nix and alertmanager.nix (which share the
# services.prometheus namespace) are checked for real; the exporters are not. Used by the
# monitoring validators (tests/obs_support); tests/nixos_eval.rs checks the node exporter
# for real with prometheus-node-exporter.nix instead.
{ lib, ... }:
{
  options.services.prometheus.exporters = lib.mkOption {
    type = lib.types.lazyAttrsOf lib.types.anything;
    default = { };
  };
}
