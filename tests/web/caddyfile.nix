# The Caddyfile the real NixOS caddy module (vendored nixpkgs-sparse) writes for a generated
# host module: the module's own text assembly (global options, vhost blocks with their
# `log` and `extraConfig`), with `pkgs.writeTextDir` stubbed to hand the text back instead
# of writing a store path. `buildPlatform != hostPlatform` picks the unformatted file, so no
# `caddy fmt` derivation is needed. `logDir` points the access logs somewhere writable.
{ nixpkgsLib, sparse, host, logDir }:
let
  lib = import (nixpkgsLib + "/lib");
  inherit (lib) mkOption types;
  loose = mkOption { type = types.lazyAttrsOf types.anything; default = { }; };
  fake = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };
  pkgs = {
    caddy = fake "caddy";
    formats = import (sparse + "/pkgs/pkgs-lib/formats.nix") { inherit lib pkgs; };
    writeTextDir = _: text: { outPath = "/CADDYFILE-BEGIN\n${text}\nCADDYFILE-END"; };
    writeText = name: _: fake name;
    runCommand = name: _: _: fake name;
    stdenv = { buildPlatform = "build"; hostPlatform = "host"; };
  };
  raw = import host;
  # Only the host's caddy settings; everything else it sets is irrelevant here.
  caddyOnly = lib.setFunctionArgs
    (args: { services.caddy = (raw args).services.caddy // { inherit logDir; }; })
    (lib.functionArgs raw);
  stubs = {
    options = {
      assertions = mkOption { type = types.listOf types.anything; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      age = loose; boot = loose; systemd = loose; users = loose; environment = loose;
      networking = loose; security = loose; meta = loose;
    };
  };
  eval = lib.evalModules {
    modules = [
      stubs
      caddyOnly
      (sparse + "/nixos/modules/services/web-servers/caddy/default.nix")
      { _module.args = { inherit pkgs; }; }
    ];
  };
in
eval.config.services.caddy.configFile
