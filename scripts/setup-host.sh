#!/usr/bin/env bash
# Install what Dockyard needs on a Debian 12 host, idempotently: Debian packages, the
# cgroup fix from HOST-NOTES.md, the Python venv, and the `dockyard` command on PATH.
# Usage: scripts/setup-host.sh [--dev]   (--dev adds the test and lint tools)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "setup-host: run as root" >&2; exit 1; }

packages=(crun conmon busybox-static tini nftables libnftables1 iproute2 procps tar docker-registry)
command -v python3 >/dev/null || packages+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Dockyard runs its own registry (under its state dir, behind its token service); the
  # Debian package's service on :5000 with htpasswd auth is not it. Stop it where an init
  # system started it, since we installed it just now.
  # Without systemd as init (containers, CI) the package starts it through its sysv script.
  if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
    if command -v systemctl >/dev/null; then
      systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
    if [ -x /etc/init.d/docker-registry ]; then
      /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
      update-rc.d docker-registry disable >/dev/null 2>&1 || true
    fi
  fi
fi

# crun refuses "hybrid" cgroups while cgroup2 still lists a controller; on these hosts
# it lists hugetlb until hugetlb is bound to a v1 hierarchy (HOST-NOTES.md).
unified=/sys/fs/cgroup/unified/cgroup.controllers
if [ -s "$unified" ] && grep -qw hugetlb "$unified" && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

# Moving a process into a cgroup (crun does it for every container it creates) first waits
# for an RCU grace period, 6-10 ms on these hosts, unless the cgroup2 root is mounted with
# favordynmods (Linux 6.0+): then it takes ~0.4 ms. Remount it so, keeping its other
# options; forks and exits get a little dearer (ADR 0024).
cgroup2=$(findmnt -n -t cgroup2 -o TARGET | head -n1 || true)
if [ -n "$cgroup2" ]; then
  options=$(findmnt -n -o FS-OPTIONS --mountpoint "$cgroup2" | head -n1)
  if [[ ",$options," != *,favordynmods,* ]]; then
    mount -o "remount,$options,favordynmods" "$cgroup2" ||
      echo "setup-host: cannot set favordynmods on $cgroup2; container starts stay ~8 ms slower" >&2
  fi
fi

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
stamp=.venv/.installed${extras:+-dev}
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".${extras}"
  touch "$stamp"
fi
ln -sf "$PWD/.venv/bin/dockyard" /usr/local/bin/dockyard
