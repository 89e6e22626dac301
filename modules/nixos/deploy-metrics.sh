# Deploy outcome as node-exporter textfile metrics (modules/nixos/deploy-metrics.nix runs it
# whenever hearth's deploy supervisor finishes an attempt, and at boot).
# Reads what the supervisor (src/deploy/supervisor.rs) leaves in its state directory:
#   $HEARTH_DEPLOY_STATE_DIR/last                      token of the last finished attempt
#   $HEARTH_DEPLOY_STATE_DIR/attempt-<token>/status    `state=<final state>` and `time=<epoch>`
# and writes $HEARTH_DEPLOY_TEXTFILE_DIR/hearth-deploy.prom. tests/deploy_metrics.rs runs it.
state_dir=${HEARTH_DEPLOY_STATE_DIR:-/nix/var/hearth}
textfile_dir=${HEARTH_DEPLOY_TEXTFILE_DIR:-}
[ -n "$textfile_dir" ] || exit 0

token=
if [ -f "$state_dir/last" ]; then
  read -r token < "$state_dir/last" || true
fi
state=none
when=0
# A token is 32 hex digits; anything else is not a path component to follow.
if [[ "$token" =~ ^[0-9a-f]+$ ]] && [ -f "$state_dir/attempt-$token/status" ]; then
  while IFS='=' read -r key value; do
    case "$key" in
      state) [[ "$value" =~ ^[a-z-]+$ ]] && state=$value ;;
      time) [[ "$value" =~ ^[0-9]+$ ]] && when=$value ;;
    esac
  done < "$state_dir/attempt-$token/status"
fi
rolled_back=0
case "$state" in
  rolled-back | rollback-failed) rolled_back=1 ;;
esac

tmp=$(mktemp "$textfile_dir/.hearth-deploy.XXXXXX")
{
  echo "# HELP hearth_deploy_rolled_back 1 when the last deploy to this host was rolled back (or its rollback failed)."
  echo "# TYPE hearth_deploy_rolled_back gauge"
  echo "hearth_deploy_rolled_back $rolled_back"
  echo "# HELP hearth_deploy_last_state Final state of the last deploy attempt (the label), always 1."
  echo "# TYPE hearth_deploy_last_state gauge"
  echo "hearth_deploy_last_state{state=\"$state\"} 1"
  echo "# HELP hearth_deploy_last_timestamp_seconds When the last deploy attempt finished."
  echo "# TYPE hearth_deploy_last_timestamp_seconds gauge"
  echo "hearth_deploy_last_timestamp_seconds $when"
} > "$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$textfile_dir/hearth-deploy.prom"
