# networking.wireguard.useNetworkd, which wireguard.nix reads: it is declared by
# wireguard-networkd.nix, which nixpkgs-sparse lacks. NixOS's default (the script backend).
{ lib, ... }:
{
  options.networking.wireguard.useNetworkd = lib.mkOption {
    type = lib.types.bool;
    default = false;
  };
}
