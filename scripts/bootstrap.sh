#!/usr/bin/env bash
# Install what `make test` and `make demo` need, idempotently and fast when done:
#   1. missing Debian packages from scripts/apt-packages.txt (root only),
#   2. the venv $HNF_VENV (default .venv) from scripts/requirements-dev.txt,
#   3. the get-pip stand-in that `ansible-test --venv` needs offline.
# Prints the venv path last. Environment: HNF_VENV, HNF_PYTHON (interpreter
# for the venv, default python3.11 or python3), HNF_SKIP_APT=1,
# HNF_APT_LOCK_TIMEOUT (seconds to wait for another apt/dpkg, default 600: a
# fresh host often runs unattended-upgrades right after boot).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HNF_VENV:-$repo/.venv}
requirements=$repo/scripts/requirements-dev.txt

log() { printf 'bootstrap: %s\n' "$*" >&2; }

# apt-get that waits (bounded) while another apt/dpkg holds one of its locks,
# instead of failing at once with "Could not get lock /var/lib/dpkg/lock-frontend".
# apt and dpkg take fcntl locks on several files (dpkg frontend, dpkg, lists,
# archives) and only the frontend one honours DPkg::Lock::Timeout (silently),
# so retry on any lock error until the deadline and say who holds the lock.
# stdout is dropped as before; stderr is shown once the command is done.
apt_get_waiting() {
    local timeout=${HNF_APT_LOCK_TIMEOUT:-600} start=$SECONDS out rc holder waited next_note=0
    out=$(mktemp)
    while :; do
        waited=$((SECONDS - start))
        rc=0
        apt-get "$@" >/dev/null 2>"$out" || rc=$?
        waited=$((SECONDS - start))
        if [ "$rc" -eq 0 ]; then
            [ "$next_note" -eq 0 ] || log "apt/dpkg lock free after ${waited}s"
            cat "$out" >&2
            rm -f "$out"
            return 0
        fi
        if ! grep -qE 'Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock' "$out"; then
            cat "$out" >&2
            rm -f "$out"
            return "$rc"
        fi
        holder=$(sed -n 's/.*It is held by \(process [0-9]* ([^)]*)\).*/\1/p' "$out" | head -n1)
        if [ "$waited" -ge "$timeout" ]; then
            cat "$out" >&2
            rm -f "$out"
            log "ERROR: apt/dpkg lock still held${holder:+ by $holder} after ${waited}s (HNF_APT_LOCK_TIMEOUT=$timeout)"
            return "$rc"
        fi
        if [ "$waited" -ge "$next_note" ]; then
            log "waiting for the apt/dpkg lock${holder:+ held by $holder}: another apt run (unattended-upgrades after boot?); ${waited}s of ${timeout}s"
            next_note=$((waited + 30))
        fi
        sleep 2
    done
}

install_apt_packages() {
    local wanted=() missing=() pkg
    mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$repo/scripts/apt-packages.txt" | grep -v '^$')
    for pkg in "${wanted[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != 'install ok installed' ]; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "Debian packages present (${#wanted[@]})"
        return
    fi
    if [ "${HNF_SKIP_APT:-0}" = 1 ] || [ "$(id -u)" -ne 0 ]; then
        log "WARNING: missing Debian packages (not root or HNF_SKIP_APT=1): ${missing[*]}"
        return
    fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_get_waiting update -qq
    # Package scripts must not start services here (firewalld would take over
    # this machine's firewall): policy-rc.d 101 forbids it while we install.
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    apt_get_waiting install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
    [ "$made_policy" = 1 ] && rm -f "$policy"
    return "$rc"
}

pick_python() {
    local candidate
    for candidate in "${HNF_PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    log "ERROR: no Python >= 3.11 found (ansible-core 2.19 needs it); set HNF_PYTHON"
    exit 1
}

make_venv() {
    local python stamp want
    python=$(pick_python)
    want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
    stamp=$venv/.hnf-bootstrap
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "venv up to date: $venv"
        return
    fi
    log "building venv $venv with $python"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" 2>&1 |
        grep -v "is ignored: it is neither a file nor a directory" >&2 || true
    "$venv/bin/python" -c 'import ansible, lxml, netaddr, jinja2, pytest, xdist' ||
        { log "ERROR: venv $venv is incomplete"; exit 1; }
    echo "$want" >"$stamp"
}

install_get_pip_standin() {
    # ansible-test's venv bootstrap fetches get-pip-<ver>.py from a host we
    # cannot reach; it uses a cached copy when one exists.
    local reqs version target
    reqs=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py"))')
    version=$(sed -n "s/^ *pip='\([0-9.]*\)',.*/\1/p" "$reqs" | head -n1)
    if [ -z "$version" ]; then
        log "ERROR: cannot read the pip version ansible-test wants from $reqs"
        exit 1
    fi
    target=$HOME/.ansible/test/cache/get_pip_${version//./_}.py
    if ! cmp -s "$repo/scripts/get_pip_standin.py" "$target"; then
        mkdir -p "$(dirname "$target")"
        cp "$repo/scripts/get_pip_standin.py" "$target"
        log "installed get-pip stand-in $target"
    fi
}

install_apt_packages
make_venv
install_get_pip_standin
echo "$venv"
