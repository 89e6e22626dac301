# services.prometheus.exporters, loosely typed: nixpkgs-sparse lacks the exporter files that
# prometheus/exporters.nix imports for every exporter, so that module can't be loaded here.
# With this stub, prometheus/default.nix and alertmanager.nix (which share the
# services.prometheus namespace) are checked for real; the exporters are not.
{ lib, ... }:
{
  options.services.prometheus.exporters = lib.mkOption {
    type = lib.types.lazyAttrsOf lib.types.anything;
    default = { };
  };
}
