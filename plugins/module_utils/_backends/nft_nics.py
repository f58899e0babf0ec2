# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply the guest NIC nftables layout (``table bridge hnf_nic``): read, diff, one ``nft -f``.

Read: ``nft -j list table bridge hnf_nic`` (one call; a missing table is an
empty state).  Chains are compared as lists of nft's own JSON expressions;
the desired ones are learnt once by loading the desired skeleton (chains and
empty sets) into a throwaway network namespace, and cached in
``state_dir/cache`` by chain name (names carry a digest of the rules).  Set
and map elements are compared as values (intervals of integers), so a
changed NIC is a few element lines.

Write: one ``nft -f -`` script, one kernel transaction, holding only the
difference: flush/refill changed chains, add/delete chains, sets, set and
map elements.  Nothing outside our table is read or written.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics_fast as FAST
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as L
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables_match as M
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import find_tool
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.scratch import Step, run_in_scratch
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import plan_diff

CACHE_VERSION = 1
_CHAIN_BLOCK = re.compile(r'^\tchain (\S+) \{\n(.*?)^\t\}', re.M | re.S)


class NftError(NetfilterError):
    """nft is missing, refused our rules, or printed something we cannot read."""


def _nft():
    path = find_tool('nft')
    if path is None:
        raise NftError('the nftables backend for guest NIC filters needs the nft command (package nftables)')
    return path


def _tool_id(path):
    try:
        stat = os.stat(os.path.realpath(path))
    except OSError:
        return path
    return '%s:%d:%d' % (os.path.realpath(path), stat.st_size, int(stat.st_mtime))


def scratch(runner, script, list_table=True):
    """Load ``script`` into a throwaway network namespace (:mod:`._host.scratch`);
    ``(the table's JSON or '' when not listed, '')``, or ``(None, nft's error)``."""
    nft = _nft()
    steps = [Step((nft, '-f', '-'), stdin=True)]
    if list_table:
        steps.append(Step((nft, '-j', 'list', 'table', L.FAMILY, L.TABLE)))
    result = run_in_scratch(runner, steps, script)
    if result.unshare_failed:
        raise NftError('cannot create a scratch network namespace (needs root with CAP_SYS_ADMIN): %s'
                       % result.stderr.strip())
    if not result.ok:
        return None, result.stderr.strip()
    return (result.outputs[-1] if list_table else ''), ''


# ---------------------------------------------------------------------------- probes

PROBE_CONNTRACK = ('add table bridge hnf_probe\n'
                   'add chain bridge hnf_probe c { type filter hook forward priority 0; policy accept; }\n'
                   'add rule bridge hnf_probe c ct state established accept\n')


def probe_bridge_conntrack(runner, cache=None):
    """Whether ``ct state`` loads in a bridge-family table (nf_conntrack_bridge), tried in a scratch namespace."""
    key = 'conntrack:%s:%s' % (os.uname().release, _tool_id(_nft()))
    if cache is not None and key in cache.probes:
        return cache.probes[key]
    out, _err = scratch(runner, PROBE_CONNTRACK, list_table=False)
    result = out is not None
    if cache is not None:
        cache.probes[key] = result
        cache.dirty = True
    return result


# ---------------------------------------------------------------------------- canonical forms

