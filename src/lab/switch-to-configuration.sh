# switch-to-configuration for a hearth lab host. The toplevel's builder prepends
# HOST_NAME, FAULT, PAYLOAD_PORT and TOPLEVEL. Mirrors NixOS: `switch`/`test` make this
# system current and (re)start its services, `boot` only records the boot entry. On a
# host booted with systemd (`hearth lab up --systemd`) the services are the toplevel's
# units: linked into /etc/systemd/system, daemon-reload, changed ones restarted, and exit
# 4 when a unit fails to start, as NixOS's switch-to-configuration does.
# Internal actions: `link-units` (stage 2 of a systemd boot), `run-payload` (the unit's
# ExecStart).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
STATE=/nix/var/lab
action="${1:-}"
case "$action" in
  switch|boot|test|dry-activate|link-units|run-payload) ;;
  *) echo "usage: switch-to-configuration switch|boot|test|dry-activate" >&2; exit 1 ;;
esac
mkdir -p "$STATE"
SSHD_CONFIG=""
SSHD_PIDFILE=""
# Written by `hearth lab up`: where this host's sshd keeps its config and pid.
if [ -f "$STATE/env" ]; then . "$STATE/env"; fi

PAYLOAD_PL='
use IO::Socket::INET;
my ($port, $host, $top, $pidfile) = @ARGV;
my $s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => $port, Proto => "tcp",
  Listen => 64, ReuseAddr => 1) or die "payload: cannot listen on port $port: $!\n";
open(my $f, ">", $pidfile) or die "payload: $pidfile: $!\n"; print $f "$$\n"; close $f;
$SIG{PIPE} = "IGNORE";
while (1) {
  my $c = $s->accept or next;
  eval { local $SIG{ALRM} = sub { die "timeout\n" }; alarm 2;
         while (my $l = <$c>) { last if $l =~ /^\r?\n$/ } alarm 0; };
  print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhearth lab $host running $top\n";
  close $c;
}'

# Link this toplevel's units into /etc/systemd/system as NixOS links /etc/static. Prints
# "changed <unit>" for each unit whose file differs and "removed <unit>" for each unit the
# previous system had and this one has not.
link_units() {
  E=/etc/systemd/system
  mkdir -p "$E/hearth-lab.target.wants"
  for f in "$TOPLEVEL"/etc/systemd/system/*; do
    [ -f "$f" ] || continue
    u=${f##*/}
    if [ "$(readlink "$E/$u" 2>/dev/null)" != "$f" ]; then
      cmp -s "$E/$u" "$f" 2>/dev/null || echo "changed $u"
      ln -sfn "$f" "$E/$u"
    fi
    ln -sfn "../$u" "$E/hearth-lab.target.wants/$u"
  done
  for l in "$E"/*; do
    [ -L "$l" ] || continue
    case "$(readlink "$l")" in /nix/store/*) ;; *) continue ;; esac
    u=${l##*/}
    if [ ! -f "$TOPLEVEL/etc/systemd/system/$u" ]; then
      echo "removed $u"
      rm -f "$l" "$E/hearth-lab.target.wants/$u"
    fi
  done
}
case "$action" in
  link-units) link_units; exit 0 ;;
  run-payload) exec perl -e "$PAYLOAD_PL" "$PAYLOAD_PORT" "$HOST_NAME" "$TOPLEVEL" "$STATE/payload.pid" ;;
esac

log() {
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $action $TOPLEVEL $*" >> "$STATE/activation.log"
}

if [ "$action" = dry-activate ]; then
  echo "would activate $TOPLEVEL on $HOST_NAME (fault: $FAULT), payload service on port $PAYLOAD_PORT"
  log "dry-activate"
  exit 0
fi

log "start"
case "$FAULT" in
  activation-fails)
    log "failed (fault: activation-fails)"
    echo "error: activation of $TOPLEVEL failed (lab fault: activation-fails)" >&2
    exit 1 ;;
  activation-hangs)
    log "hanging (fault: activation-hangs)"
    while :; do sleep 1; done ;;
esac

if [ "$action" = boot ]; then
  ln -sfn "$TOPLEVEL" "$STATE/boot-system"
  log "ok"
  exit 0
fi

ln -sfn "$TOPLEVEL" "$STATE/current-system"
if [ "$action" = switch ]; then ln -sfn "$TOPLEVEL" "$STATE/boot-system"; fi

