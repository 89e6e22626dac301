# Deploy outcomes as node-exporter metrics: a path unit watches the file hearth's deploy
# supervisor rewrites after every attempt (/nix/var/hearth/last) and a oneshot turns the
# attempt's final state into `hearth_deploy_rolled_back` (the "deploy rolled back" alert).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.hearth.deployMetrics;

  report = pkgs.writeShellApplication {
    name = "hearth-deploy-metrics";
    runtimeInputs = [ pkgs.coreutils ];
    text = builtins.readFile ./deploy-metrics.sh;
  };
in
{
  options.hearth.deployMetrics = {
    enable = lib.mkEnableOption "node-exporter metrics of the last hearth deploy (rolled back or not)";

    stateDirectory = lib.mkOption {
      type = lib.types.str;
      default = "/nix/var/hearth";
      description = "The deploy supervisor's state directory (`supervisor::STATE_DIR`).";
    };

    textfileDirectory = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/hearth/node-exporter";
      description = "node-exporter textfile directory to write `hearth-deploy.prom` into.";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.hearth-deploy-metrics = {
      description = "Report the outcome of the last hearth deploy";
      wantedBy = [ "multi-user.target" ];
      environment = {
        HEARTH_DEPLOY_STATE_DIR = cfg.stateDirectory;
        HEARTH_DEPLOY_TEXTFILE_DIR = cfg.textfileDirectory;
      };
      serviceConfig = {
        Type = "oneshot";
        ExecStart = lib.getExe report;
      };
    };

    systemd.paths.hearth-deploy-metrics = {
      description = "Watch for finished hearth deploys";
      wantedBy = [ "paths.target" ];
      pathConfig.PathChanged = "${cfg.stateDirectory}/last";
    };
  };
}