class Canonical:
    """nft's JSON spelling of our chains, learnt in a scratch namespace, cached in state_dir."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, 'cache', 'nft-nic-canonical.json') if state_dir else None
        self.tool = _tool_id(_nft())
        self.chains = {}
        self.probes = {}
        self.dirty = False
        if self.path and os.path.exists(self.path):
            try:
                with open(self.path, encoding='utf-8') as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                data = None  # a damaged cache only costs one scratch load
            if isinstance(data, dict) and data.get('version') == CACHE_VERSION and data.get('tool') == self.tool:
                self.chains = data.get('chains') or {}
                self.probes = data.get('probes') or {}

    def save(self, keep):
        if not self.path or not self.dirty:
            return
        chains = dict((k, v) for k, v in self.chains.items() if k in keep)
        atomic_write(self.path, json.dumps({'version': CACHE_VERSION, 'tool': self.tool, 'chains': chains,
                                            'probes': self.probes}, separators=(',', ':')), durable=False)

    def learn(self, runner, layout, keys):
        """Make sure every chain key in ``keys`` is known; one scratch load for all unknown ones."""
        missing = [k for k in keys if k not in self.chains]
        if not missing:
            return
        skeleton = dataclasses.replace(layout, sets=tuple(dataclasses.replace(s, elements=frozenset())
                                                          for s in layout.sets),
                                       maps=tuple((name, ()) for name, _elements in layout.maps))
        # The skeleton's maps are empty: add the base chains the layout uses but the skeleton lacks.
        script = L.render_layout(skeleton) + ''.join(
            line + '\n' for base in layout.bases() if base not in skeleton.bases()
            for line in L.render_base_chain(base, layout.fail_closed))
        out, err = scratch(runner, script)
        if out is None:
            raise NftError('nft rejected the desired guest NIC rules (tried in a scratch network namespace, the '
                           'host is untouched): %s' % err)
        live = parse_live(out)
        for name, rules in live.chains.items():
            self.chains[chain_key(name, layout)] = rules
        self.dirty = True


def chain_key(name, layout):
    """Cache key of a chain: its name (which carries a digest of its rules), or for base chains the rules."""
    for base in L.BASE_CHAINS:
        if base.name == name:
            return 'base:%s:%s' % (name, json.dumps(L.base_chain_rules(base, layout.fail_closed)))
    return name


# ---------------------------------------------------------------------------- live state

@dataclasses.dataclass(frozen=True)
class LiveTable:
    exists: bool = False
    chains: dict = dataclasses.field(default_factory=dict)  # name -> [canonical rule json]
    base: dict = dataclasses.field(default_factory=dict)  # name -> (type, hook, prio, policy)
    sets: dict = dataclasses.field(default_factory=dict)  # name -> (type tuple, flags tuple, elements set)
    maps: dict = dataclasses.field(default_factory=dict)  # name -> (type, map type, {ifname: verdict})


def _canon_rule(expr):
    return json.dumps(expr, sort_keys=True, separators=(',', ':'))


def _scalar(kind, value):
    if isinstance(value, int):
        return value
    if kind == 'ipv4_addr':
        return int(ipaddress.IPv4Address(value))
    if kind == 'ipv6_addr':
        return int(ipaddress.IPv6Address(value))
    if kind == 'ether_addr':
        return M.parse_mac(value)
    return int(value, 0)


def _component(kind, value):
    if kind == 'ifname':
        return value
    if isinstance(value, dict) and 'prefix' in value:
        addr = value['prefix']['addr']
        width = 32 if kind == 'ipv4_addr' else 128
        low = _scalar(kind, addr)
        return (low, low | ((1 << (width - value['prefix']['len'])) - 1))
    if isinstance(value, dict) and 'range' in value:
        return (_scalar(kind, value['range'][0]), _scalar(kind, value['range'][1]))
    number = _scalar(kind, value)
    return (number, number)


def _element(types, value):
    if isinstance(value, dict) and 'elem' in value:
        value = value['elem']['val']
    if isinstance(value, dict) and 'concat' in value:
        parts = value['concat']
    else:
        parts = [value]
    return tuple(_component(kind, part) for kind, part in zip(types, parts))


def _verdict(value):
    for name in ('goto', 'jump'):
        if isinstance(value, dict) and name in value:
            return '%s %s' % (name, value[name]['target'])
    return json.dumps(value, sort_keys=True)


def parse_live(text):
    """LiveTable from ``nft -j list table`` output."""
    try:
        items = json.loads(text)['nftables']
    except (ValueError, KeyError, TypeError) as exc:
        raise NftError('cannot read nft -j output: %s' % exc)
    chains, base, sets, maps = {}, {}, {}, {}
    for item in items:
        if 'chain' in item:
            chain = item['chain']
            chains[chain['name']] = []
            if 'hook' in chain:
                base[chain['name']] = (chain.get('type'), chain['hook'], chain.get('prio'), chain.get('policy'))
        elif 'rule' in item:
            rule = item['rule']
            chains.setdefault(rule['chain'], []).append(_canon_rule(rule['expr']))
        elif 'set' in item:
            data = item['set']
            types = data['type'] if isinstance(data['type'], list) else [data['type']]
            try:
                elements = frozenset(_element(types, e) for e in data.get('elem', ()))
            except (ValueError, TypeError, KeyError, M.Unsupported) as exc:
                raise NftError('cannot read the elements of set %s: %s' % (data['name'], exc))
            sets[data['name']] = (tuple(types), tuple(sorted(data.get('flags', ()))), elements)
        elif 'map' in item:
            data = item['map']
            elements = dict((e[0], _verdict(e[1])) for e in data.get('elem', ()))
            maps[data['name']] = (data['type'], data['map'], elements)
    return LiveTable(True, chains, base, sets, maps)


def read_live(runner):
    rc, out, err = runner.run([_nft(), '-j', 'list', 'table', L.FAMILY, L.TABLE])
    if rc != 0:
        if 'No such file or directory' in err:
            return LiveTable()
        raise NftError('nft -j list table %s %s failed: %s' % (L.FAMILY, L.TABLE, err.strip()))
    return parse_live(out)


def read_chain_texts(runner, names):
    """Rule lines of chains, as ``nft list table`` prints them (for --diff)."""
    if not names:
        return {}
    rc, out, _err = runner.run([_nft(), 'list', 'table', L.FAMILY, L.TABLE])
    if rc != 0:
        return {}
    found = {}
    for match in _CHAIN_BLOCK.finditer(out):
        if match.group(1) in names:
            found[match.group(1)] = [line.strip() for line in match.group(2).splitlines()
                                     if line.strip() and not line.strip().startswith(('type ', 'comment '))]
    return found


# ---------------------------------------------------------------------------- plan

@dataclasses.dataclass(frozen=True)
class NftPlan:
    script: str = ''  # '' when nothing changes
    chains_added: tuple = ()
    chains_replaced: tuple = ()
    chains_deleted: tuple = ()
    elements_added: tuple = ()  # (set or map, element line)
    elements_deleted: tuple = ()
    interfaces: tuple = ()  # interfaces whose elements or chains change
    before: tuple = ()  # diff lines
    after: tuple = ()

    @property
    def changed(self):
        return bool(self.script)

    def summary(self):
        return dict(chains_added=len(self.chains_added), chains_replaced=len(self.chains_replaced),
                    chains_deleted=len(self.chains_deleted), elements_added=len(self.elements_added),
                    elements_deleted=len(self.elements_deleted))


def _set_types(nft_set):
    """What nft -j lists as a set's type for our typeof keys."""
    types = []
    for expr in nft_set.key:
        if expr in ('iifname', 'oifname'):
            types.append('ifname')
        elif expr in ('ether saddr', 'ether daddr'):
            types.append('ether_addr')
        elif expr in ('ip saddr', 'ip daddr'):
            types.append('ipv4_addr')
        elif expr in ('ip6 saddr', 'ip6 daddr'):
            types.append('ipv6_addr')
        elif expr in ('th sport', 'th dport'):
            types.append('inet_service')
        else:
            types.append('integer')
    return tuple(types)


