#!/usr/bin/env bash
# The suite_* functions are called indirectly ("suite_$name").
# shellcheck disable=SC2317
# Run test suites of the collection; `make test` runs them all.
#
#   scripts/test.sh [SUITE...]      SUITE: sanity units conformance corpus kernel
#                                   differential other integration lint build
#                                   (default: all of them, in this order)
#
# Every suite runs even when an earlier one failed; the exit status is non-zero
# if any failed. The last lines are a per-suite table and the pytest totals
# ("TOTAL: N passed, N failed, N skipped"). A pytest run that collects no test
# (exit code 5) counts as passed with a note: suites are added by other work.
#
# Environment: HNF_VENV (venv, default .venv), HNF_PYTEST_ARGS (extra pytest
# arguments for the pytest suites, e.g. "-x" or "-n 2"), HNF_SANITY_ARGS
# (extra ansible-test sanity arguments, e.g. "--test pep8"), HNF_INTEGRATION_ARGS
# (ansible-test integration targets/options, e.g. "nwfilter -v").
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 2
results=$repo/tests/output/hnf
ALL_SUITES=(sanity units conformance corpus kernel differential other integration lint build)
# tests/ directories a named suite runs; pytest files anywhere else run in 'other'.
CLAIMED_DIRS=(unit integration output lib kernel conformance corpus differential)

log() { printf '\n=== %s\n' "$*"; }

venv=$(bash "$repo/scripts/bootstrap.sh") || { echo "bootstrap failed" >&2; exit 2; }
py=$venv/bin/python
export PATH=$venv/bin:$PATH
mkdir -p "$results"

