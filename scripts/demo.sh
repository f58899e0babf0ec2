#!/usr/bin/env bash
# `make demo`: install what is needed (fast when done), then run scripts/demo.py
# as root. Every namespace it makes is named $HNF_DEMO_TAG-*; the trap deletes
# any left behind, whatever happens.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
    echo "make demo needs root (it creates network namespaces)" >&2
    exit 2
fi
venv=$(bash "$repo/scripts/bootstrap.sh")

HNF_DEMO_TAG="hnf-$$-demo-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export HNF_DEMO_TAG

cleanup() {
    local ns
    for ns in $(ip netns list | awk '{print $1}'); do
        case $ns in "$HNF_DEMO_TAG"-*) ip netns delete "$ns" ;; esac
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

"$venv/bin/python" "$repo/scripts/demo.py"