def _element_line(nft_set, element):
    return '%s: %s' % (nft_set.name, L.render_element(nft_set, element))


def plan(runner, layout, live, canonical):
    """The difference between ``live`` (LiveTable) and ``layout`` as one nft script."""
    p = 'add'
    fam, table = L.FAMILY, L.TABLE
    wanted = dict((c.name, c) for c in layout.chains)
    bases = layout.bases()
    keys = [chain_key(name, layout) for name in list(wanted) + [b.name for b in bases]]
    canonical.learn(runner, layout, keys)
    head, flush, drop_map, drop_elem, drop_chain, drop_set, add_obj, add_elem, add_rule, add_map = (
        [], [], [], [], [], [], [], [], [], [])
    added, replaced, deleted, interfaces = [], [], [], set()
    elements_added, elements_deleted = [], []
    before, after = [], []
    if not live.exists:
        head.append('%s table %s %s { comment "%s"; }' % (p, fam, table, L.TABLE_COMMENT))

    # Maps (one per base chain) and base chains.
    for base in L.BASE_CHAINS:
        live_map = live.maps.get(base.map)
        desired = dict(next(e for n, e in layout.maps if n == base.map))
        rebuild_base = base in bases and (
            live.base.get(base.name) != ('filter', base.hook, base.priority, 'accept')
            or live.chains.get(base.name) != canonical.chains[chain_key(base.name, layout)])
        if base not in bases and base.name in live.chains:
            flush.append('flush chain %s %s %s' % (fam, table, base.name))
            drop_chain.append('delete chain %s %s %s' % (fam, table, base.name))
            deleted.append(base.name)
        if live_map is None or live_map[:2] != ('ifname', 'verdict'):
            if live_map is not None:
                rebuild_base = True
                drop_set.append('delete map %s %s %s' % (fam, table, base.map))
            add_obj.append('%s map %s %s %s { type ifname : verdict; }' % (p, fam, table, base.map))
            live_elements = {}
        else:
            live_elements = live_map[2]
        for ifname, verdict in sorted(live_elements.items()):
            if desired.get(ifname) != verdict:
                drop_map.append('delete element %s %s %s { "%s" }' % (fam, table, base.map, ifname))
                elements_deleted.append((base.map, '"%s" : %s' % (ifname, verdict)))
                interfaces.add(ifname)
        for ifname, verdict in sorted(desired.items()):
            if live_elements.get(ifname) != verdict:
                add_map.append('%s element %s %s %s { "%s" : %s }' % (p, fam, table, base.map, ifname, verdict))
                elements_added.append((base.map, '"%s" : %s' % (ifname, verdict)))
                interfaces.add(ifname)
        if rebuild_base:
            if base.name in live.chains:
                drop_chain.append('delete chain %s %s %s' % (fam, table, base.name))
                deleted.append(base.name)
            add_rule.extend(L.render_base_chain(base, layout.fail_closed))
            added.append(base.name)
            after.append('chain %s' % base.name)
            after.extend('  ' + r for r in L.base_chain_rules(base, layout.fail_closed))

    # Sets: declarations first (a changed declaration is a new set: its chains go too).
    wanted_sets = dict((s.name, s) for s in layout.sets)
    redeclared = set()
    for name, (types, flags, elements) in live.sets.items():
        nft_set = wanted_sets.get(name)
        if nft_set is None or types != _set_types(nft_set) or flags != (('interval',) if nft_set.interval else ()):
            drop_set.append('delete set %s %s %s' % (fam, table, name))
            if nft_set is not None:
                redeclared.add(name)
            for element in sorted(elements, key=repr):
                elements_deleted.append((name, repr(element)))
                interfaces.add(element[0])
    for name, nft_set in wanted_sets.items():
        live_set = live.sets.get(name)
        if live_set is None or name in redeclared:
            add_obj.extend(L.render_set(nft_set, with_elements=False))
            live_elements = frozenset()
        else:
            live_elements = live_set[2]
        stale = sorted(live_elements - nft_set.elements)
        new = sorted(nft_set.elements - live_elements)
        if stale:
            drop_elem.append(L.render_elements('delete', nft_set, stale))
        if new:
            add_elem.append(L.render_elements(p, nft_set, new))
        for element in stale:
            elements_deleted.append((name, L.render_element(nft_set, element)))
            interfaces.add(element[0])
        for element in new:
            elements_added.append((name, L.render_element(nft_set, element)))
            interfaces.add(element[0])

    # Regular chains.
    base_names = set(b.name for b in L.BASE_CHAINS)
    for name, rules in live.chains.items():
        if name in base_names:
            continue
        chain = wanted.get(name)
        uses_redeclared = any('@%s' % s in r for s in redeclared for r in (chain.rules if chain else ()))
        if chain is None:
            flush.append('flush chain %s %s %s' % (fam, table, name))
            drop_chain.append('delete chain %s %s %s' % (fam, table, name))
            deleted.append(name)
        elif rules != canonical.chains[name] or uses_redeclared:
            flush.append('flush chain %s %s %s' % (fam, table, name))
            add_rule.extend('%s rule %s %s %s %s' % (p, fam, table, name, r) for r in chain.rules)
            replaced.append(name)
    for chain in layout.chains:
        if chain.name not in live.chains:
            add_obj.append('%s chain %s %s %s' % (p, fam, table, chain.name))
            add_rule.extend('%s rule %s %s %s %s' % (p, fam, table, chain.name, r) for r in chain.rules)
            added.append(chain.name)

    changed_texts = read_chain_texts(runner, set(replaced + deleted) - base_names) if (replaced or deleted) else {}
    for name in replaced + [d for d in deleted if d not in base_names]:
        before.append('chain %s' % name)
        before.extend('  ' + r for r in changed_texts.get(name, ['(%d rules)' % len(live.chains.get(name, ()))]))
    for name in replaced + [a for a in added if a not in base_names]:
        after.append('chain %s' % name)
        after.extend('  ' + r for r in wanted[name].rules)
    before.extend('element %s %s' % item for item in elements_deleted)
    after.extend('element %s %s' % item for item in elements_added)

    body = flush + drop_map + drop_elem + drop_chain + drop_set + add_obj + add_elem + add_rule + add_map
    script = '\n'.join(head + body) + '\n' if (head or body) else ''
    return NftPlan(script, tuple(added), tuple(replaced), tuple(deleted), tuple(elements_added),
                   tuple(elements_deleted), tuple(sorted(i for i in interfaces if isinstance(i, str))),
                   tuple(before), tuple(after))


