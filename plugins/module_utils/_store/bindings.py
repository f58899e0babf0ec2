# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest NIC filter bindings persisted in ``state_dir``.

Layout (default state_dir ``/etc/hypervisor-netfilter``)::

    bindings.json   {"version": 1, "bindings": [{interface, mac, filter, parameters}, ...]}

One file for all bindings, in the order they were first stored (libvirt
instantiates in that order, and the order of the ebtables
PREROUTING/POSTROUTING jumps follows it); rebinding an interface keeps its
place.  One file, because a call that binds 1,000 NICs must not pay 1,000
fsyncs (measured: 4 ms each here).  It is written atomically (temporary
file in the same directory, fsync, ``os.replace``, fsync of the directory): a
reader sees the old or the new set of bindings, never a torn one.

Interface names become file names and xtables arguments, so they are checked
like Linux ``dev_valid_name`` does, with a conservative character set on top:
1-15 characters of ``[A-Za-z0-9_.@-]``, not ``.``/``..``, not starting with
``-`` (option-like).  ``/``, ``:``, blanks, shell metacharacters and a
trailing ``+`` (an xtables wildcard) are refused with a message that says which.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError

DEFAULT_STATE_DIR = '/etc/hypervisor-netfilter'
BINDINGS_FILE = 'bindings.json'
IFNAMSIZ = 16  # includes the terminating NUL: at most 15 characters
FORMAT_VERSION = 1

_IFNAME_CHARS = re.compile(r'^[A-Za-z0-9_.@-]+$')
_MAC = re.compile(r'^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$')
_PARAM_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def validate_interface(name, where='interface'):
    """Return ``name`` if it is a safe interface name, else raise BindingError saying why."""
    if not isinstance(name, str) or not name:
        raise BindingError('%s: an interface name must be a non-empty string, got %r' % (where, name))
    if len(name) >= IFNAMSIZ:
        raise BindingError('%s %r: %d characters; Linux allows at most %d'
                           % (where, name, len(name), IFNAMSIZ - 1))
    if name in ('.', '..'):
        raise BindingError('%s %r: not a valid interface name' % (where, name))
    if name.endswith('+'):
        raise BindingError("%s %r: a trailing '+' is a wildcard in xtables, not an interface" % (where, name))
    if not _IFNAME_CHARS.match(name):
        bad = sorted(set(c for c in name if not re.match(r'[A-Za-z0-9_.@-]', c)))
        raise BindingError('%s %r: characters %s are not allowed (use letters, digits, _ . @ -)'
                           % (where, name, ', '.join(repr(c) for c in bad)))
    if name.startswith('-'):
        raise BindingError("%s %r: must not start with '-'" % (where, name))
    return name


def normalise_mac(mac, where='mac'):
    if not isinstance(mac, str) or not _MAC.match(mac.strip()):
        raise BindingError('%s: %r is not a MAC address like 52:54:00:12:34:56' % (where, mac))
    return mac.strip().lower()


def normalise_parameters(parameters, where='parameters'):
    """``dict name -> str | list of str`` into ``((name, (value, ...)), ...)`` in given order."""
    if parameters is None:
        return ()
    if isinstance(parameters, (list, tuple)):
        items = parameters
    elif isinstance(parameters, dict):
        items = parameters.items()
    else:
        raise BindingError('%s must be a dict of name: value or list of values, got %s'
                           % (where, type(parameters).__name__))
    result = []
    seen = set()
    for name, value in items:
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise BindingError('%s: %r is not a valid parameter name' % (where, name))
        if name in seen:
            raise BindingError('%s: parameter %s given twice' % (where, name))
        seen.add(name)
        values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not values:
            raise BindingError('%s: parameter %s has an empty list of values' % (where, name))
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise BindingError('%s: parameter %s: value %r must be a string' % (where, name, item))
            if _CONTROL.search(str(item)):
                # A line break would end a rule in the *-restore text: never let one through.
                raise BindingError('%s: parameter %s: value %r contains control characters' % (where, name, item))
        result.append((name, tuple(str(v) for v in values)))
    return tuple(result)


