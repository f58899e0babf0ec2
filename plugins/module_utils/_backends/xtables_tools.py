# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which xtables tools to run, how to run them, and a scratch network namespace.

* :func:`resolve_backends` picks ``nft`` or ``legacy`` per family the way the
  host's ``iptables`` / ``ebtables`` alternatives point (overridable).
* :class:`CommandRunner` runs argument vectors (never a shell string) and
  records every call, so callers and tests can tell reads from writes.
* :func:`scratch_save` loads restore text into a private, throwaway network
  namespace with the same tools and returns what ``*-save`` prints for it:
  the kernel/tool's own spelling of our rules (used to compare desired rules
  with a live dump, see :mod:`xtables_apply`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError

BACKENDS = ('nft', 'legacy')
FAMILY_TOOL = {'eb': 'ebtables', 'ip': 'iptables', 'ip6': 'ip6tables'}
# Directories searched besides PATH (Ansible runs modules with a minimal PATH sometimes).
_SBIN = ('/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin')


class BackendError(NetfilterError):
    """A backend tool is missing, unusable on this kernel, or failed."""


class CommandError(BackendError):
    """A tool exited non-zero; ``stderr`` holds its own message."""

    def __init__(self, message, argv=None, rc=None, stderr=''):
        self.argv = tuple(argv or ())
        self.rc = rc
        self.stderr = stderr
        super().__init__(message)


def find_tool(name):
    path = shutil.which(name)
    if path:
        return path
    for directory in _SBIN:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


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
    version = subprocess.run([path, '--version'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             check=False, universal_newlines=True)
    return 'nft' if 'nf_tables' in version.stdout else 'legacy'


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


class CommandRunner:
    """Runs argv lists without a shell and remembers what it ran.

    ``calls`` is a list of ``(kind, argv)`` with kind 'read' or 'write' so a
    test can assert that a no-op run wrote nothing.
    """

    def __init__(self, timeout=900):
        self.calls = []
        self.timeout = timeout

    def argv_for(self, argv):
        """The argv actually run (subclasses may prefix it, e.g. tests with ``ip netns exec``)."""
        return list(argv)

    def run(self, argv, data=None, kind='read'):
        argv = self.argv_for(argv)
        self.calls.append((kind, tuple(argv)))
        try:
            # UTF-8 whatever the locale (comments may hold any text); undecodable bytes survive.
            proc = subprocess.run(list(argv), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  check=False, encoding='utf-8', errors='surrogateescape', timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise CommandError('%s did not finish within %d s' % (argv[0], self.timeout), argv) from exc
        except OSError as exc:
            raise CommandError('cannot run %s: %s' % (argv[0], exc), argv) from exc
        return proc.returncode, proc.stdout, proc.stderr

    def start(self, argv, kind='read'):
        """Start ``argv`` (no input) in the background; :meth:`finish` collects it.

        Lets a caller do its own work (compiling, merging) while a big
        ``*-save`` runs.  Subclasses that only override :meth:`run` still work:
        their start runs the command at once.
        """
        if type(self).run is not CommandRunner.run:
            return ('done',) + tuple(self.run(argv, kind=kind))
        argv = self.argv_for(argv)
        self.calls.append((kind, tuple(argv)))
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    encoding='utf-8', errors='surrogateescape')
        except OSError as exc:
            raise CommandError('cannot run %s: %s' % (argv[0], exc), argv) from exc
        return ('running', proc, tuple(argv))

    def finish(self, handle):
        """``(rc, stdout, stderr)`` of a command begun with :meth:`start`."""
        if handle[0] == 'done':
            return handle[1], handle[2], handle[3]
        _state, proc, argv = handle
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise CommandError('%s did not finish within %d s' % (argv[0], self.timeout), argv) from exc
        return proc.returncode, out, err

    @staticmethod
    def cancel(handle):
        """Stop a command begun with :meth:`start` (reads only) and reap it."""
        if handle[0] == 'running':
            handle[1].kill()
            handle[1].communicate()

    def writes(self):
        return [argv for kind, argv in self.calls if kind == 'write']


# Runs inside a child Python: unshare(CLONE_NEWNET), then restore + save there.
# The child's namespace disappears with it; nothing touches the host's tables.
_SCRATCH_CODE = r'''
import ctypes, json, os, subprocess, sys
spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x40000000) != 0:
    err = ctypes.get_errno()
    sys.stderr.write("unshare(CLONE_NEWNET) failed: %s\n" % os.strerror(err))
    sys.exit(3)
for name in spec["ipsets"]:
    # Rules with -m set need the set to exist (any type, right family) to load.
    made = subprocess.run([spec["ipset"], "create", name, "hash:ip", "family", spec["ipset_family"]],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if made.returncode != 0:
        sys.stderr.buffer.write(b"ipset create " + name.encode() + b": " + made.stderr)
        sys.exit(6)
data = sys.stdin.buffer.read()
proc = subprocess.run(spec["restore"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
if proc.returncode != 0:
    sys.stderr.buffer.write(proc.stderr)
    sys.exit(4)
proc = subprocess.run(spec["save"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
if proc.returncode != 0:
    sys.stderr.buffer.write(proc.stderr)
    sys.exit(5)
sys.stdout.buffer.write(proc.stdout)
'''


_MATCH_SET = re.compile(r'--match-set\s+"?([^\s"]+)')


def scratch_argv(backend, restore_text=''):
    ipsets = sorted(set(_MATCH_SET.findall(restore_text))) if backend.family != 'eb' else []
    spec = {'restore': [backend.restore[0], '--noflush'], 'save': list(backend.save),
            'ipsets': ipsets, 'ipset': find_tool('ipset') or 'ipset',
            'ipset_family': 'inet6' if backend.family == 'ip6' else 'inet'}
    return [sys.executable, '-c', _SCRATCH_CODE, json.dumps(spec)]


def scratch_save(runner, backend, restore_text):
    """Load ``restore_text`` in a throwaway netns and return its ``*-save`` text.

    ipsets the rules name are created empty there first (they only have to
    exist, with the right family, for the rules to load).
    """
    rc, out, err = runner.run(scratch_argv(backend, restore_text), restore_text, kind='scratch')
    return _scratch_result(backend, rc, out, err)


_SCRATCH_FAILURES = {
    3: 'cannot create a scratch network namespace to read the tools\' spelling of the rules (needs root with '
       'CAP_SYS_ADMIN)',
    5: '%(save)s failed in the scratch namespace',
    6: 'cannot create the ipsets the rules name in the scratch namespace',
}


def _scratch_result(backend, rc, out, err):
    if rc == 0:
        return out
    tool = os.path.basename(backend.restore[0])
    if rc in _SCRATCH_FAILURES:
        what = _SCRATCH_FAILURES[rc] % {'save': os.path.basename(backend.save[0])}
    else:
        # rc 4: the restore refused the text; nothing was tried on the host yet.
        what = '%s (%s) rejected the desired rules (in a scratch namespace, the host is untouched)' % (
            tool, backend.name)
    raise CommandError('%s: %s' % (what, err.strip()), backend.restore, rc, err)