def apply(runner, nft_plan):
    if not nft_plan.changed:
        return
    rc, _out, err = runner.run([_nft(), '-f', '-'], nft_plan.script, kind='write')
    if rc != 0:
        raise NftError('nft refused the guest NIC filter update (nothing was changed): %s' % err.strip())


def remove_plan(live):
    """Script that deletes our table ('' when there is none)."""
    if not live.exists:
        return NftPlan()
    summary = 'table %s %s (%d chains, %d sets)' % (L.FAMILY, L.TABLE, len(live.chains), len(live.sets))
    return NftPlan('delete table %s %s\n' % (L.FAMILY, L.TABLE), chains_deleted=tuple(sorted(live.chains)),
                   before=(summary,))


def diff_dict(nft_plan):
    """Ansible diff dict (lines before/after) for a plan with changes, else None."""
    if not nft_plan.changed:
        return None
    return {'before_header': 'table %s %s (live)' % (L.FAMILY, L.TABLE),
            'after_header': 'table %s %s (desired)' % (L.FAMILY, L.TABLE),
            'before': '\n'.join(nft_plan.before) + ('\n' if nft_plan.before else ''),
            'after': '\n'.join(nft_plan.after) + ('\n' if nft_plan.after else '')}


# ---------------------------------------------------------------------------- the whole NIC stage

