# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a desired :class:`~ruleset.Ruleset` to the live xtables of a host.

Generic engine shared by ``guest_nic_filter`` (libvirt's nwfilter layout) and
the virtual-network helpers (libvirt's ``LIBVIRT_*`` layout).

API
===

``Ownership(name, chains)``
    What is ours.  ``chains`` is a tuple of ``(family, table, regex)``; a chain
    of that table whose whole name matches the regex is *owned*: it is ours
    entirely, compared as an ordered rule list, flushed and refilled when it
    differs, deleted when no longer desired.  A rule in a built-in chain
    (INPUT, FORWARD, PREROUTING, ...) whose ``-j``/``-g`` target is an owned
    chain is one of our *hooks*.  Everything else (including an admin's own
    chain that jumps into ours, other software's chains) is never
    written; its text and order stay byte-identical.  ``NWFILTER_OWNERSHIP``
    describes libvirt's nwfilter chains.

``XtablesEngine(ownership, backend='auto', ebtables_backend='auto', state_dir=None, runner=None, lock_timeout=60)``
    ``backend`` (iptables/ip6tables) and ``ebtables_backend`` are ``auto``
    (follow where the host's ``iptables``/``ebtables`` command points),
    ``nft`` or ``legacy``.  ``state_dir`` holds our lock file and the cache of
    canonical rule spellings; without it nothing is cached or locked.
    ``runner`` is a :class:`xtables_backend.CommandRunner` (records calls).

``engine.sync(desired, check_mode=False) -> SyncResult``
    Lock, read, diff, and (unless ``check_mode``) apply.  ``desired`` holds
    all of our rules for the host (e.g. every stored binding merged);
    owned chains that are live but not desired are removed.  Raises
    :class:`ApplyError` (bad desired ruleset, nothing read or written),
    :class:`xtables_backend.CommandError` (a tool failed; ``stderr`` is the
    tool's text; the family's previous ruleset is intact because each family
    is one restore transaction) or :class:`locking.LockTimeout`.

``engine.plan(desired) -> Plan`` / ``engine.apply(plan)``
    The two halves of ``sync`` without the lock, for callers that hold it.

``SyncResult``: ``changed`` (bool), ``plan`` (:class:`Plan`), ``diff`` (list
of Ansible diff dicts, one per family with changes: ``before``/``after`` are
the changed chains' rule lines), ``writes`` (argv lists run to write: empty
when nothing changed), ``timings`` (seconds per phase).

``Plan.families``: tuple of :class:`FamilyPlan` (``family``, ``backend``,
``chain_changes``, ``hook_changes``, ``restore_text``); ``Plan.changed``.

How it works
============

1. One ``*-save`` per family we own tables in (stdout only), parsed by
   :mod:`xtables_live` into save-spelled rule texts.
2. The save spelling differs from libvirt's command-line spelling
   (``-p 0x0800`` is saved as ``-p IPv4``, ``-p tcp --dport 22`` as
   ``-p tcp -m tcp --dport 22``, ...).  Rather than re-implementing each
   tool's printer, desired chains are *canonicalised by the real tools*:
   loaded into a throwaway network namespace with the same backend and read
   back with ``*-save`` (:func:`xtables_backend.scratch_save`).  Results are
   cached in ``state_dir`` keyed by (tool build, family, table, rule text), so
   a no-op run costs one ``*-save`` per family plus hashing.  Only chains that
   exist live need canonical text to decide; the spelling of chains we
   create is learnt from one more ``*-save`` right after the restore (see
   :meth:`XtablesEngine._learn`).  An invalid desired rule that goes through
   the scratch namespace fails there, before the host is touched.
3. Diff per owned chain (whole ordered rule list; ebtables chain policy must
   be ACCEPT) and per hook.  Hooks with a ``position`` (libvirt's
   ``-I FORWARD 1..3``, ``-I INPUT 1``) must be present once and in the
   desired relative order; otherwise all of that chain's positioned hooks
   are deleted and re-inserted at their positions.  Appended hooks
   (``-A PREROUTING -i vnet0 -j libvirt-I-vnet0``) must be present once.
4. One ``*-restore --noflush`` per family with changes: ``-D`` stale hooks,
   declare (= create or flush) every changed and every obsolete chain, refill
   the changed ones, ``-X`` the obsolete ones, then insert/append hooks.  The
   kernel applies the whole text or nothing, so a NIC is never unfiltered
   while its chains are replaced.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import time

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import (
    BUILTIN_CHAINS, FAMILIES, Ruleset, chain_declaration, quote_arg)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_tools import (
    CommandError, CommandRunner, resolve_backends, scratch_save)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import (
    parse_save, rule_target, text_target)

CACHE_VERSION = 1
FAMILY_LABEL = {'eb': 'ebtables', 'ip': 'iptables', 'ip6': 'ip6tables'}

# libvirt's nwfilter objects: ebtables nat chains of a NIC (libvirt-I/O-<dev>,
# I-/O-<dev>-<chain>, and the temporary J/P names of an interrupted swap) and
# the iptables/ip6tables filter chains FI/FO/HI-<dev> (FJ/FP/HJ temporary)
# plus the shared libvirt-in/out/in-post/host-in chains.  Sub-chains always
# have two dashes, so an admin's "I-accept" is not taken for ours.
_NWFILTER_EB = r'libvirt-[IOJP]-.+|[IOJP]-.+-.+'
_NWFILTER_IP = r'libvirt-(in|out|in-post|host-in)|(F[IOJP]|H[IJ])-.+'


_COUNT_NAME = {'create': 'chains_created', 'replace': 'chains_replaced', 'delete': 'chains_deleted'}
_COUNTERS = re.compile(r'^(:\S+ \S+) \[\d+:\d+\]$', re.M)
_COMMENT_LINES = re.compile(r'^#.*\n?', re.M)


class ApplyError(NetfilterError):
    """The desired ruleset cannot be applied as given (nothing was changed)."""


@dataclasses.dataclass(frozen=True)
class Ownership:
    name: str
    chains: tuple  # ((family, table, regex), ...)

    def __post_init__(self):
        compiled = {}
        for family, table, pattern in self.chains:
            if family not in FAMILIES:
                raise ApplyError('ownership %s: unknown family %r' % (self.name, family))
            compiled[(family, table)] = re.compile(r'(?:%s)\Z' % pattern)
        object.__setattr__(self, '_compiled', compiled)

    def families(self):
        return tuple(f for f in FAMILIES if any(k[0] == f for k in self._compiled))

    def tables(self, family):
        return tuple(t for (f, t) in self._compiled if f == family)

    def owns(self, family, table, chain):
        pattern = self._compiled.get((family, table))
        return bool(pattern is not None and chain not in BUILTIN_CHAINS and pattern.match(chain))


NWFILTER_OWNERSHIP = Ownership('nwfilter', (
    ('eb', 'nat', _NWFILTER_EB),
    ('ip', 'filter', _NWFILTER_IP),
    ('ip6', 'filter', _NWFILTER_IP),
))


@dataclasses.dataclass(frozen=True)
class ChainChange:
    table: str
    chain: str
    action: str  # 'create', 'replace' or 'delete'
    before: tuple  # live rules, save spelling
    after: tuple  # desired rules: save spelling when known, else restore spelling


@dataclasses.dataclass(frozen=True)
class HookChange:
    table: str
    chain: str
    action: str  # 'insert', 'append' or 'delete'
    rule: str  # rule text (save spelling for deletes, restore spelling for adds)
    position: object = None


@dataclasses.dataclass(frozen=True)
class FamilyPlan:
    family: str
    backend: str
    chain_changes: tuple = ()
    hook_changes: tuple = ()
    restore_text: str = ''

    @property
    def changed(self):
        return bool(self.restore_text)


@dataclasses.dataclass(frozen=True)
class Plan:
    families: tuple = ()  # FamilyPlan
    # Created chains/hooks whose save spelling is learnt after apply, per family:
    # ((family, ((table, 'chain'|'hook', name or Hook, key, rule count), ...)), ...)
    warmups: tuple = ()

    @property
    def changed(self):
        return any(f.changed for f in self.families)

    def family(self, family):
        for plan in self.families:
            if plan.family == family:
                return plan
        return None


@dataclasses.dataclass(frozen=True)
class SyncResult:
    changed: bool
    plan: Plan
    diff: tuple = ()
    writes: tuple = ()
    timings: tuple = ()  # ((phase, seconds), ...)

    def summary(self):
        """JSON-friendly per-family counts for module results."""
        out = {}
        for fam in self.plan.families:
            counts = {'chains_created': 0, 'chains_replaced': 0, 'chains_deleted': 0,
                      'hooks_added': 0, 'hooks_deleted': 0}
            for change in fam.chain_changes:
                counts[_COUNT_NAME[change.action]] += 1
            for hook in fam.hook_changes:
                counts['hooks_deleted' if hook.action == 'delete' else 'hooks_added'] += 1
            counts['backend'] = fam.backend
            out[FAMILY_LABEL[fam.family]] = counts
        return out


def describe_chain_change(family, change):
    """What differs in one owned chain, as short lines for a report."""
    where = '%s %s %s' % (FAMILY_LABEL[family], change.table, change.chain)
    if change.action == 'create':
        return ['missing chain %s (%d rules)' % (where, len(change.after))]
    if change.action == 'delete':
        return ['stale chain %s' % where]
    before = set(change.before)
    after = set(change.after)
    lines = ['missing rule %s: %s' % (where, rule) for rule in change.after if rule not in before]
    lines.extend('unexpected rule %s: %s' % (where, rule) for rule in change.before if rule not in after)
    return lines or ['rule order or policy differs in chain %s' % where]


def describe_hook_change(family, hook):
    """One report line for a hook (a jump from a built-in chain into ours) to add or delete."""
    what = 'stale hook' if hook.action == 'delete' else 'missing hook'
    return '%s %s %s %s: %s' % (what, FAMILY_LABEL[family], hook.table, hook.chain, hook.rule)


_LINE_BREAKING = re.compile(r'[\x00\n\r\x0b\x0c]')


def _check_args(family, chain, args):
    """Arguments must be strings without control characters: a line break would end
    the rule inside the *-restore text and start another one."""
    try:
        clean = not _LINE_BREAKING.search(' '.join(args))  # one search per rule: cheap at 29,000 rules
    except TypeError:
        clean = False
    if clean:
        return
    for arg in args:
        if not isinstance(arg, str) or _LINE_BREAKING.search(arg):
            raise ApplyError('%s chain %s: argument %r of rule %r is not a plain string' % (
                FAMILY_LABEL.get(family, family), chain, arg, args))


def render_rule(args):
    return ' '.join(quote_arg(a) for a in args)


def _key(*parts):
    return hashlib.sha1('\0'.join(parts).encode('utf-8')).hexdigest()


def _rules_key(rules):
    # Unit separators cannot occur in arguments the tools accept: unambiguous and cheap.
    return '\n'.join('\x1f'.join(rule) for rule in rules)


def _chain_lines(name, rules):
    return ['-A %s %s' % (name, render_rule(rule)) if rule else '-A %s' % name for rule in rules]


_DIGITS = re.compile(r'(\d+)')


def _natural_key(name):
    return [(0, int(part), '') if part.isdigit() else (1, 0, part) for part in _DIGITS.split(name)]


def _declaration_order(names):
    """Order in which chains are created (and filled) in a restore.

    The order chains are created in is the order nft keeps them in, and it
    decides the cost of both this restore and of every later ``*-save``
    (measured, 9,000 ebtables chains): name order makes saves ~4x slower
    (2.1 s vs 0.5 s), random order makes restores ~2.5x slower; natural order
    (vnet2 before vnet10) is fast for both (restore 3.3 s, save 0.5 s; libvirt's
    creation order: 6.8 s and 0.6 s).
    """
    return sorted(names, key=_natural_key)


class CanonicalCache:
    """``{key: [save-spelled rules]}`` persisted as JSON in state_dir."""

    def __init__(self, path):
        self.path = path
        self.entries = {}
        self.used = set()
        self.dirty = False
        if path and os.path.exists(path):
            try:
                with open(path, 'r', encoding='utf-8') as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                data = None  # a damaged cache is only slower, never wrong: start afresh
            if isinstance(data, dict) and data.get('version') == CACHE_VERSION:
                self.entries = data.get('entries') or {}

    def get(self, key):
        value = self.entries.get(key)
        if value is not None:
            self.used.add(key)
            return tuple(value)
        return None

    def put(self, key, rules):
        self.used.add(key)
        if self.entries.get(key) != list(rules):
            self.entries[key] = list(rules)
            self.dirty = True

    def save(self):
        """Write atomically, keeping only the entries this run used."""
        if not self.path:
            return
        if not self.dirty and len(self.used) == len(self.entries):
            return
        kept = {k: self.entries[k] for k in self.used if k in self.entries}
        atomic_write(self.path, json.dumps({'version': CACHE_VERSION, 'entries': kept}, separators=(',', ':')),
                     durable=False)


class _TableWork:
    """Desired and live state of one owned table while planning."""

    def __init__(self, family, table, tool_id, desired_table, live_table, ownership):
        self.family = family
        self.name = table
        self.desired_chains = []  # (name, rules as argument tuples, key)
        self.desired_hooks = []  # (Hook, rendered, key)
        self.live_owned = {}
        self.live_other = {}  # built-in chains: where our hooks live
        if desired_table is not None:
            for chain in desired_table.chains:
                self.desired_chains.append(
                    (chain.name, chain.rules, _key(tool_id, family, table, 'chain', _rules_key(chain.rules))))
            for hook in desired_table.hooks:
                self.desired_hooks.append(
                    (hook, render_rule(hook.args),
                     _key(tool_id, family, table, 'hook', hook.chain, '\x1f'.join(hook.args))))
        if live_table is not None:
            for chain in live_table.chains:
                if ownership.owns(family, table, chain.name):
                    self.live_owned[chain.name] = chain
                elif chain.name in BUILTIN_CHAINS:
                    # Only built-in chains hold hooks; an admin's own chain that jumps
                    # into one of ours is the admin's rule and is left alone.
                    self.live_other[chain.name] = chain
        self.desired_names = frozenset(name for name, _r, _k in self.desired_chains)
        self.chain_keys = dict((name, key) for name, _r, key in self.desired_chains)
        self.hook_keys = dict((id(hook), key) for hook, _r, key in self.desired_hooks)


def _scratch_text(family, works_and_items):
    """Restore text that loads the given chains and hooks into an empty namespace.

    ``works_and_items``: ``[(work, chains, hooks)]`` with chains a list of
    ``(name, rules)`` and hooks a list of ``(Hook, rendered)``.
    """
    out = []
    for work, chains, hooks in works_and_items:
        if not chains and not hooks:
            continue
        declared = []
        seen = set()
        for name, _rendered in chains:
            declared.append(name)
            seen.add(name)
        # Targets of the loaded rules must exist; declare them empty.
        for name, rules in chains:
            for rule in rules:
                target = rule_target(rule)
                if target in work.desired_names and target not in seen:
                    declared.append(target)
                    seen.add(target)
        for hook, _rendered in hooks:
            target = rule_target(hook.args)
            if target in work.desired_names and target not in seen:
                declared.append(target)
                seen.add(target)
            if hook.chain not in BUILTIN_CHAINS and hook.chain not in seen:
                declared.append(hook.chain)
                seen.add(hook.chain)
        out.append('*%s' % work.name)
        out.extend(chain_declaration(family, name) for name in _declaration_order(declared))
        for name, rules in sorted(chains, key=lambda item: _natural_key(item[0])):
            out.extend(_chain_lines(name, rules))
        for hook, rendered in hooks:
            out.append('-A %s %s' % (hook.chain, rendered))
        if family != 'eb':
            out.append('COMMIT')
    return '\n'.join(out) + '\n' if out else ''


def _hook_groups(hooks):
    by_chain = {}
    for item in hooks:
        by_chain.setdefault(item[0].chain, []).append(item)
    return by_chain


class XtablesEngine:
    """See the module docstring."""

    def __init__(self, ownership, backend='auto', ebtables_backend='auto', state_dir=None,
                 runner=None, lock_timeout=60, backends=None):
        self.ownership = ownership
        self.state_dir = state_dir
        self.runner = runner or CommandRunner()
        self.lock_timeout = lock_timeout
        self.backends = backends or resolve_backends(
            ownership.families(), backend=backend, ebtables_backend=ebtables_backend,
            lock_wait=lock_timeout)
        cache_path = None
        if state_dir:
            cache_path = os.path.join(state_dir, 'cache', 'canonical-%s.json' % ownership.name)
        self.cache = CanonicalCache(cache_path)

    # -- validation -------------------------------------------------------------------------
    def _validate(self, desired):
        if not isinstance(desired, Ruleset):
            raise ApplyError('desired state must be a Ruleset, got %s' % type(desired).__name__)
        for table in desired.tables:
            if (table.family, table.name) not in [(f, t) for f in FAMILIES for t in self.ownership.tables(f)]:
                if table.is_empty():
                    continue
                raise ApplyError('%s table %s is not managed by %s' % (
                    FAMILY_LABEL.get(table.family, table.family), table.name, self.ownership.name))
            names = set()
            for chain in table.chains:
                for rule in chain.rules:
                    _check_args(table.family, chain.name, rule)
                if not self.ownership.owns(table.family, table.name, chain.name):
                    raise ApplyError('%s %s chain %r is not one of %s\'s chains' % (
                        FAMILY_LABEL[table.family], table.name, chain.name, self.ownership.name))
                if chain.name in names:
                    raise ApplyError('%s %s chain %r is declared twice' % (
                        FAMILY_LABEL[table.family], table.name, chain.name))
                names.add(chain.name)
            for hook in table.hooks:
                _check_args(table.family, hook.chain, hook.args)
                target = rule_target(hook.args)
                if hook.chain not in BUILTIN_CHAINS:
                    raise ApplyError('hook %r is in chain %s; hooks go into built-in chains (%s)' % (
                        render_rule(hook.args), hook.chain, ', '.join(sorted(BUILTIN_CHAINS))))
                if target not in names:
                    raise ApplyError('hook in %s %s %s jumps to %r, which is not a desired chain' % (
                        FAMILY_LABEL[table.family], table.name, hook.chain, target))
                if hook.position is not None and (not isinstance(hook.position, int) or hook.position < 1):
                    raise ApplyError('hook %r has position %r; positions start at 1' % (
                        render_rule(hook.args), hook.position))

    # -- reading ----------------------------------------------------------------------------
    def read_text(self, family):
        """The raw ``*-save`` text of ``family`` (one call, stdout only)."""
        backend = self.backends[family]
        return self._save_result(backend, self.runner.run(list(backend.save), kind='read'))

    @staticmethod
    def _save_result(backend, result):
        rc, out, err = result
        if rc != 0:
            raise CommandError('%s failed (rc=%d): %s' % (os.path.basename(backend.save[0]), rc, err.strip()),
                               backend.save, rc, err)
        return out

    def start_reads(self):
        """Start the ``*-save`` of every family we own tables in; :meth:`finish_reads` collects them."""
        return [(family, self.runner.start(list(self.backends[family].save), kind='read'))
                for family in self.ownership.families()]

    def finish_reads(self, handles):
        """``{family: save text}`` of reads begun with :meth:`start_reads`."""
        return dict((family, self._save_result(self.backends[family], self.runner.finish(handle)))
                    for family, handle in handles)

    def cancel_reads(self, handles):
        """Stop reads begun with :meth:`start_reads` whose result is no longer wanted."""
        for _family, handle in handles:
            self.runner.cancel(handle)

    def read_texts(self):
        """``{family: save text}`` for every family we own tables in."""
        return self.finish_reads(self.start_reads())

    def live_digest(self, texts):
        """Digest of the live state as read (comments and counters left out).

        Equal digests mean byte-identical dumps of every family: a caller that
        saw the same digest with the same desired state before, and found
        nothing to change then, need not diff again (see _reconcile.nics.sync_host).
        """
        hasher = hashlib.sha256()
        for family in sorted(texts):
            hasher.update(('\0%s\0%s\0' % (family, self.backends[family].tool_id)).encode('utf-8'))
            text = _COMMENT_LINES.sub('', texts[family])
            hasher.update(_COUNTERS.sub(r'\1', text).encode('utf-8', 'surrogateescape'))
        return hasher.hexdigest()

    def read_live(self, family, text=None):
        """``{table: SavedTable}`` from one ``*-save`` of ``family`` (or its given text)."""
        backend = self.backends[family]
        if text is None:
            text = self.read_text(family)
        tables = parse_save(family, text)
        if family == 'eb' and backend.name == 'legacy':
            self._check_ebtables_legacy(backend, tables)
        return tables

    def _check_ebtables_legacy(self, backend, tables):
        """ebtables-legacy-save prints nothing (rc 0) for tables the kernel lacks; ask directly."""
        tool = os.path.join(os.path.dirname(backend.save[0]), 'ebtables-legacy')
        for table in self.ownership.tables('eb'):
            if table in tables:
                continue
            rc, _out, err = self.runner.run([tool, '-t', table, '-L'], kind='read')
            if rc != 0:
                raise CommandError('ebtables backend legacy cannot be used: %s (this kernel has no legacy ebtables '
                                   'support; use ebtables_backend: nft)' % err.strip(), (tool,), rc, err)

    # -- planning ---------------------------------------------------------------------------
    def plan(self, desired, live_texts=None):
        """Diff ``desired`` against the live state (read now, or ``live_texts`` from :meth:`read_texts`)."""
        self._validate(desired)
        families = []
        warmups = []
        for family in self.ownership.families():
            text = live_texts.get(family) if live_texts else None
            family_plan, warmup = self._plan_family(family, desired, text)
            families.append(family_plan)
            if warmup:
                warmups.append(warmup)
        return Plan(tuple(families), tuple(warmups))

    def _plan_family(self, family, desired, text=None):
        backend = self.backends[family]
        tool_id = backend.tool_id
        live = self.read_live(family, text)
        works = [_TableWork(family, table, tool_id, desired.table(family, table), live.get(table), self.ownership)
                 for table in self.ownership.tables(family)]

        # Canonical text is needed only where something live must be compared.
        canon = {}
        need = []
        for work in works:
            chains = []
            hooks = []
            for name, rules, key in work.desired_chains:
                cached = self.cache.get(key)
                if cached is not None:
                    canon[key] = cached
                elif name in work.live_owned:
                    chains.append((name, rules))
            live_targets = self._live_hook_targets(work)
            for hook, rendered, key in work.desired_hooks:
                cached = self.cache.get(key)
                if cached is not None:
                    canon[key] = cached
                elif (hook.chain, rule_target(hook.args)) in live_targets:
                    hooks.append((hook, rendered))
            need.append((work, chains, hooks))
        if any(chains or hooks for _w, chains, hooks in need):
            self._canonicalise(family, backend, need, canon)

        table_texts = []
        chain_changes = []
        hook_changes = []
        warm_items = []
        for work in works:
            text, changes, hooks_changed, warm = self._diff_table(work, canon)
            if text:
                table_texts.append(text)
            chain_changes.extend(changes)
            hook_changes.extend(hooks_changed)
            if warm[0] or warm[1]:
                warm_items.append((work,) + warm)
        warmup = None
        if warm_items:
            keys = []
            for work, chains, hooks in warm_items:
                keys.extend((work.name, 'chain', name, key, len(rules)) for name, rules, key in chains)
                keys.extend((work.name, 'hook', hook, key, 1) for hook, _r, key in hooks)
            warmup = (family, tuple(keys))
        return FamilyPlan(family, backend.name, tuple(chain_changes), tuple(hook_changes),
                          ''.join(table_texts)), warmup

    def _live_hook_targets(self, work):
        targets = set()
        for chain in work.live_other.values():
            for rule in chain.rules:
                target = text_target(rule)
                if target is not None and self.ownership.owns(work.family, work.name, target):
                    targets.add((chain.name, target))
        return targets

    def _canonicalise(self, family, backend, need, canon):
        text = _scratch_text(family, need)
        saved = parse_save(family, scratch_save(self.runner, backend, text))
        self._store_canonical(family, saved, [
            (work.name, [(name, rules, work.chain_keys[name]) for name, rules in chains],
             [(hook, rendered, work.hook_keys[id(hook)]) for hook, rendered in hooks])
            for work, chains, hooks in need], canon)

    def _store_canonical(self, family, saved, items, canon):
        for table, chains, hooks in items:
            saved_table = saved.get(table)
            chain_map = saved_table.chain_map() if saved_table else {}
            for name, _rules, key in chains:
                rules = chain_map[name].rules if name in chain_map else ()
                canon[key] = tuple(rules)
                self.cache.put(key, rules)
            # Hooks were appended in order to their (empty) chains in the scratch namespace.
            for chain_name, group in _hook_groups(hooks).items():
                rules = chain_map[chain_name].rules if chain_name in chain_map else ()
                if len(rules) != len(group):
                    raise ApplyError('%s %s: hook rules in %s do not load one-to-one (%d rules for %d hooks)'
                                     % (FAMILY_LABEL[family], table, chain_name, len(rules), len(group)))
                for (_hook, _rendered, key), rule in zip(group, rules):
                    canon[key] = (rule,)
                    self.cache.put(key, (rule,))

    def _diff_table(self, work, canon):
        family = work.family
        chain_changes = []
        hook_changes = []
        write_chains = []  # (name, rules)
        warm_chains = []
        warm_hooks = []
        for name, rules, key in work.desired_chains:
            live = work.live_owned.get(name)
            known = canon.get(key)
            if live is None:
                chain_changes.append(ChainChange(work.name, name, 'create', (),
                                                 known or tuple(render_rule(r) for r in rules)))
                write_chains.append((name, rules))
                if known is None:
                    warm_chains.append((name, rules, key))
                continue
            policy_ok = family != 'eb' or live.policy == 'ACCEPT'
            if known is None:
                raise ApplyError('internal: no canonical form for live chain %s' % name)
            if tuple(live.rules) != known or not policy_ok:
                chain_changes.append(ChainChange(work.name, name, 'replace', tuple(live.rules), known))
                write_chains.append((name, rules))
        obsolete = [name for name in work.live_owned if name not in work.desired_names]
        for name in obsolete:
            chain_changes.append(ChainChange(work.name, name, 'delete', tuple(work.live_owned[name].rules), ()))

        deletes = []  # (chain, live rule text)
        adds = []  # (chain, rendered, position)
        desired_by_chain = _hook_groups(work.desired_hooks)
        hook_chains = list(desired_by_chain)
        hook_chains.extend(c for c in work.live_other if c not in desired_by_chain)
        for chain_name in hook_chains:
            live_chain = work.live_other.get(chain_name)
            live_rules = live_chain.rules if live_chain else ()
            ours = [r for r in live_rules
                    if self.ownership.owns(family, work.name, text_target(r) or '')]
            wanted = desired_by_chain.get(chain_name, [])
            canon_of = {}
            ours_targets = set(text_target(r) for r in ours)
            for hook, rendered, key in wanted:
                if key in canon:
                    canon_of[id(hook)] = canon[key][0]
                elif rule_target(hook.args) in ours_targets:
                    raise ApplyError('internal: no canonical form for hook %s' % rendered)
                else:
                    warm_hooks.append((hook, rendered, key))
            wanted_texts = set(canon_of.values())
            # Live hooks that are not wanted at all.
            for rule in ours:
                if rule not in wanted_texts:
                    deletes.append((chain_name, rule))
            live_counts = collections.Counter(ours)
            remaining = [r for r in ours if r in wanted_texts]
            positioned = sorted((h for h in wanted if h[0].position is not None), key=lambda h: h[0].position)
            appended = [h for h in wanted if h[0].position is None]
            pos_texts = [canon_of.get(id(h)) for h, _r, _k in positioned]
            live_pos = [r for r in remaining if r in set(t for t in pos_texts if t)]
            if positioned and live_pos != pos_texts:
                for rule in live_pos:
                    deletes.append((chain_name, rule))
                length = len(live_rules) - sum(1 for c, _r in deletes if c == chain_name)
                for hook, rendered, _key in positioned:
                    position = min(hook.position, length + 1)
                    adds.append((chain_name, rendered, position))
                    length += 1
            for hook, rendered, _key in appended:
                text = canon_of.get(id(hook))
                count = live_counts[text] if text else 0
                if count == 0:
                    adds.append((chain_name, rendered, None))
                for _extra in range(max(count - 1, 0)):
                    deletes.append((chain_name, text))
        for chain_name, rule in deletes:
            hook_changes.append(HookChange(work.name, chain_name, 'delete', rule))
        for chain_name, rendered, position in adds:
            hook_changes.append(HookChange(work.name, chain_name, 'append' if position is None else 'insert',
                                           rendered, position))

        if not (write_chains or obsolete or deletes or adds):
            return '', chain_changes, hook_changes, (warm_chains, warm_hooks)
        lines = ['*%s' % work.name]
        lines.extend('-D %s %s' % (chain, rule) for chain, rule in deletes)
        lines.extend(chain_declaration(family, name)
                     for name in _declaration_order([n for n, _r in write_chains] + obsolete))
        for name, rules in sorted(write_chains, key=lambda item: _natural_key(item[0])):
            lines.extend(_chain_lines(name, rules))
        lines.extend('-X %s' % name for name in obsolete)
        for chain, rendered, position in adds:
            if position is None:
                lines.append('-A %s %s' % (chain, rendered))
            else:
                lines.append('-I %s %d %s' % (chain, position, rendered))
        if family != 'eb':
            lines.append('COMMIT')
        return '\n'.join(lines) + '\n', chain_changes, hook_changes, (warm_chains, warm_hooks)

    # -- applying ---------------------------------------------------------------------------
    def apply(self, plan):
        """Run one restore per changed family, then learn the new chains' spelling."""
        applied = []
        for family_plan in plan.families:
            if not family_plan.changed:
                continue
            backend = self.backends[family_plan.family]
            argv = backend.restore_argv()
            rc, _out, err = self.runner.run(argv, family_plan.restore_text, kind='write')
            if rc != 0:
                done = ', '.join(FAMILY_LABEL[f] for f in applied) or 'none'
                raise CommandError(
                    '%s --noflush (%s) rejected the change; its ruleset is unchanged '
                    '(families already applied: %s): %s'
                    % (os.path.basename(argv[0]), backend.name, done, err.strip()), argv, rc, err)
            applied.append(family_plan.family)
        if self.cache.path:
            for family, keys in plan.warmups:
                self._learn(family, keys)

    def _learn(self, family, keys):
        """Cache the save spelling of chains we just created, read from the host.

        Loading them into a scratch namespace as well would double the cost of
        a big first apply (two restores of the same size serialise in the
        kernel, measured).  We hold our lock, and an entry is only learnt when
        its rule count is the one we loaded, so a concurrent external flush in
        this short window is not mistaken for the canonical form.
        """
        saved = self.read_live(family)
        chain_maps = dict((name, table.chain_map()) for name, table in saved.items())
        by_target = {}  # (table, chain) -> {target: [rules]}
        for table, kind, item, key, count in keys:
            chain_map = chain_maps.get(table, {})
            if kind == 'chain':
                live = chain_map.get(item)
                if live is not None and len(live.rules) == count:
                    self.cache.put(key, live.rules)
                continue
            index = by_target.get((table, item.chain))
            if index is None:
                index = by_target[(table, item.chain)] = {}
                live = chain_map.get(item.chain)
                for rule in live.rules if live else ():
                    index.setdefault(text_target(rule), []).append(rule)
            matches = index.get(rule_target(item.args), ())
            if len(matches) == 1:
                self.cache.put(key, (matches[0],))

    def sync(self, desired, check_mode=False):
        timings = []
        start = time.monotonic()
        lock = state_lock(self.state_dir, self.lock_timeout, exclusive=not check_mode,
                          create=not check_mode) if self.state_dir else _null_lock()
        with lock:
            plan = self.plan(desired)
            timings.append(('plan', time.monotonic() - start))
            writes_before = len(self.runner.writes())
            if plan.changed and not check_mode:
                mark = time.monotonic()
                self.apply(plan)
                timings.append(('apply', time.monotonic() - mark))
            if not check_mode:
                self.cache.save()
        writes = tuple(self.runner.writes()[writes_before:])
        timings.append(('total', time.monotonic() - start))
        return SyncResult(plan.changed, plan, tuple(plan_diff(plan)), writes, tuple(timings))


class _null_lock(object):
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def plan_diff(plan):
    """Ansible diff dicts: per family, the changed chains' lines before and after."""
    diffs = []
    for fam in plan.families:
        if not fam.changed:
            continue
        before = []
        after = []
        for change in fam.chain_changes:
            header = '# %s %s' % (change.table, change.chain)
            if change.action != 'create':
                before.append(header)
                before.extend('-A %s %s' % (change.chain, r) for r in change.before)
            if change.action != 'delete':
                after.append(header)
                after.extend('-A %s %s' % (change.chain, r) for r in change.after)
        for hook in fam.hook_changes:
            if hook.action == 'delete':
                before.append('# %s %s (hook)\n-A %s %s' % (hook.table, hook.chain, hook.chain, hook.rule))
            elif hook.action == 'insert':
                after.append('# %s %s (hook)\n-I %s %s %s'
                             % (hook.table, hook.chain, hook.chain, hook.position, hook.rule))
            else:
                after.append('# %s %s (hook)\n-A %s %s' % (hook.table, hook.chain, hook.chain, hook.rule))
        label = '%s (%s)' % (FAMILY_LABEL[fam.family], fam.backend)
        diffs.append({
            'before_header': '%s: live' % label,
            'after_header': '%s: desired' % label,
            'before': '\n'.join(before) + ('\n' if before else ''),
            'after': '\n'.join(after) + ('\n' if after else ''),
        })
    return diffs
