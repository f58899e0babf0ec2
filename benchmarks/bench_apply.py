# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of guest_nic_filter's apply path at N = 10, 100, 1000 NICs (not a test).

    sudo python benchmarks/bench_apply.py [--sizes 10,100,1000] [--repeat 3]

Everything runs in throwaway network namespaces (tests/lib/netns.py).  For
each N, with clean-traffic bound to vnet0..vnetN-1 (one IP each):

* apply     - from an empty host and an empty state_dir, the code path of one
              module call (nic_sync.sync_host: store, compile, one read
              per family, diff, one restore per family, learn the spelling);
* no-op     - the same call again with a fresh engine (as the next module run):
              full diff against the live dump;
* no-op 2   - once more: the live dump is byte-identical to the one the last
              no-op verified, so compiling and diffing are skipped;
* one NIC   - the same call with one NIC's IP changed; prints how many chains
              the restore rewrote;
* save      - one ebtables-save of the final state: the read every run needs;
* floor     - one ebtables-restore of the same final ruleset into an empty
              namespace (Ruleset.render order), and the same text in the order
              the engine writes (natural name order), whichever is faster
              is the floor the ratios use (both with --noflush, as the engine
              restores);
* flushed floor - the same text restored without --noflush (the tool then
              reads the whole table instead of tracking each chain it names).

Interfaces are not created (N veths would dominate the set-up); the bindings
are applied as if they existed.  Times are wall-clock medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))
import conftest  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store  # noqa: E402
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync  # noqa: E402
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets  # noqa: E402
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine  # noqa: E402
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP  # noqa: E402
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.restore import (  # noqa: E402
    declaration_order as _declaration_order)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns  # noqa: E402
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import NsRunner  # noqa: E402


def bindings(count, changed=None):
    out = []
    for i in range(count):
        ip = '10.%d.%d.%d' % (i >> 16 & 255, i >> 8 & 255, (i & 255) or 1)
        if i == changed:
            ip = '172.16.0.1'
        out.append(binding_store.make_binding('vnet%d' % i, '52:54:00:%02x:%02x:%02x' % (i >> 16 & 255, i >> 8 & 255, i & 255),
                                              'clean-traffic', {'IP': ip}))
    return out


def run_sync(ns, state_dir, wanted):
    engine = XtablesEngine(NWFILTER_OWNERSHIP, backend='nft', ebtables_backend='nft', state_dir=state_dir,
                           runner=NsRunner(ns))
    start = time.monotonic()
    result = nic_sync.sync_host(state_dir, engine, upserts=wanted, interface_exists_fn=lambda name: True)
    return time.monotonic() - start, result, engine


def restore_time(text, tool='ebtables-nft-restore', noflush=True):
    with Netns(tag='bf') as ns:
        start = time.monotonic()
        ns.run([tool] + (['--noflush'] if noflush else []), input_text=text)
        return time.monotonic() - start


def engine_order(text):
    """The same restore text with chains declared and filled in the engine's order."""
    lines = text.splitlines()
    decl = [l for l in lines if l.startswith(':')]
    rules = [l for l in lines if l.startswith('-A ') and l.split()[1] not in ('PREROUTING', 'POSTROUTING')]
    hooks = [l for l in lines if l.startswith('-A ') and l.split()[1] in ('PREROUTING', 'POSTROUTING')]
    names = _declaration_order([l[1:].split()[0] for l in decl])
    by_chain = {}
    for rule in rules:
        by_chain.setdefault(rule.split()[1], []).append(rule)
    body = [':%s ACCEPT' % n for n in names]
    for name in names:
        body.extend(by_chain.get(name, []))
    return '\n'.join([lines[0]] + body + hooks) + '\n'


def median(values):
    return statistics.median(values)