@dataclasses.dataclass(frozen=True)
class NicSyncResult:
    """Outcome of :func:`sync_nics`: ``changed`` (kernel), the nft plan, the xtables plan of NICs kept
    there (or None), Ansible ``diff`` dicts, ``writes`` (argv run to write), per-NIC ``nics``
    (:class:`nwfilter_nftables.NicLayout`), ``warnings`` and the desired ``layout``.  After the
    incremental path (:mod:`nft_nics_fast`) ``layout`` is None and ``nics`` holds the changed NICs only."""

    changed: bool
    nft_plan: NftPlan
    xt_plan: object = None
    diff: tuple = ()
    writes: tuple = ()
    nics: tuple = ()
    warnings: tuple = ()
    layout: object = None
    interfaces_changed: tuple = ()


def sync_nics(runner, bindings, filters, engine=None, state_dir=None, check_mode=False, fail_closed=(),
              conntrack=None, compile_cache=None, check_xtables=None, canonical=None):
    """Make ``table bridge hnf_nic`` (and, through ``engine``, the xtables rules of NICs that must stay
    there) match ``bindings``.  The caller holds the state_dir lock.

    ``engine``: an :class:`xtables_engine.XtablesEngine` for libvirt's nwfilter chains; its plan also
    removes those chains of NICs that moved to nftables.  Without it, NICs that need xtables fail.
    ``check_xtables``: called with the live xtables texts before anything is planned (may raise).
    Order: nftables first, then xtables, so a NIC moving between layouts is filtered by one or both,
    never by none.
    """
    if canonical is None:
        canonical = Canonical(state_dir)
    if conntrack is None:
        conntrack = probe_bridge_conntrack(runner, canonical)
    fail_closed = check_patterns(fail_closed)
    writes_before = len(runner.writes())
    # The incremental path: nothing committed since our last run, only set/map elements differ.
    snapshot = keys = generation = None
    context = {'tool': canonical.tool, 'conntrack': conntrack, 'fail_closed': list(fail_closed)}
    if state_dir and compile_cache is not None and (engine is None or all(
            b.name == 'nft' for b in engine.backends.values())):
        snapshot = FAST.Snapshot(state_dir)
        context['where'] = FAST.identity(runner)
        generation = FAST.genid(runner) if context['where'] else None
        keys = dict((b.interface, compile_cache.key(b, filters, conntrack)) for b in bindings)
        fast = _fast(runner, snapshot, generation, context, bindings, keys, filters, conntrack, compile_cache,
                     check_mode)
        if fast is not None:
            return dataclasses.replace(fast, writes=tuple(runner.writes()[writes_before:]))
    layout = L.compile_layout(bindings, filters, conntrack=conntrack, fail_closed=fail_closed,
                              cache=compile_cache)
    warnings = tuple(w for nic in layout.nics for w in nic.warnings)
    if layout.xtables.tables and engine is None:
        raise NftError('interfaces %s need the xtables layout, which is not available here'
                       % ', '.join(n.interface for n in layout.nics if n.mode != L.NFT))
    xt_plan = None
    if engine is not None:
        texts = engine.read_texts()
        if check_xtables is not None:
            check_xtables(texts)
        xt_plan = engine.plan(layout.xtables, texts)
    live = read_live(runner)
    nft_plan = plan(runner, layout, live, canonical)
    if not check_mode:
        apply(runner, nft_plan)
        if xt_plan is not None:
            engine.commit(xt_plan)
        canonical.save(set(chain_key(c.name, layout) for c in layout.chains)
                       | set(chain_key(b.name, layout) for b in layout.bases()))
        if snapshot is not None:
            # Record only when the table is now exactly the layout and our write was the only commit.
            after = FAST.genid(runner)
            commits = 1 if nft_plan.changed else 0
            if generation is not None and after == generation + commits and not layout.xtables.tables and \
                    not (xt_plan is not None and xt_plan.changed):
                snapshot.record(after, context, keys, layout)
            else:
                snapshot.forget()
    diffs = []
    nft_diff = diff_dict(nft_plan)
    if nft_diff:
        diffs.append(nft_diff)
    if xt_plan is not None and xt_plan.changed:
        diffs.extend(plan_diff(xt_plan))
    changed = nft_plan.changed or bool(xt_plan is not None and xt_plan.changed)
    writes = tuple(runner.writes()[writes_before:])
    return NicSyncResult(changed, nft_plan, xt_plan, tuple(diffs), writes, layout.nics, warnings, layout,
                         nft_plan.interfaces)


