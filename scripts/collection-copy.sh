#!/usr/bin/env bash
# Physical copy of the collection for ansible-test (it rejects symlinks):
# tracked + untracked-not-ignored files of this checkout, as they are now, to
# DEST/ansible_collections/hypervisor/netfilter. DEST must not be inside a git
# work tree (ansible-test would list the files of that repository instead);
# default: /tmp/hnf-collection-<hash of this checkout's path>. Prints the copy's path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest_root=${1:-${TMPDIR:-/tmp}/hnf-collection-$(printf %s "$repo" | sha1sum | cut -c1-10)}
dest=$dest_root/ansible_collections/hypervisor/netfilter

# Keep tests/output: ansible-test keeps its delegation venv there (warm runs
# take seconds instead of minutes).
mkdir -p "$dest/tests"
find "$dest" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
# ls-files still lists tracked files deleted in the work tree: skip those.
git -C "$repo" ls-files -co --exclude-standard -z |
    while IFS= read -r -d '' path; do
        if [ -e "$repo/$path" ] || [ -L "$repo/$path" ]; then printf '%s\0' "$path"; fi
    done |
    tar -C "$repo" --null -T - -cf - | tar -C "$dest" -xf -
# Tests read the read-only reference data at ../shared relative to the repo
# root: make the same relative path work from the copy.
if [ -d "$repo/../shared" ]; then
    ln -sfn "$(cd "$repo/../shared" && pwd)" "$dest/../shared"
fi
echo "$dest"
