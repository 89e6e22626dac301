# Misconfiguration: the health check on a host without ZFS support must be refused.
{
  imports = [ ../../modules/nixos/zfs-health.nix ];
  hearth.zfsHealth.enable = true;
}