def _fast(runner, snapshot, generation, context, bindings, keys, filters, conntrack, compile_cache, check_mode):
    """A NicSyncResult from the incremental path, or None."""

    def compile_one(binding):
        key = keys[binding.interface]
        result = compile_cache.get(key)
        if result is None:
            result = L.compile_nic(binding.interface, binding.mac, binding.filter, binding.parameters, filters,
                                   conntrack)
            compile_cache.put(key, result)
        return result

    made = FAST.fast_plan(snapshot, generation, context, bindings, keys, compile_one)
    if made is None:
        return None
    script, changes = made
    nft_plan = NftPlan(script, elements_added=changes['elements_added'], elements_deleted=changes['elements_deleted'],
                       interfaces=changes['interfaces'],
                       before=tuple('element %s %s' % item for item in changes['elements_deleted']),
                       after=tuple('element %s %s' % item for item in changes['elements_added']))
    if script and not check_mode:
        apply(runner, nft_plan)
        after = FAST.genid(runner)
        if after == generation + 1:
            FAST.write(snapshot, FAST.updated(snapshot, after, changes))
        else:
            snapshot.forget()
    # Only the NICs that changed (the others' entries stay packed in the snapshot).
    entries = changes['entries']
    nics = tuple(L.NicLayout(name, entry['m'], '', tuple(tuple(d) for d in entry['d']), tuple(entry['w']))
                 for name, entry in sorted(entries.items()))
    diff = diff_dict(nft_plan)
    return NicSyncResult(bool(script), nft_plan, None, (diff,) if diff else (), (), nics,
                         tuple(w for nic in nics for w in nic.warnings), None, nft_plan.interfaces)


_PATTERN = re.compile(r'^[A-Za-z0-9_.:@-]{1,15}\*?$')


def check_patterns(patterns):
    """Fail-closed interface patterns: a name, or a prefix ending in '*' (nft's wildcard)."""
    for pattern in patterns:
        if not isinstance(pattern, str) or not _PATTERN.match(pattern) or pattern == '*':
            raise NftError('invalid fail-closed interface pattern %r: up to 15 characters of [A-Za-z0-9_.:@-], '
                           'optionally ending in *' % (pattern,))
    return tuple(patterns)


def remove_table(runner, check_mode=False):
    """Delete our table (when the host goes back to the iptables layout); returns the plan."""
    removal = remove_plan(read_live(runner))
    if not check_mode:
        apply(runner, removal)
    return removal
