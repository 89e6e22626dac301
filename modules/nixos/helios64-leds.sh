# Helios64 LED triggers (modules/nixos/helios64.nix runs it once at boot): heartbeat on
# the status LED and, where the device tree has one, network activity on the blue LED.
# Mainline names first, then the Armbian device tree's.
#   HEARTH_LED_NET_INTERFACE   interface the network LED follows (e.g. end0)
net_interface=${HEARTH_LED_NET_INTERFACE:-end0}
leds=${HEARTH_LED_SYSFS:-/sys}/class/leds

set_trigger() {
  local trigger=$1
  shift
  for led in "$@"; do
    if [ -w "$leds/$led/trigger" ]; then
      echo "$trigger" > "$leds/$led/trigger"
      echo "LED $led: $trigger"
      return 0
    fi
  done
  echo "no LED among: $*" >&2
}

set_trigger heartbeat "helios64:green:status" "helios64::status"
if [ -d "$leds/helios64:blue:net" ]; then
  net=$leds/helios64:blue:net
  echo netdev > "$net/trigger"
  echo "$net_interface" > "$net/device_name"
  echo 1 > "$net/link"
  echo 1 > "$net/rx"
  echo 1 > "$net/tx"
  echo "LED helios64:blue:net: netdev on $net_interface"
fi
