#!/usr/bin/env bash
# The Debian package (issue 20): `cargo deb` builds it; it is installed with dpkg -i on this
# machine, `ketaflow --version` and `ketaflow config check` run from the installed paths, the user,
# the 0700 data directory and the unit are checked, and the package is purged again (the data
# directory stays, as it would in a clinic). Needs root and cargo-deb (cargo install cargo-deb).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "error: cargo-deb not found; install it with: cargo install cargo-deb --locked" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: installing a package needs root" >&2
    exit 1
fi
if dpkg -s ketaflow >/dev/null 2>&1; then
    echo "error: a ketaflow package is already installed here; this test would replace it" >&2
    exit 1
fi

DEB="$(cargo deb -p ketaflow --output target/debian 2>/dev/null | tail -n1)"
[ -f "$DEB" ] || { echo "error: cargo deb did not say where the package is"; exit 1; }
echo "== built $DEB"
dpkg-deb --contents "$DEB" | awk '{print $1, $6}'
purge() { dpkg --purge ketaflow >/dev/null 2>&1 || true; rm -rf /var/lib/ketaflow; }
trap purge EXIT
dpkg -i "$DEB"

fail() { echo "FAIL: $*" >&2; exit 1; }
version="$(/usr/bin/ketaflow --version)"
echo "installed: $version"
case "$version" in "ketaflow $(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="ketaflow"))') ("*) ;; *) fail "unexpected version line: $version" ;; esac
/usr/bin/ketaflow config check /etc/ketaflow/ketaflow.toml || fail "the shipped configuration does not check"
checked="$(/usr/bin/ketaflow config check)"
case "$checked" in "/etc/ketaflow/ketaflow.toml: ok"*) ;; *) fail "the default path is not /etc/ketaflow/ketaflow.toml: $checked" ;; esac
getent passwd ketaflow >/dev/null || fail "no ketaflow system user"
[ "$(stat -c '%a %U' /var/lib/ketaflow)" = "700 ketaflow" ] || fail "/var/lib/ketaflow is $(stat -c '%a %U' /var/lib/ketaflow), not 700 ketaflow"
[ "$(stat -c '%a %G' /etc/ketaflow/ketaflow.toml)" = "640 ketaflow" ] || fail "the configuration is $(stat -c '%a %G' /etc/ketaflow/ketaflow.toml)"
unit=/lib/systemd/system/ketaflow.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/ketaflow.service
grep -q "^User=ketaflow$" "$unit" || fail "the unit does not run as ketaflow"
grep -q "^ExecStart=/usr/bin/ketaflow serve --config /etc/ketaflow/ketaflow.toml$" "$unit" || fail "the unit's ExecStart"
# The installed server starts as its own user from the shipped configuration and answers /readyz.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(cd /var/lib/ketaflow && setpriv --reuid=ketaflow --regid=ketaflow --clear-groups \
    /usr/bin/ketaflow serve --config /etc/ketaflow/ketaflow.toml --listen "127.0.0.1:$port" > /tmp/ketaflow-package.log 2>&1) &
server=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$port/readyz" | grep -q '"status":"ready"' || { cat /tmp/ketaflow-package.log; fail "/readyz"; }
kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
[ "$(stat -c '%a %U' /var/lib/ketaflow/ketaflow.db)" = "600 ketaflow" ] || fail "the database file is $(stat -c '%a %U' /var/lib/ketaflow/ketaflow.db)"
echo "package: built, installed, checked, served and purged"
