# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way the engine runs a host command: :class:`Runner`, with tool lookup.

Commands are argument vectors, never shell strings.  A bare tool name is
looked up in PATH and the sbin directories (Ansible sometimes runs modules with
a minimal PATH); a missing tool is a :class:`CommandError` that names it.
Every call is recorded as ``(kind, argv)`` with kind ``read``, ``write`` or
``scratch``, so callers and tests can tell that a no-op run wrote nothing.
Output is decoded as UTF-8 whatever the locale (rule comments may hold any
text); undecodable bytes survive as surrogate escapes.

Subclasses may override :meth:`Runner.argv_for` (tests run every command
inside a test namespace with ``ip netns exec``).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError

# Directories searched besides PATH (Ansible runs modules with a minimal PATH sometimes).
_SBIN = ('/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin')


class HostError(NetfilterError):
    """A host command or host setting failed; the message carries the tool's own error text."""


class CommandError(HostError):
    """A tool is missing, did not finish, or exited non-zero; ``stderr`` holds its own message."""

    def __init__(self, message, argv=None, rc=None, stderr=''):
        self.argv = tuple(argv or ())
        self.rc = rc
        self.stderr = stderr
        super().__init__(message)


def find_tool(name):
    """Absolute path of executable ``name``, or None."""
    path = shutil.which(name)
    if path:
        return path
    for directory in _SBIN:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class Runner:
    """Runs argument vectors without a shell and remembers what it ran (``calls``)."""

    def __init__(self, timeout=900):
        self.calls = []
        self.timeout = timeout

    def argv_for(self, argv):
        """The argv actually run: the tool resolved to its path."""
        argv = list(argv)
        if not os.path.isabs(argv[0]):
            tool = find_tool(argv[0])
            if tool is None:
                raise CommandError('required command %s was not found' % argv[0], argv)
            argv[0] = tool
        return argv

    def run(self, argv, data=None, kind='read', check=False):
        """``(rc, stdout, stderr)``; with ``check`` a non-zero exit raises :class:`CommandError`."""
        argv = self.argv_for(argv)
        self.calls.append((kind, tuple(argv)))
        try:
            proc = subprocess.run(list(argv), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  check=False, encoding='utf-8', errors='surrogateescape', timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise CommandError('%s did not finish within %d s' % (argv[0], self.timeout), argv) from exc
        except OSError as exc:
            raise CommandError('cannot run %s: %s' % (argv[0], exc), argv) from exc
        if check and proc.returncode != 0:
            raise CommandError('%s failed (exit %d): %s' % (' '.join(argv), proc.returncode,
                                                            (proc.stderr or proc.stdout).strip()),
                               argv, proc.returncode, proc.stderr)
        return proc.returncode, proc.stdout, proc.stderr

    def start(self, argv, kind='read'):
        """Start ``argv`` (no input) in the background; :meth:`finish` collects it.

        Lets a caller do its own work (compiling, merging) while a big
        ``*-save`` runs.  Subclasses that only override :meth:`run` still work:
        their start runs the command at once.
        """
        if type(self).run is not Runner.run:
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
