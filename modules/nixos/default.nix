# hearth's hand-written NixOS modules. flake.nix imports this into every host; each
# module only acts when its `hearth.*.enable` is set (by generated/<host>/default.nix
# or by the host's hardware profile), so importing them all is harmless.
{
  imports = [
    ./deploy-metrics.nix
    ./helios64.nix
    ./restic-restore-test.nix
    ./zfs-health.nix
  ];
}
