# Helios64 UPS check (modules/nixos/helios64.nix runs it every 30 s and on every udev
# mains change). Arms the shutdown timer while on battery, disarms it when mains returns,
# and powers off at once when the battery is nearly empty. Polling as well as udev,
# because an event can be missed (e.g. during boot or a switch).
# Settings from the environment:
#   HEARTH_UPS_SHUTDOWN_AFTER   how long the timer waits (for the log line), e.g. 10min
#   HEARTH_UPS_CRITICAL_MV      battery ADC reading (mV at the pin) that forces poweroff
#   HEARTH_UPS_SYSFS            sysfs root, /sys unless testing (tests/helios64_ups.rs)
sysfs=${HEARTH_UPS_SYSFS:-/sys}
shutdown_after=${HEARTH_UPS_SHUTDOWN_AFTER:-10min}
critical_mv=${HEARTH_UPS_CRITICAL_MV:-916}
timer=hearth-helios64-ups-shutdown.timer

mains=""
for supply in "$sysfs"/class/power_supply/*; do
  [ -r "$supply/type" ] || continue
  if [ "$(cat "$supply/type")" = Mains ]; then
    mains=$supply
    break
  fi
done
if [ -z "$mains" ]; then
  echo "no Mains power supply in $sysfs/class/power_supply: this device tree does not" \
    "describe the UPS charger, so power loss cannot be detected (docs/HELIOS64.md)"
  exit 0
fi

if [ "$(cat "$mains/online")" = 1 ]; then
  if systemctl is-active --quiet "$timer"; then
    echo "mains power is back; shutdown cancelled"
    systemctl stop "$timer"
  fi
  exit 0
fi

if ! systemctl is-active --quiet "$timer"; then
  echo "<4>on battery: powering off in $shutdown_after unless mains returns"
  systemctl start "$timer"
fi

adc="$sysfs/bus/iio/devices/iio:device0"
if [ -r "$adc/in_voltage2_raw" ] && [ -r "$adc/in_voltage_scale" ]; then
  raw=$(cat "$adc/in_voltage2_raw")
  scale=$(cat "$adc/in_voltage_scale")
  # millivolts at the ADC pin = raw * scale (scale is a decimal, e.g. 1.757812500)
  millivolts=$(awk -v r="$raw" -v s="$scale" 'BEGIN { printf "%d", r * s }')
  if [ "$millivolts" -le "$critical_mv" ]; then
    echo "<2>battery critical (ADC $millivolts mV <= $critical_mv mV): powering off now"
    systemctl poweroff
  fi
fi