payload_wait() {
  n=0
  until perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ARGV[0]", Timeout => 1) ? 0 : 1)' "$PAYLOAD_PORT"; do
    n=$((n + 1))
    if [ $n -ge 50 ]; then
      log "payload service did not start on port $PAYLOAD_PORT"
      echo "error: payload service did not start on port $PAYLOAD_PORT" >&2
      return 4
    fi
    sleep 0.1
  done
}

# Networking: the link is up, unless this configuration's fault takes it down (for good,
# or for 10 s: the link comes back by itself, as after a switch's reboot or a flapping
# port). The flap's timer runs outside the activation: on a systemd host as a unit of its
# own, since the supervisor's unit ends with its processes.
network() {
  case "$FAULT" in
    link-down)
      log "taking $HOST_NAME's link down (fault: link-down)"
      ip link set eth0 down ;;
    link-flap)
      log "taking $HOST_NAME's link down for 10s (fault: link-flap)"
      ip link set eth0 down
      if [ -d /run/systemd/system ]; then
        systemd-run --unit="lab-link-flap-$$" --collect --quiet /bin/sh -c 'sleep 10; ip link set eth0 up'
      else
        setsid sh -c 'sleep 10; ip link set eth0 up' </dev/null >/dev/null 2>&1 &
      fi ;;
    *) ip link set eth0 up ;;
  esac
}

# The units half of NixOS's switch-to-configuration, for a host whose PID 1 is systemd.
activate_systemd() {
  network
  changes=$(link_units)
  systemctl daemon-reload
  failed=""
  for u in $(echo "$changes" | sed -n 's/^removed //p'); do
    systemctl stop "$u" || true
  done
  for u in $(echo "$changes" | sed -n 's/^changed //p'); do
    log "restarting $u"
    systemctl restart "$u" || failed="$failed $u"
  done
  if [ "$FAULT" = kill-sshd ]; then
    log "stopping sshd (fault: kill-sshd)"
    systemctl stop lab-sshd.service
  elif ! systemctl is-active --quiet lab-sshd.service; then
    systemctl start lab-sshd.service || failed="$failed lab-sshd.service"
  fi
  if [ "$FAULT" = payload-down ]; then
    log "payload service failed to start (fault: payload-down)"
  elif ! payload_wait; then
    failed="$failed lab-payload.service"
  fi
  if [ -n "$failed" ]; then
    log "failed units:$failed"
    echo "warning: the following units failed:$failed" >&2
    exit 4
  fi
  log "ok"
  exit 0
}

if [ -d /run/systemd/system ]; then
  ln -sfn "$TOPLEVEL" /run/current-system
  activate_systemd
  exit $?
fi

network

# A process that exited but is not reaped yet (a zombie) still passes `kill -0`; the
# namespace's init may reap it seconds later, and it no longer holds its port.
running() {
  kill -0 "$1" 2>/dev/null || return 1
  case $(sed -n 's/^State:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null) in
    Z*|X*|"") return 1 ;;
  esac
}

# sshd: running, unless this configuration's fault kills it (open sessions survive).
sshd_pid() {
  [ -n "$SSHD_PIDFILE" ] && [ -s "$SSHD_PIDFILE" ] || return 1
  p=$(cat "$SSHD_PIDFILE") && running "$p" && echo "$p"
}
if [ "$FAULT" = kill-sshd ]; then
  log "killing sshd (fault: kill-sshd)"
  if p=$(sshd_pid); then kill "$p"; fi
elif ! sshd_pid >/dev/null && [ -n "$SSHD_CONFIG" ]; then
  /usr/sbin/sshd -f "$SSHD_CONFIG" </dev/null >/dev/null 2>&1 || log "sshd failed to start"
fi

# The payload service: a tiny HTTP server on PAYLOAD_PORT naming this system.
PIDFILE="$STATE/payload.pid"
if [ -s "$PIDFILE" ] && p=$(cat "$PIDFILE") && running "$p"; then
  kill "$p"
  n=0
  while running "$p" && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
fi
rm -f "$PIDFILE"
if [ "$FAULT" = payload-down ]; then
  log "payload service failed to start (fault: payload-down)"
  log "ok"
  exit 0
fi
setsid perl -e "$PAYLOAD_PL" "$PAYLOAD_PORT" "$HOST_NAME" "$TOPLEVEL" "$PIDFILE" \
  </dev/null >>"$STATE/payload.log" 2>&1 &
payload_wait || exit 4
log "ok"
exit 0