def bench(count, repeat):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters
    filters = builtin_filters()
    apply_t, noop_t, noop2_t, one_t, save_t, floor_naive, floor_sorted = [], [], [], [], [], [], []
    floor_flushed = []
    noop_writes = one_chains = rules = None
    compile_t = []
    for _run in range(repeat):
        state_dir = tempfile.mkdtemp(prefix='hnf-bench-')
        try:
            with Netns(tag='bench') as ns:
                elapsed, result, _engine = run_sync(ns, state_dir, bindings(count))
                apply_t.append(elapsed)
                elapsed, result, engine = run_sync(ns, state_dir, bindings(count))
                noop_t.append(elapsed)
                noop_writes = len(result.sync.writes)
                assert not result.changed, 'no-op run changed something'
                elapsed, result, engine = run_sync(ns, state_dir, bindings(count))
                noop2_t.append(elapsed)
                assert not result.changed and not result.sync.writes
                start = time.monotonic()
                ns.run(['ebtables-nft-save'])
                save_t.append(time.monotonic() - start)
                elapsed, result, engine = run_sync(ns, state_dir, bindings(count, changed=count // 2))
                one_t.append(elapsed)
                one_chains = sum(len(f.chain_changes) for f in result.sync.plan.families)
                assert result.interfaces_changed == ('vnet%d' % (count // 2),), result.interfaces_changed
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)
        start = time.monotonic()
        compiled = nic_sync.compile_bindings(bindings(count), filters)
        compile_t.append(time.monotonic() - start)
        text = merge_rulesets([r for _b, r in compiled]).render('eb')
        rules = sum(1 for line in text.splitlines() if line.startswith('-A '))
        floor_naive.append(restore_time(text))
        floor_sorted.append(restore_time(engine_order(text)))
        floor_flushed.append(restore_time(text, noflush=False))
    floor = min(median(floor_naive), median(floor_sorted))
    return dict(n=count, rules=rules, apply=median(apply_t), noop=median(noop_t), one=median(one_t),
                noop2=median(noop2_t), save=median(save_t),
                floor_naive=median(floor_naive), floor_sorted=median(floor_sorted), floor=floor,
                floor_flushed=median(floor_flushed),
                compile=median(compile_t), noop_writes=noop_writes, one_chains=one_chains)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument('--sizes', default='10,100,1000')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit('needs root (network namespaces)')
    load = os.getloadavg()[0]
    print('clean-traffic, ebtables-nft; load average %.1f on %d CPUs; medians of %d runs'
          % (load, os.cpu_count(), args.repeat))
    header = ('N', 'eb rules', 'floor s', 'apply s', 'x', 'no-op s', 'x', 'no-op2 s', 'x', 'one-NIC s', 'x',
              'chains', 'save s', 'render-order floor s', 'compile s', 'flushed floor s')
    print('%5s %8s %8s | %8s %5s | %8s %5s | %8s %5s | %9s %5s | %6s %7s %20s %9s %15s' % header)
    for size in [int(s) for s in args.sizes.split(',')]:
        r = bench(size, args.repeat)
        floor = r['floor']
        print('%5d %8d %8.3f | %8.3f %5.2f | %8.3f %5.2f | %8.3f %5.2f | %9.3f %5.2f | %6d %7.3f %20.3f %9.3f %15.3f' % (
            r['n'], r['rules'], floor, r['apply'], r['apply'] / floor, r['noop'], r['noop'] / floor,
            r['noop2'], r['noop2'] / floor, r['one'], r['one'] / floor, r['one_chains'], r['save'],
            r['floor_naive'], r['compile'], r['floor_flushed']))
        sys.stdout.flush()
    print('x = ratio to the floor. apply/no-op/one-NIC include compiling the N bindings (column "compile"; '
          'cached after the first run); "chains" = chains the one-NIC change rewrote; no-op runs made no write call; '
          '"flushed floor" = the same text restored without --noflush (the tool reads the whole table instead of '
          'tracking every chain it names: see docs/guest_nic_filter.md).')


if __name__ == '__main__':
    main()
