# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a desired :class:`~._ruleset.model.Ruleset` to the live xtables of a host.

Generic engine shared by guest NIC filters (libvirt's nwfilter layout) and
virtual networks (libvirt's ``LIBVIRT_*`` layout); what each owns is an
:class:`~.xtables_ownership.Ownership`.  The pieces:

* :mod:`.xtables_ownership`: what is ours (owned chains, hooks).
* :mod:`.xtables_save`: ``*-save`` text parsed into saved tables.
* :mod:`.xtables_canonical`: the tools' own spelling of desired rules,
  learnt in a scratch namespace and cached.
* :mod:`.xtables_diff`: one table diffed into changes and restore text.
* :mod:`.xtables_plan`: the plan (per family), its diff and report lines.
* :mod:`.xtables_tools`: which tools (nft/legacy) and how to run them.

API
===

``XtablesEngine(ownership, backend='auto', ebtables_backend='auto', state_dir=None, runner=None, lock_timeout=60)``
    ``backend`` (iptables/ip6tables) and ``ebtables_backend`` are ``auto``
    (follow where the host's ``iptables``/``ebtables`` command points),
    ``nft`` or ``legacy``.  ``state_dir`` holds the cache of canonical rule
    spellings (without it nothing is cached).  ``runner`` is a
    :class:`~.xtables_tools.Runner` (records calls).

``engine.plan(desired, live_texts=None) -> Plan`` then ``engine.commit(plan, check_mode) -> writes``
    The one path: diff ``desired`` (all of our rules for the host: owned
    chains that are live but not desired are removed) against the live
    state, then apply (unless ``check_mode``) and save the cache.  Callers
    hold the ``state_dir`` lock (``_reconcile``).  Raises
    :class:`~.xtables_plan.ApplyError` (bad desired ruleset, nothing read or
    written), :class:`~.xtables_tools.CommandError` (a tool failed; the
    family's previous ruleset is intact because each family is one restore
    transaction).

How it works
============

1. One ``*-save`` per family we own tables in (stdout only; reads can run in
   the background while the caller compiles: ``start_reads``/``finish_reads``).
2. Desired chains that exist live are *canonicalised by the real tools*
   (:mod:`.xtables_canonical`); the spelling of chains we create is learnt
   from one more ``*-save`` right after the restore.  An invalid desired
   rule that goes through the scratch namespace fails there, before the
   host is touched.
3. Diff per owned chain and per hook (:mod:`.xtables_diff`).
4. One ``*-restore --noflush`` per family with changes.  The kernel applies
   the whole text or nothing, so a NIC is never unfiltered while its chains
   are replaced.
"""

from __future__ import annotations

import hashlib
import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_canonical import (
    CanonicalCache, TableWork, canonicalise, learn)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_diff import diff_table
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import (
    ApplyError, FamilyPlan, Plan)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import (
    parse_save, rule_target, text_target)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_tools import (
    failing_line, resolve_backends)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import CommandError, Runner
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.json_cache import cache_path
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import (
    BUILTIN_CHAINS, FAMILIES, FAMILY_TOOL, Ruleset)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.restore import render_rule

_COUNTERS = re.compile(r'^(:\S+ \S+) \[\d+:\d+\]$', re.M)
_COMMENT_LINES = re.compile(r'^#.*\n?', re.M)


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
                FAMILY_TOOL.get(family, family), chain, arg, args))


class XtablesEngine:
    """See the module docstring."""

    def __init__(self, ownership, backend='auto', ebtables_backend='auto', state_dir=None,
                 runner=None, lock_timeout=60, backends=None):
        self.ownership = ownership
        self.state_dir = state_dir
        self.runner = runner or Runner()
        self.lock_timeout = lock_timeout
        self.backends = backends or resolve_backends(
            ownership.families(), backend=backend, ebtables_backend=ebtables_backend,
            lock_wait=lock_timeout)
        self.cache = CanonicalCache(cache_path(state_dir, 'canonical-%s' % ownership.name))

    # -- validation -------------------------------------------------------------------------
    def _validate(self, desired):
        if not isinstance(desired, Ruleset):
            raise ApplyError('desired state must be a Ruleset, got %s' % type(desired).__name__)
        for table in desired.tables:
            if (table.family, table.name) not in [(f, t) for f in FAMILIES for t in self.ownership.tables(f)]:
                if table.is_empty():
                    continue
                raise ApplyError('%s table %s is not managed by %s' % (
                    FAMILY_TOOL.get(table.family, table.family), table.name, self.ownership.name))
            names = set()
            for chain in table.chains:
                for rule in chain.rules:
                    _check_args(table.family, chain.name, rule)
                if not self.ownership.owns(table.family, table.name, chain.name):
                    raise ApplyError('%s %s chain %r is not one of %s\'s chains' % (
                        FAMILY_TOOL[table.family], table.name, chain.name, self.ownership.name))
                if chain.name in names:
                    raise ApplyError('%s %s chain %r is declared twice' % (
                        FAMILY_TOOL[table.family], table.name, chain.name))
                names.add(chain.name)
            for hook in table.hooks:
                _check_args(table.family, hook.chain, hook.args)
                target = rule_target(hook.args)
                if hook.chain not in BUILTIN_CHAINS:
                    raise ApplyError('hook %r is in chain %s; hooks go into built-in chains (%s)' % (
                        render_rule(hook.args), hook.chain, ', '.join(sorted(BUILTIN_CHAINS))))
                if target not in names:
                    raise ApplyError('hook in %s %s %s jumps to %r, which is not a desired chain' % (
                        FAMILY_TOOL[table.family], table.name, hook.chain, target))
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
        works = [TableWork(family, table, tool_id, desired.table(family, table), live.get(table), self.ownership)
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
            canonicalise(self.runner, backend, need, canon, self.cache)

        table_texts = []
        chain_changes = []
        hook_changes = []
        warm_items = []
        whole_table_read = backend.name == 'nft'
        for work in works:
            text, changes, hooks_changed, warm = diff_table(work, canon, self.ownership, whole_table_read)
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
                done = ', '.join(FAMILY_TOOL[f] for f in applied) or 'none'
                raise CommandError(
                    '%s --noflush (%s) rejected the change%s; its ruleset is unchanged '
                    '(families already applied: %s): %s'
                    % (os.path.basename(argv[0]), backend.name, failing_line(err, family_plan.restore_text), done,
                       err.strip()), argv, rc, err)
            applied.append(family_plan.family)
        if self.cache.path:
            for family, keys in plan.warmups:
                self._learn(family, keys)

    def _learn(self, family, keys):
        """Cache the save spelling of chains we just created, read from the host.

        Loading them into a scratch namespace as well would double the cost of
        a big first apply (two restores of the same size serialise in the
        kernel, measured).  We hold our lock (see :func:`xtables_canonical.learn`).
        """
        learn(self.read_live(family), keys, self.cache)

    def commit(self, plan, check_mode=False):
        """The one "apply and keep the caches" step after :meth:`plan` (callers hold
        the state_dir lock): apply unless ``check_mode``, then save the canonical
        cache.  Returns the argv lists written."""
        writes_before = len(self.runner.writes())
        if not check_mode:
            if plan.changed:
                self.apply(plan)
            self.cache.save()
        return tuple(self.runner.writes()[writes_before:])
