# The files the real NixOS modules write for Prometheus and Alertmanager, computed from the
# evaluated options (harness.nix `extraOutput`) with the modules' own expressions:
# - prometheus.yml: `promConfig` of nixos/modules/services/monitoring/prometheus/default.nix,
#   with its `filterValidPrometheus` (copied below; nixpkgs, MIT), and the one generated rule
#   file named `rules.yml` instead of a store path;
# - prometheus.rules: `concatStringsSep "\n" cfg.rules`, as that module writes it;
# - alertmanager.yml: `builtins.toJSON cfg.configuration`, as alertmanager.nix writes it.
# tests/obs_validators.rs feeds them to promtool and amtool.
{ lib, cfg }:
let
  inherit (lib) isAttrs isList listToAttrs concatMap nameValuePair attrNames;
  p = cfg.services.prometheus;
  filterValidPrometheus = filterAttrsListRecursive (n: v: !(n == "_module" || v == null));
  filterAttrsListRecursive =
    pred: x:
    if isAttrs x then
      listToAttrs (
        concatMap (
          name:
          let
            v = x.${name};
          in
          if pred name v then [ (nameValuePair name (filterAttrsListRecursive pred v)) ] else [ ]
        ) (attrNames x)
      )
    else if isList x then
      map (filterAttrsListRecursive pred) x
    else
      x;
  promConfig = {
    global = filterValidPrometheus p.globalConfig;
    scrape_configs = filterValidPrometheus p.scrapeConfigs;
    remote_write = filterValidPrometheus p.remoteWrite;
    remote_read = filterValidPrometheus p.remoteRead;
    rule_files = [ "rules.yml" ];
    alerting = {
      inherit (p) alertmanagers;
    };
  };
in
{
  prometheusYml = builtins.toJSON promConfig;
  rules = lib.concatStringsSep "\n" p.rules;
  alertmanagerYml =
    if p.alertmanager.enable then builtins.toJSON p.alertmanager.configuration else null;
}
