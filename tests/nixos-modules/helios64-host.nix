# The options generated/helios64/default.nix sets for the hand-written modules
# (docs/CATALOG.md), plus what its services turn on, on a Helios64.
{
  imports = [
    ../../modules/nixos
    ../../modules/nixos/helios64.nix
    ../../modules/nixos/zfs-health.nix
  ];
  hearth.helios64.enable = true;
  hearth.zfsHealth = {
    enable = true;
    pools = [ "tank" ];
    interval = "*:0/30";
  };
  boot.supportedFilesystems.zfs = true;
  services.prometheus.exporters.node.enable = true;
}
