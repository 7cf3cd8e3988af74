#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Proves the README's two commands on a brand-new Debian 12: debootstraps a
# minimal bookworm root into a temporary directory, clones this project's
# committed HEAD into it, and runs, as root inside it, exactly
#   DEMO_NO_WAIT=1 ./scripts/demo.sh     and     ./scripts/run-tests.sh
# Prints the last lines of each, their exit status and wall time; the logs
# stay in a directory on the host. The root is removed on every exit path.
# Too slow for every CI run (about a gigabyte of packages and both builds):
# run it on demand, at least whenever scripts/install-deps.sh changes.
#
# Needs root on a Debian host. Nothing but Debian's own archive entries of
# the host's apt sources, its apt fetch settings, its extra CA certificates
# and npm configuration are passed into the root, read at run time.
#   --keep         keep the root (and print its path) for debugging
#   --logdir DIR   where the logs go (default: a new directory in /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
prog=fresh-debian-check

keep=0
logdir=
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=1 ;;
    --logdir) logdir=$2; shift ;;
    -h|--help) sed -n '3,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "$prog: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" -ne 0 ]; then
  echo "$prog: needs root (debootstrap, chroot and mounts)" >&2
  exit 1
fi

say() {
  echo "$prog: $*"
}

started=$SECONDS

# debootstrap and the sources parser, on the host only.
need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v git >/dev/null 2>&1 || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} on this host"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if [ -n "$(git -C "$src" status --porcelain --untracked-files=no)" ]; then
  say "note: uncommitted changes are not part of the check (it clones HEAD)"
fi
head=$(git -C "$src" rev-parse --short HEAD)

# The host's Debian archive entries (main archive, updates, security) in
# one-line form, from sources.list and sources.list.d (.list and deb822
# .sources). Other repositories (third-party node, cloud tools...) a fresh
# Debian machine would not have are left out.
sources=$(python3 - <<'PY'
import glob, re

WANTED = ("bookworm", "bookworm-updates", "bookworm-security")
seen = []

def add(uri, suite, components):
    if suite in WANTED and "main" in components and (uri, suite) not in [s[:2] for s in seen]:
        seen.append((uri.rstrip("/"), suite, "main"))

for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = line.split("#", 1)[0]
        line = re.sub(r"\[[^]]*\]", " ", line)
        words = line.split()
        if len(words) >= 4 and words[0] == "deb":
            add(words[1], words[2], words[3:])

for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    text = "\n".join(l for l in open(path).read().splitlines() if not l.startswith("#"))
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                add(uri, suite, fields.get("components", "").split())

for uri, suite, component in seen:
    print(f"deb {uri} {suite} {component}")
PY
)
mirror=$(awk '$3 == "bookworm" { print $2; exit }' <<<"$sources")
if [ -z "$mirror" ]; then
  echo "$prog: no Debian bookworm main entry in this host's apt sources" >&2
  exit 1
fi

# apt's fetch settings (snapshot mirrors need Check-Valid-Until false,
# proxies), as the host's apt sees them after all its configuration files.
aptconf=$(apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|Max-FutureTime|https?::Proxy|Retries) ' || true)
http_proxy_apt=$(apt-config dump | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p')

if [ -z "$logdir" ]; then
  logdir=$(mktemp -d /var/tmp/twp-fresh-check-log.XXXXXX)
fi
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)
work=$(mktemp -d /var/tmp/twp-fresh-root.XXXXXX)
root=$work/root
mkdir "$root"

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # The mounts live in the check's own mount namespace and went with it;
  # whatever is still mounted below the root is unmounted before removal,
  # and rm never crosses into another file system.
  if findmnt -rn -o TARGET | grep -q "^$root"; then
    findmnt -rn -o TARGET | grep "^$root" | sort -r | xargs -r -n1 umount -l || true
  fi
  if [ "$keep" -eq 1 ]; then
    say "kept the root: $root"
  else
    rm -rf --one-file-system "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "HEAD $head, mirror from this host's apt sources, logs in $logdir"
say "debootstrap --variant=minbase bookworm (log: $logdir/debootstrap.log)"
t0=$SECONDS
if ! http_proxy=${http_proxy:-$http_proxy_apt} \
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$logdir/debootstrap.log" 2>&1; then
  tail -n 20 "$logdir/debootstrap.log" >&2
  echo "$prog: debootstrap failed" >&2
  exit 1
fi
say "debootstrap took $((SECONDS - t0)) s"

# What a freshly installed Debian 12 has configured, taken from this host.
printf '%s\n' "$sources" >"$root/etc/apt/sources.list"
if [ -n "$aptconf" ]; then
  printf '%s\n' "$aptconf" >"$root/etc/apt/apt.conf.d/99fresh-check-host"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
# Extra CA certificates the host trusts (a TLS-inspecting egress proxy):
# ca-certificates, which npm brings, adds them to the root's bundle.
if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
# npm's global configuration (cafile and such), where Debian's npm reads it.
if [ -f /etc/npmrc ]; then
  cp /etc/npmrc "$root/etc/npmrc"
fi

# The project as a new user gets it: a fresh clone of the committed HEAD.
git clone -q --no-hardlinks "$src" "$root/root/tor-websocket-proxy"
git -C "$root/root/tor-websocket-proxy" checkout -q --detach "$head"

# The environment a root login would have, plus the host's proxy and CA
# settings for the registries.
envs=(HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY NODE_EXTRA_CA_CERTS; do
  if [ -n "${!name:-}" ]; then
    envs+=("$name=${!name}")
  fi
done
while IFS= read -r line; do
  envs+=("$line")
done < <(env | grep -E '^npm_config_' || true)

# Runs one README command in the root; prints its result line.
cat >"$work/run-in-root.sh" <<'EOF'
#!/bin/bash
# In a new mount and PID namespace: everything mounted here and every
# process left behind vanish when this script, PID 1, exits.
set -eu
# run-in-root.sh ROOT LOGDIR NAME=VALUE... (the environment inside)
root=$1 logdir=$2
shift 2
envs=("$@")
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
rc_all=0
# run LOG LINES COMMAND: COMMAND as a root shell in the clone would run it.
run() {
  local log=$1 lines=$2 command=$3
  local t0=$SECONDS rc=0
  chroot "$root" /usr/bin/env -i "${envs[@]}" \
    /bin/bash -c "cd /root/tor-websocket-proxy && $command" >"$logdir/$log" 2>&1 || rc=$?
  echo "== $command: exit $rc after $((SECONDS - t0)) s; last lines ($logdir/$log):"
  tail -n "$lines" "$logdir/$log" | sed 's/^/   /'
  [ "$rc" -eq 0 ] || rc_all=1
}
run demo.log 10 'DEMO_NO_WAIT=1 ./scripts/demo.sh'
run run-tests.log 3 './scripts/run-tests.sh'
# Which node and browser the suites ran with.
echo "== in the root: $(chroot "$root" /usr/bin/dpkg-query -W -f '${Package} ${Version}; ' nodejs npm chromium 2>&1)"
exit $rc_all
EOF
chmod 755 "$work/run-in-root.sh"

say "running the README's commands in the root, as root"
status=0
unshare --mount --propagation private --pid --fork --kill-child \
  "$work/run-in-root.sh" "$root" "$logdir" "${envs[@]}" | tee "$logdir/summary.log" || status=$?
say "total wall time $((SECONDS - started)) s (HEAD $head); $( [ "$status" -eq 0 ] && echo both commands passed || echo FAILED)"
exit "$status"
