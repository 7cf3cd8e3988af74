#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Suite data: the AppArmor profile the Debian package ships, and the
# one-line local additions README.md documents for Debian's system tor and
# torbrowser-launcher's Tor Browser tor, parsed by apparmor_parser without
# a kernel (-Q: skip loading, -K: no cache, -T: no cache read). TAP output.
# Usage: check-apparmor.sh PROFILE README
set -u
profile=$1
readme=$2
n=0
failed=0
echo "1..4"
ok() {
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}
parse() {
  apparmor_parser -Q -K -T "$@" 2>&1 | grep -v '^Cache read/write disabled' | sed 's/^/# /'
  return "${PIPESTATUS[0]}"
}

parse "$profile"
ok $? "$(basename "$profile") parses"

# The documented line for a confined tor's local file.
line=$(grep -xE '/usr/libexec/tor-websocket-proxy Px,' "$readme" | head -n1)
[ -n "$line" ]
ok $? "README.md documents the local addition: ${line:-none}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy of /etc/apparmor.d whose local/ holds our line.
for entry in /etc/apparmor.d/*; do
  [ "$(basename "$entry")" = local ] || ln -s "$entry" "$work/"
done
mkdir "$work/local"
echo "$line" > "$work/local/system_tor"
echo "$line" > "$work/local/torbrowser.Tor.tor"

if [ -f /etc/apparmor.d/system_tor ]; then
  parse --base "$work" "$work/system_tor"
  ok $? "Debian's system_tor with our line in local/system_tor parses"
else
  ok 1 "Debian's system_tor is missing (install the tor package)"
fi

# torbrowser-launcher's profile as it ends: its local include.
cat > "$work/torbrowser.Tor.tor.test" <<'PROFILE'
abi <abi/3.0>,
include <tunables/global>
profile torbrowser_tor /home/*/.local/share/torbrowser/tbb/{i686,x86_64}/tor-browser/Browser/TorBrowser/Tor/tor {
  include <abstractions/base>
  include <local/torbrowser.Tor.tor>
}
PROFILE
parse --base "$work" "$work/torbrowser.Tor.tor.test"
ok $? "a torbrowser.Tor.tor profile with our line in its local file parses"
exit $failed
