# -*- coding: utf-8 -*-
"""Shared helpers of the xtables engine tests: run the engine inside a test namespace,
dump a namespace's tables, a few-NIC ruleset, and the plan-and-commit sequence."""
from __future__ import annotations

import time

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import SyncResult, plan_diff
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import Runner
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import FAMILY_TOOL, merge_rulesets
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters
from ansible_collections.hypervisor.netfilter.tests.lib.netns import can_create_namespaces, missing_tools

TOOLS = ('ebtables-nft-save', 'ebtables-nft-restore', 'iptables-nft-save', 'iptables-nft-restore',
         'ip6tables-nft-save', 'iptables-legacy-restore', 'ipset')


def require_kernel():
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)
    missing = missing_tools(*TOOLS)
    if missing:
        pytest.skip('missing tools: %s (apt-get install iptables ebtables ipset)' % ', '.join(missing))


class NsRunner(Runner):
    """Runs the engine's commands inside a test namespace."""

    def __init__(self, ns):
        super().__init__()
        self.ns = ns

    def argv_for(self, argv):
        return self.ns.exec_argv(list(argv))


def sync(engine, desired, check_mode=False):
    """Lock (when the engine has a state_dir), plan, commit: what ``_reconcile`` does around
    the engine, as one call for tests.  Returns a :class:`SyncResult` with timings."""
    timings = []
    start = time.monotonic()
    if engine.state_dir:
        lock = state_lock(engine.state_dir, engine.lock_timeout, exclusive=not check_mode, create=not check_mode)
    else:
        lock = _NoLock()
    with lock:
        plan = engine.plan(desired)
        timings.append(('plan', time.monotonic() - start))
        writes = engine.commit(plan, check_mode)
    timings.append(('total', time.monotonic() - start))
    return SyncResult(plan.changed, plan, tuple(plan_diff(plan)), writes, tuple(timings))


class _NoLock:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def dump(ns, family, backend='nft'):
    tool = '%s-%s-save' % (FAMILY_TOOL[family], 'nft' if family == 'eb' else backend)
    return '\n'.join(line for line in ns.run([tool]).stdout.splitlines()
                     if not line.startswith('#'))


def dumps(ns, backend='nft'):
    return dict((family, dump(ns, family, backend)) for family in ('eb', 'ip', 'ip6'))


def clean_traffic(count, first=0, ip_base='192.0.2.'):
    """clean-traffic bound to vnet<first>..vnet<first+count-1>, merged."""
    filters = builtin_filters()
    return merge_rulesets([compile_binding('vnet%d' % i, '52:54:00:00:%02x:%02x' % (i >> 8, i & 255), 'clean-traffic',
                                           {'IP': '%s%d' % (ip_base, 10 + i % 240)}, filters)
                           for i in range(first, first + count)])
