/**
 * The discovery probe: a POSIX sh script that `discover` feeds to `sh -s`
 * on each node, so nothing has to be installed there. It reads sysfs and
 * /dev only (no lsusb, no udevadm) and prints one record per line:
 *
 * ```
 * <kind> TAB <id> TAB <key> TAB <value>
 * ```
 *
 * kinds: `probe` (version, hostname, kernel), `usb` (id: port path such as
 * `1-1.2`), `serial` (id: `/dev/serial/by-id/...` link), `tty` (id: tty
 * name with a USB parent), `power` (id: power-supply name).
 *
 * Every path starts with `$FIWI_SYSROOT` (empty on a real node), so tests
 * run the same script against a fixture tree.
 *
 * @module
 */

/** Version of the record format; the parser checks it. */
export const PROBE_VERSION = "1";

/** The probe script. */
export const PROBE_SCRIPT = `# fiwi discover probe (POSIX sh, read-only)
R=\${FIWI_SYSROOT:-}
emit() { printf '%s\\t%s\\t%s\\t%s\\n' "$1" "$2" "$3" "$4"; }
# first line of a file into $v (no subshell: the probe reads hundreds)
rd() { v=; [ -r "$1" ] || return 1; IFS= read -r v < "$1" 2>/dev/null || [ -n "$v" ]; }
# resolved directory, symlinks followed
phys() { (cd -P "$1" 2>/dev/null && pwd -P); }
# the USB port path (e.g. 1-1.2) of the USB device above a sysfs directory
usbport() {
  d=$(phys "$1") || return 1
  while [ -n "$d" ] && [ "$d" != "/" ]; do
    if [ -f "$d/idVendor" ]; then printf '%s' "\${d##*/}"; return 0; fi
    d=\${d%/*}
  done
  return 1
}

emit probe - version ${PROBE_VERSION}
if rd /proc/sys/kernel/hostname; then h=$v; else h=$(uname -n 2>/dev/null); fi
emit probe - hostname "$h"
emit probe - kernel "$(uname -sr 2>/dev/null)"

for d in "$R"/sys/bus/usb/devices/*; do
  [ -e "$d/idVendor" ] || continue
  p=\${d##*/}
  case $p in *:*) continue ;; esac
  for k in idVendor idProduct manufacturer product serial busnum devnum speed bDeviceClass; do
    if rd "$d/$k"; then emit usb "$p" "$k" "$v"; fi
  done
done

for l in "$R"/dev/serial/by-id/*; do
  [ -L "$l" ] || continue
  t=$(readlink "$l" 2>/dev/null) || t=$(ls -l "$l" | sed 's/.* -> //')
  emit serial "\${l#"$R"}" target "\${t##*/}"
done

for t in "$R"/sys/class/tty/ttyUSB* "$R"/sys/class/tty/ttyACM*; do
  [ -e "$t" ] || continue
  n=\${t##*/}
  if u=$(usbport "$t/device"); then emit tty "$n" usbport "$u"; fi
done

for s in "$R"/sys/class/power_supply/*; do
  [ -e "$s/type" ] || continue
  n=\${s##*/}
  for k in type online status capacity voltage_now manufacturer model_name; do
    if rd "$s/$k"; then emit power "$n" "$k" "$v"; fi
  done
done
exit 0
`;
