# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which xtables tools to run, and learning their spelling in a scratch namespace.

* :func:`resolve_backends` picks ``nft`` or ``legacy`` per family the way the
  host's ``iptables`` / ``ebtables`` alternatives point (overridable).
* :func:`scratch_save` loads restore text into a private, throwaway network
  namespace (:mod:`._host.scratch`) with the same tools and returns what
  ``*-save`` prints for it: the tools' own spelling of our rules.

Commands run through :class:`._host.commands.Runner`.
"""
from __future__ import annotations

import dataclasses
import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import CommandError, Runner, find_tool
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.scratch import Step, run_in_scratch
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import FAMILY_TOOL

BACKENDS = ('nft', 'legacy')


class BackendError(NetfilterError):
    """A backend tool is missing, unusable on this kernel, or failed."""


def detect_backend(tool):
    """'nft' or 'legacy': where the host's ``tool`` (e.g. iptables) points.

    Follows the alternatives symlinks; ``xtables-nft-multi``/``iptables-nft``
    mean nft, ``*-legacy*`` means legacy, a plain old binary means legacy.
    Returns None when the tool is not installed at all.
    """
    path = find_tool(tool)
    if path is None:
        return None
    seen = set()
    current = path
    while True:
        base = os.path.basename(current)
        if '-nft' in base:
            return 'nft'
        if '-legacy' in base:
            return 'legacy'
        if not os.path.islink(current) or current in seen:
            break
        seen.add(current)
        target = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    _rc, out, _err = Runner().run([path, '--version'])
    return 'nft' if 'nf_tables' in out else 'legacy'


@dataclasses.dataclass(frozen=True)
class Backend:
    family: str
    name: str  # 'nft' or 'legacy'
    save: tuple  # argv
    restore: tuple  # argv, without --noflush
    lock_args: tuple = ()  # e.g. ('-w', '60') for iptables-restore

    @property
    def tool_id(self):
        """Identifies the tool build: cached canonical forms are only valid for it."""
        path = os.path.realpath(self.restore[0])
        try:
            stat = os.stat(path)
        except OSError:
            return '%s:%s' % (self.name, path)
        return '%s:%s:%d:%d' % (self.name, path, stat.st_size, int(stat.st_mtime))

    def restore_argv(self, test=False):
        argv = list(self.restore) + ['--noflush'] + list(self.lock_args)
        if test:
            argv.append('--test')
        return argv


def make_backend(family, name, lock_wait=60):
    if name not in BACKENDS:
        raise BackendError('unknown backend %r for %s (expected one of %s)'
                           % (name, FAMILY_TOOL[family], ', '.join(BACKENDS)))
    tool = FAMILY_TOOL[family]
    save_name = '%s-%s-save' % (tool, name)
    restore_name = '%s-%s-restore' % (tool, name)
    save = find_tool(save_name)
    restore = find_tool(restore_name)
    if save is None or restore is None:
        raise BackendError('%s backend %s needs %s and %s, which are not installed'
                           % (tool, name, save_name, restore_name))
    lock_args = () if family == 'eb' else ('-w', str(int(lock_wait)))
    return Backend(family, name, (save,), (restore,), lock_args)


def resolve_backends(families, backend='auto', ebtables_backend='auto', lock_wait=60):
    """``{family: Backend}`` for ``families``.

    ``backend`` applies to iptables/ip6tables, ``ebtables_backend`` to
    ebtables; ``auto`` follows the host's ``iptables``/``ebtables`` command.
    """
    result = {}
    for family in families:
        choice = ebtables_backend if family == 'eb' else backend
        if choice == 'auto':
            tool = FAMILY_TOOL[family]
            choice = detect_backend(tool)
            if choice is None:
                # No front-end command: take whichever variant is installed, nft first.
                choice = 'nft' if find_tool('%s-nft-restore' % tool) else 'legacy'
        result[family] = make_backend(family, choice, lock_wait)
    return result


_MATCH_SET = re.compile(r'--match-set\s+"?([^\s"]+)')
_ERROR_LINE = re.compile(r'Error occurred at line: (\d+)')


def failing_line(stderr, restore_text):
    """``' at line N: <that line>'`` for a restore that failed "at line: N", else ''.  The tools name
    only the number; the line's chain names the NIC (``I-vnet0-ipv4-ip``) and shows the bad value."""
    match = _ERROR_LINE.search(stderr or '')
    lines = restore_text.splitlines()
    if match is None or not 0 < int(match.group(1)) <= len(lines):
        return ''
    return ' at line %s: %s' % (match.group(1), lines[int(match.group(1)) - 1])


def scratch_save(runner, backend, restore_text):
    """Load ``restore_text`` in a throwaway netns and return its ``*-save`` text.

    ipsets the rules name are created empty there first (they only have to
    exist, with the right family, for the rules to load).
    """
    ipsets = sorted(set(_MATCH_SET.findall(restore_text))) if backend.family != 'eb' else []
    ipset = find_tool('ipset') or 'ipset'
    family = 'inet6' if backend.family == 'ip6' else 'inet'
    steps = [Step((ipset, 'create', name, 'hash:ip', 'family', family)) for name in ipsets]
    steps.append(Step((backend.restore[0], '--noflush'), stdin=True))
    steps.append(Step(tuple(backend.save)))
    result = run_in_scratch(runner, steps, restore_text)
    if result.ok:
        return result.outputs[-1]
    tool = os.path.basename(backend.restore[0])
    if result.unshare_failed:
        what = ('cannot create a scratch network namespace to read the tools\' spelling of the rules (needs root '
                'with CAP_SYS_ADMIN)')
    elif result.failed_step is not None and result.failed_step < len(ipsets):
        what = 'cannot create the ipsets the rules name in the scratch namespace'
    elif result.failed_step == len(steps) - 1:
        what = '%s failed in the scratch namespace' % os.path.basename(backend.save[0])
    else:
        what = '%s (%s) rejected the desired rules (in a scratch namespace, the host is untouched)' % (
            tool, backend.name)
        what += failing_line(result.stderr, restore_text)
    raise CommandError('%s: %s' % (what, result.stderr.strip()), backend.restore, None, result.stderr)
