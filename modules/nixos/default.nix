# hearth's hand-written NixOS modules. flake.nix imports this into every host; each
# module only acts when its `hearth.*.enable` is set (by generated/<host>/default.nix
# or by the host's hardware profile), so importing them all is harmless.
{
  imports = [
    ./helios64.nix
    ./zfs-health.nix
  ];
}