@dataclasses.dataclass(frozen=True)
class StoredBinding:
    interface: str
    mac: str
    filter: str
    parameters: tuple = ()  # ((name, (value, ...)), ...)
    seq: int = 0

    @property
    def portdev(self):
        return self.interface

    def describe(self):
        """One line for diffs: interface, mac, filter and parameters."""
        params = ' '.join('%s=%s' % (name, ','.join(values)) for name, values in self.parameters)
        return ' '.join(part for part in (self.interface, self.mac, self.filter, params) if part)

    def parameters_dict(self):
        """Parameters as module output: a str for one value, a list for several."""
        return dict((name, values[0] if len(values) == 1 else list(values)) for name, values in self.parameters)

    def same_binding(self, other):
        """Equal apart from the storage order."""
        return (self.interface, self.mac, self.filter, self.parameters) == \
            (other.interface, other.mac, other.filter, other.parameters)

    def to_dict(self):
        return {
            'interface': self.interface,
            'mac': self.mac,
            'filter': self.filter,
            'parameters': [[name, list(values)] for name, values in self.parameters],
        }


def make_binding(interface, mac, filter_name, parameters=None, seq=0, where=None):
    """Validated :class:`StoredBinding` from module-style input."""
    where = where or 'binding %s' % (interface,)
    validate_interface(interface, where='%s: interface' % where)
    if not isinstance(filter_name, str) or not filter_name:
        raise BindingError('%s: filter must be a non-empty filter name' % where)
    return StoredBinding(interface, normalise_mac(mac, where='%s: mac' % where), filter_name,
                         normalise_parameters(parameters, where='%s: parameters' % where), seq)


def from_filterbinding(binding, seq=0):
    """From an :class:`nwfilter_parse.Binding` (a parsed ``<filterbinding>``)."""
    return make_binding(binding.portdev, binding.mac, binding.filter, tuple(binding.parameters), seq,
                        where='filterbinding %s' % binding.portdev)


def bindings_path(state_dir):
    return os.path.join(state_dir, BINDINGS_FILE)


def _parse_entry(path, index, data):
    where = '%s: binding #%d' % (path, index + 1)
    try:
        return make_binding(data['interface'], data['mac'], data['filter'],
                            list(data.get('parameters') or []), index + 1, where=where)
    except (ValueError, KeyError, TypeError) as exc:
        raise BindingError('%s is damaged: %s' % (where, exc))


def load_bindings(state_dir):
    """Every stored binding, in stored order (``seq`` is the 1-based position)."""
    path = bindings_path(state_dir)
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return ()
        raise BindingError('cannot read stored bindings %s: %s' % (path, exc))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BindingError('stored bindings %s are damaged: %s' % (path, exc))
    if not isinstance(data, dict) or data.get('version') != FORMAT_VERSION or \
            not isinstance(data.get('bindings'), list):
        raise BindingError('stored bindings %s: unknown format (version %r)'
                           % (path, data.get('version') if isinstance(data, dict) else None))
    found = tuple(_parse_entry(path, i, entry) for i, entry in enumerate(data['bindings']))
    seen = set()
    for binding in found:
        if binding.interface in seen:
            raise BindingError('stored bindings %s hold interface %s twice' % (path, binding.interface))
        seen.add(binding.interface)
    return found


def binding_filters(state_dir):
    """``(interface, top-level filter)`` pairs (used by nwfilter_store.users_of)."""
    return tuple((b.interface, b.filter) for b in load_bindings(state_dir))


def next_seq(bindings):
    return max([b.seq for b in bindings] + [0]) + 1


def save_bindings(state_dir, bindings):
    """Replace the stored bindings by ``bindings`` (in this order), atomically."""
    path = bindings_path(state_dir)
    text = json.dumps({'version': FORMAT_VERSION, 'bindings': [b.to_dict() for b in bindings]},
                      indent=1, sort_keys=True) + '\n'
    atomic_write(path, text)
    return path


def save_binding(state_dir, binding):
    """Store one binding (replacing the one of its interface in place, else appended)."""
    stored = list(load_bindings(state_dir))
    for index, old in enumerate(stored):
        if old.interface == binding.interface:
            stored[index] = binding
            break
    else:
        stored.append(binding)
    return save_bindings(state_dir, stored)


def remove_binding(state_dir, interface):
    """Delete the stored binding of ``interface``; return whether there was one."""
    validate_interface(interface)
    stored = load_bindings(state_dir)
    kept = [b for b in stored if b.interface != interface]
    if len(kept) == len(stored):
        return False
    save_bindings(state_dir, kept)
    return True


# --------------------------------------------------------------------------
# Applying the stored bindings to the host

def interface_exists(name):
    return os.path.exists(os.path.join('/sys/class/net', name))


