#!/usr/bin/env bash
# Install what `make test` and `make demo` need, idempotently and fast when done:
#   1. missing Debian packages from scripts/apt-packages.txt (root only),
#   2. the venv $HNF_VENV (default .venv) from scripts/requirements-dev.txt,
#   3. the get-pip stand-in that `ansible-test --venv` needs offline.
# Prints the venv path last. Environment: HNF_VENV, HNF_PYTHON (interpreter
# for the venv, default python3.11 or python3), HNF_SKIP_APT=1.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HNF_VENV:-$repo/.venv}
requirements=$repo/scripts/requirements-dev.txt

log() { printf 'bootstrap: %s\n' "$*" >&2; }

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
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
