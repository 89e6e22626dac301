# What generated/<host>/default.nix sets for modules/nixos/deploy-metrics.nix (with
# node-exporter) and modules/nixos/restic-restore-test.nix (on a backup target).
{
  imports = [ ../../modules/nixos ];
  hearth.deployMetrics.enable = true;
  hearth.resticRestoreTest = {
    enable = true;
    sets = [
      {
        client = "nixos";
        repository = "/srv/backup/nixos";
        path = "/home";
      }
    ];
    sample = 5;
    schedule = "weekly";
    scratch = "/var/cache/hearth-restore-test";
    passwordFile = "/run/agenix/restic-password";
  };
  services.prometheus.exporters.node.enable = true;
}
