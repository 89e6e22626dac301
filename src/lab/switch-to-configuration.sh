# switch-to-configuration for a hearth lab host (no systemd). The toplevel's builder
# prepends HOST_NAME, FAULT, PAYLOAD_PORT and TOPLEVEL. Mirrors NixOS: `switch`/`test`
# make this system current and (re)start its services, `boot` only records the boot entry.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
STATE=/nix/var/lab
action="${1:-}"
case "$action" in
  switch|boot|test|dry-activate) ;;
  *) echo "usage: switch-to-configuration switch|boot|test|dry-activate" >&2; exit 1 ;;
esac
mkdir -p "$STATE"
SSHD_CONFIG=""
SSHD_PIDFILE=""
# Written by `hearth lab up`: where this host's sshd keeps its config and pid.
if [ -f "$STATE/env" ]; then . "$STATE/env"; fi

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

# Networking: the link is up, unless this configuration's fault takes it down.
if [ "$FAULT" = link-down ]; then
  log "taking $HOST_NAME's link down (fault: link-down)"
  ip link set eth0 down
else
  ip link set eth0 up
fi

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
setsid perl -e "$PAYLOAD_PL" "$PAYLOAD_PORT" "$HOST_NAME" "$TOPLEVEL" "$PIDFILE" \
  </dev/null >>"$STATE/payload.log" 2>&1 &
n=0
until perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ARGV[0]", Timeout => 1) ? 0 : 1)' "$PAYLOAD_PORT"; do
  n=$((n + 1))
  if [ $n -ge 50 ]; then
    log "payload service did not start on port $PAYLOAD_PORT"
    echo "error: payload service did not start on port $PAYLOAD_PORT" >&2
    exit 4
  fi
  sleep 0.1
done
log "ok"
exit 0