# pytest SUITE PATH... : run pytest on the PATHs that exist, junit to $results.
run_pytest() {
    local suite=$1 rc paths=() path
    shift
    for path in "$@"; do
        [ -e "$path" ] && paths+=("$path")
    done
    rm -f "$results/$suite.xml"
    if [ ${#paths[@]} -eq 0 ]; then
        echo "$suite: none of $* exists yet: nothing to run"
        return 0
    fi
    # shellcheck disable=SC2086 # HNF_PYTEST_ARGS is a list of words on purpose
    "$py" -m pytest --rootdir "$repo" -p no:cacheprovider -rfEs --durations=5 --junitxml "$results/$suite.xml" \
        ${HNF_PYTEST_ARGS:-} "${paths[@]}"
    rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "$suite: pytest collected no test in ${paths[*]} (exit code 5): counted as passed"
        rc=0
    fi
    return "$rc"
}

collection_copy() {
    bash "$repo/scripts/collection-copy.sh"
}

suite_sanity() {
    local copy
    copy=$(collection_copy) || return 1
    # shellcheck disable=SC2086
    (cd "$copy" && ansible-test sanity --venv --python 3.11 --color no ${HNF_SANITY_ARGS:-})
}

suite_units() {
    local copy rc
    if ! find "$repo/tests/unit" -name 'test_*.py' 2>/dev/null | grep -q .; then
        echo "units: no tests/unit/**/test_*.py yet: nothing to run"
        return 0
    fi
    copy=$(collection_copy) || return 1
    rm -f "$copy"/tests/output/junit/*.xml "$results"/units*.xml
    (cd "$copy" && ansible-test units --venv --python 3.11 --color no)
    rc=$?
    # ansible-test runs pytest once per context (module_utils, modules, ...),
    # each with a junit file in the copy.
    for xml in "$copy"/tests/output/junit/*.xml; do
        [ -f "$xml" ] && cp "$xml" "$results/units-$(basename "$xml" .xml | sed -e 's/^python[0-9.]*-//' -e 's/-units$//').xml"
    done
    return "$rc"
}

suite_conformance() {
    run_pytest conformance tests/conformance
}

suite_kernel() {
    # Pytest-based kernel tests: they build their own namespaces (tests/lib).
    local extra=()
    mapfile -t extra < <(find tests/integration -maxdepth 1 -name 'test_*.py' 2>/dev/null)
    run_pytest kernel tests/lib tests/kernel "${extra[@]}"
}

suite_corpus() {
    # Test suites of other projects (tp-libvirt, libvirt-tck) run against our engine.
    run_pytest corpus tests/corpus
}

suite_other() {
    # Safety net: pytest files in tests/<dir> that no named suite claims.
    local dirs=() dir name claimed c
    for dir in tests/*/; do
        name=$(basename "$dir")
        claimed=0
        for c in "${CLAIMED_DIRS[@]}"; do [ "$name" = "$c" ] && claimed=1; done
        [ "$claimed" = 0 ] && find "$dir" -name 'test_*.py' | grep -q . && dirs+=("${dir%/}")
    done
    if [ ${#dirs[@]} -eq 0 ]; then
        echo "other: every tests/ directory belongs to a named suite"
        return 0
    fi
    run_pytest other "${dirs[@]}"
}

suite_differential() {
    # Our rules against a real libvirt 9.0 (../shared/tools/libvirt-oracle); the
    # tests skip with the reason when the oracle or libvirt is unavailable.
    run_pytest differential tests/differential
}

suite_integration() {
    # ansible-test integration targets, all run inside one throwaway hypervisor
    # (bridge br0, guests on vnet0/vnet1): see tests/integration/README.md.
    local copy
    if ! find "$repo/tests/integration/targets" -mindepth 2 -maxdepth 2 -name aliases 2>/dev/null |
        grep -vE '/targets/(setup|prepare)_' | grep -q .; then
        echo "integration: no tests/integration/targets/*/aliases yet: nothing to run"
        return 0
    fi
    copy=$(collection_copy) || return 1
    # shellcheck disable=SC2086 # HNF_INTEGRATION_ARGS: target names and options
    (cd "$copy" && "$py" "$repo/scripts/throwaway_hypervisor.py" --guests 2 -- \
        ansible-test integration --local --allow-destructive --python 3.11 --color no ${HNF_INTEGRATION_ARGS:-})
}

suite_lint() {
    local targets=() dir
    for dir in roles examples; do
        if find "$dir" -name '*.yml' -o -name '*.yaml' 2>/dev/null | grep -q .; then targets+=("$dir"); fi
    done
    if [ ${#targets[@]} -eq 0 ]; then
        echo "lint: no roles/ or examples/ playbooks yet: nothing to lint"
        return 0
    fi
    # --offline: no galaxy downloads; the collection comes from this checkout
    # through a collections dir of its own.
    mkdir -p "$results/collections/ansible_collections/hypervisor"
    ln -sfn "$repo" "$results/collections/ansible_collections/hypervisor/netfilter"
    ANSIBLE_COLLECTIONS_PATH=$results/collections ansible-lint --offline --profile production "${targets[@]}"
}

suite_build() {
    # Built from the copy of tracked files, as a release would be.
    local out copy rc
    copy=$(collection_copy) || return 1
    out=$(mktemp -d)
    ansible-galaxy collection build --output-path "$out" "$copy" && ls -l "$out"
    rc=$?
    rm -rf "$out"
    return "$rc"
}

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=("${ALL_SUITES[@]}")
for suite in "${suites[@]}"; do
    if ! declare -F "suite_$suite" >/dev/null; then
        echo "unknown suite '$suite'; known: ${ALL_SUITES[*]}" >&2
        exit 2
    fi
done

declare -A status seconds
failed=0
for suite in "${suites[@]}"; do
    log "$suite"
    start=$SECONDS
    if "suite_$suite"; then status[$suite]=ok; else status[$suite]=FAILED; failed=1; fi
    seconds[$suite]=$((SECONDS - start))
done

log "summary"
for suite in "${suites[@]}"; do
    printf '%-24s %-7s %4ss\n' "$suite" "${status[$suite]}" "${seconds[$suite]}"
done
xmls=()
for suite in "${suites[@]}"; do
    for xml in "$results/$suite.xml" "$results/$suite"-*.xml; do
        [ -f "$xml" ] && xmls+=("$xml")
    done
done
"$py" "$repo/scripts/junit_totals.py" "${xmls[@]}"
exit $failed
