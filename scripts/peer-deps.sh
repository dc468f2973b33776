#!/usr/bin/env bash
# Installs the peers bench/bench_peers.py measures (scripts/peer-packages.txt) when running
# as root and they are missing; idempotent. Their daemons must not start: the bench starts
# its own with configurations it writes to a temporary directory. So the install runs with
# a policy-rc.d that refuses every start (invoke-rc.d and deb-systemd-invoke ask it), and
# with a systemctl ahead of the real one on dpkg's PATH (apt's DPkg::Path, through a
# temporary APT_CONFIG) that ignores start requests: pcp's postinst calls
# `systemctl start pmcd.service` itself, policy or not (and fails where systemd is not
# PID 1). The services the packages enable at boot are disabled again.
# Unprivileged runs skip this: the bench then skips the peers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
list="$here/peer-packages.txt"
services=(netdata pmcd pmlogger pmie pmproxy)
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "peer-deps: not root or no apt-get; the peer bench will be skipped"
  exit 0
fi
missing=0
while read -r pkg; do
  pkg=${pkg%%#*}; pkg=$(echo "$pkg" | xargs)
  [ -n "$pkg" ] || continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing=1
done < "$list"
[ "$missing" = 1 ] || exit 0

policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then
  saved=$(mktemp "$policy.peer-deps.XXXXXX")
  cp -p "$policy" "$saved"
fi
shim=$(mktemp -d)
restore() {
  if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
  rm -rf "$shim"
}
trap restore EXIT
printf '#!/bin/sh\n# scripts/peer-deps.sh: no service starts while the peers install\nexit 101\n' > "$policy"
chmod 0755 "$policy"
real=$(command -v systemctl || true)
cat > "$shim/systemctl" <<SHIM
#!/bin/sh
# scripts/peer-deps.sh: the packages' scripts start nothing
case "\$1" in start|restart|try-restart|reload-or-restart|try-reload-or-restart) exit 0;; esac
[ -d /run/systemd/system ] && [ -n "$real" ] || exit 0
exec "$real" "\$@"
SHIM
chmod 0755 "$shim/systemctl"
printf 'DPkg::Path "%s:/usr/sbin:/usr/bin:/sbin:/bin";\n' "$shim" > "$shim/apt.conf"
APT_CONFIG="$shim/apt.conf" "$here/system-deps.sh" "$list"
# Disabled at boot in both init systems: the packages' scripts enable the systemd units
# whether or not systemd runs, and systemctl disable works offline too (it also removes
# the init.d scripts' runlevel links); update-rc.d where there is no systemctl.
for s in "${services[@]}"; do
  if [ -n "$real" ] && [ -e "/lib/systemd/system/$s.service" ]; then
    "$real" disable "$s.service" >/dev/null 2>&1 || true
  elif command -v update-rc.d >/dev/null && [ -e "/etc/init.d/$s" ]; then
    update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done
echo "peer-deps: installed; services ${services[*]} left stopped and disabled"