@dataclasses.dataclass(frozen=True)
class HostSyncResult:
    changed: bool  # kernel or store changed (or would, in check mode)
    kernel_changed: bool
    bindings: tuple  # StoredBinding after the run, stored order
    added: tuple = ()  # interfaces newly bound
    updated: tuple = ()  # interfaces rebound with other mac/filter/parameters
    removed: tuple = ()  # interfaces unbound
    skipped: tuple = ()  # interfaces whose bindings were not applied (interface missing)
    interfaces_changed: tuple = ()  # interfaces whose own chains were (re)written or removed
    sync: object = None  # xtables_apply.SyncResult
    warnings: tuple = ()
    previous: tuple = ()  # StoredBinding before the run, stored order


def load_host_filters(state_dir):
    """Built-in filters overlaid by the ones nwfilter defined in ``state_dir``."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import filters as nwfilter_store
    return nwfilter_store.load_filters(state_dir)


def compile_bindings(bindings, filters, cache=None):
    """``[(binding, Ruleset)]`` in the given order; compiler errors name the interface.

    With a :class:`CompiledCache`, bindings whose inputs (binding and every
    filter of its tree) are unchanged are taken from it instead of compiled.
    """
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
    out = []
    for binding in bindings:
        key = cache.key(binding, filters) if cache is not None else None
        ruleset = cache.get(key) if key is not None else None
        if ruleset is None:
            ruleset = compile_binding(binding.interface, binding.mac, binding.filter, binding.parameters, filters)
            if key is not None:
                cache.put(key, ruleset)
        out.append((binding, ruleset))
    return out


def upsert_warnings(bindings, filters):
    """Warnings about parameters of ``bindings`` that are ignored (libvirt drops
    them too and no rule uses them); a used one raises instead."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import parameter_warnings
    found = []
    for binding in bindings:
        if binding.filter in filters:
            found.extend(parameter_warnings(binding.interface, binding.filter, filters, binding.parameters))
    return found


def ruleset_to_data(ruleset):
    return [[t.family, t.name, [[c.name, [list(r) for r in c.rules]] for c in t.chains],
             [[h.chain, list(h.args), h.position] for h in t.hooks]] for t in ruleset.tables]


def ruleset_from_data(data):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Chain, Hook, Ruleset, Table
    return Ruleset(tuple(
        Table(family, name, tuple(Chain(c, tuple(tuple(r) for r in rules)) for c, rules in chains),
              tuple(Hook(chain, tuple(args), position) for chain, args, position in hooks))
        for family, name, chains, hooks in data))


class CompiledCache:
    """Compiled rulesets of bindings in ``state_dir/cache/compiled.json``.

    The key digests the compiler version, the binding and the definition of
    every filter in the binding's tree (missing references included), so a
    redefined filter or a changed parameter is a miss.  Compiling 1,000
    clean-traffic bindings takes ~0.7 s here; loading them from the cache ~0.1 s.
    """

    VERSION = 1

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, 'cache', 'compiled.json') if state_dir else None
        self.entries = {}
        self.used = {}
        self.dirty = False
        self._tree_digests = {}
        if self.path and os.path.exists(self.path):
            try:
                with open(self.path, encoding='utf-8') as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                data = None  # a damaged cache only costs a recompilation
            if isinstance(data, dict) and data.get('version') == self.VERSION:
                self.entries = data.get('entries') or {}

    def _tree_digest(self, filter_name, filters):
        digest = self._tree_digests.get(filter_name)
        if digest is None:
            from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import filter_tree
            hasher = hashlib.sha256()
            for name in filter_tree(filter_name, filters):
                hasher.update(repr(filters[name]).encode('utf-8'))
                for ref in filters[name].references:
                    if ref not in filters:
                        hasher.update(('missing:' + ref).encode('utf-8'))
            if filter_name not in filters:
                hasher.update(('missing:' + filter_name).encode('utf-8'))
            digest = self._tree_digests[filter_name] = hasher.hexdigest()
        return digest

    def key(self, binding, filters):
        from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import COMPILER_VERSION
        text = repr((COMPILER_VERSION, binding.interface, binding.mac, binding.filter, binding.parameters,
                     self._tree_digest(binding.filter, filters)))
        return hashlib.sha256(text.encode('utf-8')).hexdigest()

    def get(self, key):
        data = self.entries.get(key)
        if data is None:
            return None
        self.used[key] = data
        return ruleset_from_data(data)

    def put(self, key, ruleset):
        self.used[key] = ruleset_to_data(ruleset)
        self.dirty = True

    def save(self):
        if not self.path or (not self.dirty and len(self.used) == len(self.entries)):
            return
        atomic_write(self.path, json.dumps({'version': self.VERSION, 'entries': self.used}, separators=(',', ':')),
                     durable=False)


