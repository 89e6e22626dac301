# generated/nixos/default.nix's view of the hand-written modules on the Ryzen builder:
# the generic-x86_64 profile plus the host's escape-hatch module; no ZFS.
{
  imports = [
    ../../modules/nixos
    ../../modules/nixos/generic-x86_64.nix
    ../../modules/nixos/ryzen.nix
  ];
  services.prometheus.exporters.node.enable = true;
}
