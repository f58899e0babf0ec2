# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest NIC filters, nftables layout: the NIC stage of :mod:`._reconcile.host` for
``firewall_backend: nftables`` (the xtables layout is :mod:`._reconcile.nics`).

Same inputs and result as :func:`._reconcile.nics.sync_nics_locked`: the
stored bindings (updated by ``upserts``/``removals`` if asked) are compiled
into ``table bridge hnf_nic`` (:mod:`._compile.nwfilter_nftables`), diffed
against the live table and applied in one ``nft -f`` transaction
(:mod:`._backends.nft_nics`); NICs whose rules need what the bridge family
cannot do here keep those rules on libvirt's ebtables/iptables chains
through the xtables engine, whose plan also removes the libvirt-layout
chains of NICs that moved to nftables.  The bindings file is written only
after the kernel accepted the rules.

:class:`NftCompiledCache` keeps each binding's compiled share of the layout in
``state_dir/cache/nft-compiled.json`` (:mod:`._host.json_cache`; keyed by the
binding and a digest of its filter tree), so a run with one changed NIC
compiles one NIC.
"""

from __future__ import annotations

import dataclasses
import hashlib

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import Plan, plan_diff
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import Runner, find_tool
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as layout
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import COMPILER_VERSION
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.interfaces import link_lookup
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.json_cache import JsonCache, cache_path
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import tree_digest
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import xtables_variants
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.foreign_nics import (
    chain_owner, foreign_ruleset)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.bindings import (
    load_applied, load_bindings, save_bindings)

NFTABLES = 'nftables'


class NftCompiledCache(JsonCache):
    """Compiled per-NIC shares of the nftables layout (``layout.NicResult``), kept in state_dir.

    Entries: ``nic:<key>`` (the NIC's layout, chain and set names, set elements, xtables rules),
    ``chain:<name>`` and ``set:<name>`` (shared by the NICs that use them: stored once).  Read
    lazily: the incremental path only needs keys, not the cached compilations.
    """

    VERSION = 2  # 1: a file format of its own

    def __init__(self, state_dir):
        super().__init__(cache_path(state_dir, 'nft-compiled'), lazy=True)
        self.memory = {}
        self._trees = {}

    def _tree(self, filter_name, filters):
        digest = self._trees.get(filter_name)
        if digest is None:
            digest = self._trees[filter_name] = tree_digest(filter_name, filters)
        return digest

    def key(self, binding, filters, conntrack):
        text = repr((COMPILER_VERSION, layout.LAYOUT_VERSION, conntrack, binding.interface, binding.mac,
                     binding.filter, tuple(binding.parameters), self._tree(binding.filter, filters)))
        return hashlib.sha256(text.encode('utf-8')).hexdigest()

    def get(self, key):
        if key in self.memory:
            return self.memory[key]
        data = self.lookup('nic:' + key)
        if data is None:
            return None
        try:
            result = self._load_nic(data)
        except (KeyError, TypeError, ValueError, IndexError):
            return None  # a damaged entry only costs a recompilation
        self.memory[key] = result
        return result

    def put(self, key, result):
        self.memory[key] = result
        self.store('nic:' + key, self._dump(result))

    def _shared(self, kind, name):
        value = self.lookup('%s:%s' % (kind, name))
        if value is None:
            raise KeyError('%s %s' % (kind, name))
        return value

    def _load_nic(self, data):
        nic = data['l']
        chains = tuple(layout.NftChain(name, tuple(self._shared('chain', name))) for name in data['c'])
        sets = []
        for name, elements in data['s']:
            key, interval, kinds = self._shared('set', name)
            sets.append(layout.NftSet(name, tuple(key), interval, frozenset(
                (e[0],) + tuple(tuple(c) for c in e[1:]) for e in elements), tuple(kinds)))
        return layout.NicResult(
            layout.NicLayout(nic[0], nic[1], nic[2], tuple(tuple(d) for d in nic[3]), tuple(nic[4])),
            chains, tuple(sets), nic_sync.ruleset_from_data(data['x']))

    def _dump(self, result):
        nic = result.layout
        for chain in result.chains:
            self.store('chain:' + chain.name, list(chain.rules))
        for nft_set in result.sets:
            self.store('set:' + nft_set.name, [list(nft_set.key), nft_set.interval, list(nft_set.kinds)])
        return {'l': [nic.interface, nic.mode, nic.reason, [list(d) for d in nic.dispatch], list(nic.warnings)],
                'c': [c.name for c in result.chains],
                's': [[s.name, sorted([e[0]] + [list(c) for c in e[1:]] for e in s.elements)] for s in result.sets],
                'x': nic_sync.ruleset_to_data(result.xtables)}


@dataclasses.dataclass(frozen=True)
class NftSyncView:
    """What modules read from ``HostSyncResult.sync``: ``diff``, ``writes``, ``summary()``."""

    result: nft_nics.NicSyncResult

    @property
    def changed(self):
        return self.result.changed

    @property
    def diff(self):
        return self.result.diff

    @property
    def writes(self):
        return self.result.writes

    def summary(self):
        out = {'nftables': dict(self.result.nft_plan.summary(), table='%s %s' % (layout.FAMILY, layout.TABLE))}
        xt_plan = self.result.xt_plan
        if xt_plan is not None:
            for fam in xt_plan.families:
                if fam.changed:
                    out[fam.family] = {'chains_changed': len(fam.chain_changes), 'hooks_changed': len(fam.hook_changes),
                                       'backend': fam.backend}
        return out


def _chain_users(result):
    """chain name -> interfaces that reach it (dispatch targets and the sub-chains they jump to)."""
    if result.layout is None:
        return {}  # the incremental path: no chain changed
    rules = dict((c.name, c.rules) for c in result.layout.chains)
    users = {}
    for nic in result.nics:
        pending = [target for _base, target in nic.dispatch]
        seen = set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            users.setdefault(name, []).append(nic.interface)
            for rule in rules.get(name, ()):
                if ' jump ' in ' ' + rule:
                    pending.append(rule.rsplit(' ', 1)[1])
    return users


def interface_details(result):
    """``((interface, (line, ...)), ...)``: what changes (or would) for each interface."""
    found = {}
    plan = result.nft_plan
    users = _chain_users(result)
    for name in plan.chains_added + plan.chains_replaced + plan.chains_deleted:
        action = 'created' if name in plan.chains_added else 'replaced' if name in plan.chains_replaced \
            else 'deleted'
        for interface in users.get(name, ()):
            found.setdefault(interface, []).append('nft chain %s %s' % (name, action))
    for verb, items in (('missing', plan.elements_added), ('unexpected', plan.elements_deleted)):
        for container, element in items:
            interface = element.split('"')[1] if element.startswith('"') else None
            if interface:
                found.setdefault(interface, []).append('nft element %s in %s: %s' % (verb, container, element))
    if result.xt_plan is not None:
        owners = _xtables_owners(result.xt_plan, [nic.interface for nic in result.nics])
        for interface, lines in nic_sync.interface_changes(result.xt_plan, owners):
            found.setdefault(interface, []).extend(lines)
    return tuple((interface, tuple(lines)) for interface, lines in found.items())


def _xtables_owners(xt_plan, interfaces):
    """``{(family, table, chain): interface}`` for the xtables chains ``xt_plan`` changes.

    The layout's xtables share is one merged ruleset, so chains are attributed by name: libvirt's
    root chains (``FI-vnet0``, ``libvirt-I-vnet0``) name their interface, ebtables sub-chains
    (``I-vnet0-arp``) start with it (the longest bound name wins).  Without this, a flushed
    ``FI-vnet0`` of a NIC whose IP layer stays on iptables was repaired but reported in sync."""
    longest_first = sorted(interfaces, key=len, reverse=True)
    owners = {}
    for fam in xt_plan.families:
        for change in fam.chain_changes:
            interface = chain_owner(fam.family, change.chain, longest_first)
            if interface is not None:
                owners[(fam.family, change.table, change.chain)] = interface
    return owners


def sync_host(state_dir, upserts=(), removals=(), exclusive=False, check_mode=False, lock_timeout=60, **kwargs):
    """:func:`sync_nics_locked` under the ``state_dir`` lock."""
    nic_sync.check_request(upserts, removals)  # pylint: disable=protected-access
    with state_lock(state_dir, lock_timeout, exclusive=not check_mode, create=not check_mode):
        return sync_nics_locked(state_dir, upserts=upserts, removals=removals, exclusive=exclusive,
                                check_mode=check_mode, **kwargs)


def sync_nics_locked(state_dir, upserts=(), removals=(), exclusive=False, check_mode=False, filters=None,
                     skip_missing_interfaces=False, interface_exists_fn=None, runner=None, xtables_backend='auto',
                     ebtables_backend='auto', fail_closed=(), coexistence=None):
    """The nftables layout's :func:`._reconcile.nics.sync_nics_locked`: a ``nics.HostSyncResult``.

    ``coexistence``: as there, refuse interfaces new to the store that libvirt's nwfilter driver owns
    (its binding file, or chains we did not make, which the move to nftables would otherwise delete)."""
    # pylint: disable=protected-access
    requested = nic_sync.check_request(upserts, removals)
    stored = load_bindings(state_dir)
    final, added, updated, removed = nic_sync._merge_request(stored, upserts, removals, exclusive, requested)
    if coexistence is not None:
        coexistence.check_files(added)
    active, skipped, absent, warnings = nic_sync._split_absent(final, skip_missing_interfaces,
                                                               interface_exists_fn or link_lookup())
    if filters is None:
        filters = nic_sync.load_host_filters(state_dir)
    warnings.extend(nic_sync.upsert_warnings(upserts, filters))
    engine = XtablesEngine(NWFILTER_OWNERSHIP, backend=xtables_backend, ebtables_backend=ebtables_backend,
                           state_dir=state_dir, runner=runner)
    cache = NftCompiledCache(state_dir)
    canonical = nft_nics.Canonical(state_dir)
    conntrack = nft_nics.probe_bridge_conntrack(engine.runner, canonical)
    # Bindings given now are compiled even when they are skipped: bad input fails here.
    active_names = set(b.interface for b in active)
    layout.compile_layout([b for b in upserts if b.interface not in active_names], filters, conntrack=conntrack,
                          cache=cache)
    if not check_mode:
        xtables_variants.note_variants(engine, state_dir)
    applied = load_applied(state_dir)
    ours = nic_sync.our_interfaces(stored, final, applied)

    def keep(texts):
        return foreign_ruleset(texts, ours)
    result = _leave_other_variants(engine, state_dir, check_mode, keep, nft_nics.sync_nics(
        engine.runner, active, filters, engine=engine, state_dir=state_dir, check_mode=check_mode,
        fail_closed=fail_closed, conntrack=conntrack, compile_cache=cache, canonical=canonical,
        check_xtables=nic_sync.live_check(state_dir, coexistence, added, check_mode, applied), keep_xtables=keep))
    if not check_mode:
        if added or updated or removed:
            save_bindings(state_dir, final)
        nic_sync.record_applied(state_dir, applied, active)
        cache.save()
    details = interface_details(result)
    return nic_sync.HostSyncResult(
        changed=bool(result.changed or added or updated or removed), kernel_changed=result.changed,
        bindings=final, added=added, updated=updated, removed=removed, skipped=skipped,
        interfaces_changed=tuple(i for i, _l in details), sync=NftSyncView(result),
        warnings=tuple(warnings) + result.warnings, previous=tuple(stored), interface_details=details,
        absent=absent)


def _leave_other_variants(engine, state_dir, check_mode, keep, result):
    """``result`` with our chains removed from the iptables variant the host no longer uses
    (:mod:`.xtables_variants`), after the layout is in place."""
    writes_before = len(engine.runner.writes())
    left = xtables_variants.leave_other_variants(engine, state_dir, check_mode, keep=keep).families
    if not left:
        return result
    xt_plan = Plan((result.xt_plan.families if result.xt_plan is not None else ()) + left)
    return dataclasses.replace(result, changed=True, xt_plan=xt_plan,
                               diff=tuple(result.diff) + tuple(plan_diff(Plan(left))),
                               writes=tuple(result.writes) + tuple(engine.runner.writes()[writes_before:]))


def render(bindings, filters, state_dir, fail_closed=None):
    """``(rendered, warnings)``: the nftables layout of ``bindings`` alone as ``rendered['nftables']`` (an
    ``nft -f`` script for a host without our table) and the rules kept on xtables per tool.  Touches
    nothing: the bridge conntrack probe comes from the cache or a scratch namespace."""
    if fail_closed is None:
        fail_closed = host_settings.load_host_settings(state_dir).drop_unbound_interfaces
    conntrack = nft_nics.probe_bridge_conntrack(Runner(), nft_nics.Canonical(state_dir))
    built = layout.compile_layout(bindings, filters, conntrack=conntrack,
                                  fail_closed=nft_nics.check_patterns(fail_closed))
    rendered = built.xtables.render_by_tool()
    rendered[NFTABLES] = layout.render_layout(built)
    return rendered, tuple(w for nic in built.nics for w in nic.warnings)


def leave_nftables(runner=None, check_mode=False):
    """For the iptables layout: remove our table if a previous nftables run left it.

    Returns an Ansible diff dict when there was one (None otherwise); nothing
    happens on hosts without the nft command.
    """
    if find_tool('nft') is None:
        return None
    runner = runner or Runner()
    try:
        live = nft_nics.read_live(runner)
    except nft_nics.NftError:
        return None  # nftables unusable here (e.g. a kernel without nf_tables): no table of ours either
    removal = nft_nics.remove_plan(live)
    if not check_mode:
        nft_nics.apply(runner, removal)
    return nft_nics.diff_dict(removal)


def effective_backend(state_dir, requested):
    """The NIC filter layout to use: the option when given, else the stored host setting."""
    if requested:
        return requested
    return host_settings.load_host_settings(state_dir).firewall_backend