def _chain_owner_map(compiled):
    """chain name -> interface, for the chains that belong to one NIC only."""
    counts = {}
    owner = {}
    for binding, ruleset in compiled:
        for table in ruleset.tables:
            for chain in table.chains:
                key = (table.family, table.name, chain.name)
                counts[key] = counts.get(key, 0) + 1
                owner[key] = binding.interface
    return dict((k, v) for k, v in owner.items() if counts[k] == 1)


def _changed_interfaces(plan, owners):
    """Interfaces whose own chains, or the hooks that jump to them, change in ``plan``."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import split_words, rule_target
    found = []

    def note(interface):
        if interface and interface not in found:
            found.append(interface)

    for fam in plan.families:
        for change in fam.chain_changes:
            interface = owners.get((fam.family, change.table, change.chain))
            if interface is None and change.action == 'delete':
                interface = _interface_of_chain(fam.family, change.chain)
            note(interface)
        for hook in fam.hook_changes:
            target = rule_target(split_words(hook.rule))
            note(owners.get((fam.family, hook.table, target)) or _interface_of_chain(fam.family, target or ''))
    return tuple(found)


_CHAIN_INTERFACE = (re.compile(r'^libvirt-[IOJP]-(.+)$'), re.compile(r'^(?:F[IOJP]|H[IJ])-(.+)$'))


def _interface_of_chain(family, chain):
    """The interface a root chain is named after (sub-chains append "-<name>": ambiguous)."""
    for pattern in _CHAIN_INTERFACE:
        match = pattern.match(chain)
        if match and (family != 'eb' or chain.startswith('libvirt-')):
            return match.group(1)
    return None


def sync_host(state_dir, engine, upserts=(), removals=(), exclusive=False, check_mode=False,
              filters=None, skip_missing_interfaces=True, interface_exists_fn=None,
              lock_timeout=60):
    """Update the stored bindings and make the host's rules match all of them.

    ``upserts``: StoredBinding objects to create or update (seq ignored);
    ``removals``: interfaces to unbind; ``exclusive``: also unbind every
    stored interface not in ``upserts``.  One read of the live state and at
    most one restore per family, under the state_dir lock.  The bindings
    file is written only after the kernel accepted the rules, so a failed run
    leaves both the kernel and the store as they were.
    """
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import (
        FamilyPlan, Plan, SyncResult, plan_diff)

    if interface_exists_fn is None:
        interface_exists_fn = interface_exists
    seen = set()
    for binding in upserts:
        if binding.interface in seen:
            raise BindingError('interface %s is listed twice' % binding.interface)
        seen.add(binding.interface)
    overlap = sorted(seen & set(removals))
    if overlap:
        raise BindingError('interfaces %s are both bound and unbound in one call' % ', '.join(overlap))

    with state_lock(state_dir, lock_timeout, exclusive=not check_mode, create=not check_mode):
        stored = load_bindings(state_dir)
        by_interface = dict((b.interface, b) for b in stored)
        seq = next_seq(stored)
        added, updated, removed = [], [], []
        result = dict(by_interface)
        for binding in upserts:
            old = by_interface.get(binding.interface)
            if old is None:
                result[binding.interface] = dataclasses.replace(binding, seq=seq)
                seq += 1
                added.append(binding.interface)
            elif not old.same_binding(binding):
                result[binding.interface] = dataclasses.replace(binding, seq=old.seq)
                updated.append(binding.interface)
        unbind = set(removals)
        if exclusive:
            unbind |= set(by_interface) - seen
        for interface in sorted(unbind):
            if interface in result:
                del result[interface]
                removed.append(interface)
        final = tuple(dataclasses.replace(b, seq=i + 1) for i, b in
                      enumerate(sorted(result.values(), key=lambda b: (b.seq, b.interface))))

        warnings = []
        active = []
        skipped = []
        for binding in final:
            if skip_missing_interfaces and not interface_exists_fn(binding.interface):
                skipped.append(binding.interface)
                warnings.append('interface %s does not exist; its binding (filter %s) is stored but not applied'
                                % (binding.interface, binding.filter))
            else:
                active.append(binding)
        if filters is None:
            filters = load_host_filters(state_dir)
        compiled_cache = CompiledCache(state_dir)
        warnings.extend(upsert_warnings(upserts, filters))
        # Bindings given now are compiled even when their interface is missing: bad input fails here.
        active_names = set(b.interface for b in active)
        compile_bindings([b for b in upserts if b.interface not in active_names], filters, compiled_cache)

        # The one read of the live state runs in the background while we compile.
        reads = engine.start_reads()
        verified = VerifiedState(state_dir, engine.ownership.name)
        desired_key = _desired_key(active, filters, compiled_cache, engine)
        compiled = desired = None
        try:
            if not verified.knows(desired_key):
                # The desired state is new: the full diff is needed whatever the live state is.
                compiled = compile_bindings(active, filters, compiled_cache)
                desired = merge_rulesets([ruleset for _b, ruleset in compiled])
        except BaseException:
            engine.cancel_reads(reads)
            raise
        live_texts = engine.finish_reads(reads)
        live_digest = engine.live_digest(live_texts)
        writes_before = len(engine.runner.writes())
        fast_path = verified.matches(desired_key, live_digest)
        if fast_path:
            # Byte-identical live state and identical desired state as a run that found
            # nothing to change: skip compiling, merging and diffing (the no-op fast path).
            compiled = []
            plan = Plan(tuple(FamilyPlan(f, engine.backends[f].name) for f in engine.ownership.families()))
        else:
            if desired is None:
                compiled = compile_bindings(active, filters, compiled_cache)
                desired = merge_rulesets([ruleset for _b, ruleset in compiled])
            plan = engine.plan(desired, live_texts)
        if not check_mode:
            if plan.changed:
                engine.apply(plan)
            else:
                verified.record(desired_key, live_digest)
            if added or updated or removed:
                save_bindings(state_dir, final)
            if not fast_path:
                # The caches keep what this run used: only a run that compiled and diffed knows.
                engine.cache.save()
                compiled_cache.save()
        sync = SyncResult(plan.changed, plan, tuple(plan_diff(plan)),
                          tuple(engine.runner.writes()[writes_before:]))
        return HostSyncResult(
            changed=bool(plan.changed or added or updated or removed),
            kernel_changed=plan.changed,
            bindings=final, added=tuple(added), updated=tuple(updated), removed=tuple(removed),
            skipped=tuple(skipped), interfaces_changed=_changed_interfaces(plan, _chain_owner_map(compiled)),
            sync=sync, warnings=tuple(warnings), previous=tuple(stored))


def _desired_key(active, filters, compiled_cache, engine):
    """Digest of everything the desired rules depend on: bindings applied (in order) and their filter trees."""
    hasher = hashlib.sha256(repr((engine.ownership.name, sorted(
        (f, b.tool_id) for f, b in engine.backends.items()))).encode('utf-8'))
    for binding in active:
        hasher.update(compiled_cache.key(binding, filters).encode('ascii'))
    return hasher.hexdigest()


class VerifiedState:
    """The last (desired state, live dump) pair a real run found to need no change.

    Kept in ``state_dir/cache/verified-<owner>.json``.  When both digests
    match again, the live rules are byte-identical to rules already verified
    against the same desired rules, so the diff is skipped.  Any difference
    (a drift, an admin rule, a new binding) just takes the full path.
    """

    def __init__(self, state_dir, owner):
        self.path = os.path.join(state_dir, 'cache', 'verified-%s.json' % owner) if state_dir else None
        self.data = {}
        if self.path and os.path.exists(self.path):
            try:
                with open(self.path, encoding='utf-8') as handle:
                    self.data = json.load(handle)
            except (OSError, ValueError):
                self.data = {}

    def knows(self, desired_key):
        return bool(self.data) and self.data.get('desired') == desired_key

    def matches(self, desired_key, live_digest):
        return bool(self.data) and self.data.get('desired') == desired_key and self.data.get('live') == live_digest

    def record(self, desired_key, live_digest):
        if not self.path or self.matches(desired_key, live_digest):
            return
        atomic_write(self.path, json.dumps({'desired': desired_key, 'live': live_digest}), durable=False)


def rebuild_filter_users(state_dir, filter_name, engine, filters=None, check_mode=False, **kwargs):
    """After ``filter_name`` was (re)defined: re-apply every stored binding.

    Returns ``(rebuilt, HostSyncResult)``; ``rebuilt`` lists the stored
    interfaces whose filter tree contains ``filter_name`` (directly or through
    filterrefs) and that were applied (not skipped).  Only chains whose
    rules differ are rewritten, so the other NICs are not touched.  Call it
    with the filter already saved (or ``filters`` holding the new definition).
    """
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import reference_closure
    if filters is None:
        filters = load_host_filters(state_dir)
    result = sync_host(state_dir, engine, filters=filters, check_mode=check_mode, **kwargs)
    users = [b.interface for b in result.bindings
             if filter_name in reference_closure(b.filter, filters) and b.interface not in result.skipped]
    return tuple(users), result
