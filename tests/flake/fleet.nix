# A fleet index as `hearth gen` writes it (docs/ARCHITECTURE.md), with one host of each
# hardware profile. tests/flake_eval.rs puts it at generated/fleet.nix in a scratch copy.
{
  hosts = {
    helios64 = {
      system = "aarch64-linux";
      hardware = "helios64";
      module = ./helios64/default.nix;
      disko = ./helios64/disko.nix;
      tags = [ "nas" ];
      roles = [ "backup-target" ];
      ssh = {
        address = "192.168.1.20";
        port = 22;
        user = "root";
      };
      lab = null;
    };
    nixos = {
      system = "x86_64-linux";
      hardware = "generic-x86_64";
      module = ./nixos/default.nix;
      disko = null;
      tags = [ ];
      roles = [
        "builder"
        "monitoring"
      ];
      ssh = {
        address = "192.168.1.10";
        port = 22;
        user = "root";
      };
      lab = null;
    };
    t1 = {
      system = "x86_64-linux";
      hardware = "lab";
      module = ./t1/default.nix;
      disko = null;
      tags = [ "lab" ];
      roles = [ ];
      ssh = {
        address = "10.77.0.11";
        port = 22;
        user = "root";
      };
      lab = {
        fault = "none";
        payloadMib = 0;
        payloadPaths = 1;
        payloadPort = 8080;
        revision = 0;
      };
    };
  };
}
