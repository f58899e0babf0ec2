# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run commands in a private, throwaway network namespace (never the host's tables).

A child Python calls ``unshare(CLONE_NEWNET)`` and runs the given steps there,
in order; the namespace disappears with the child.  Uses: learn how the tools
spell our rules (load them, read them back), and kernel feature probes.  Each
step is ``{"argv": [...], "stdin": bool, "may_fail": bool}``; the stdin data
goes to the steps that ask for it; the stdout of every step comes back.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import find_tool

UNSHARE_FAILED = 3
_FIRST_STEP_EXIT = 10

_CHILD = r'''
import ctypes, json, os, subprocess, sys
steps = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x40000000) != 0:
    sys.stderr.write("unshare(CLONE_NEWNET) failed: %s\n" % os.strerror(ctypes.get_errno()))
    sys.exit(3)
data = sys.stdin.buffer.read()
outputs = []
for index, step in enumerate(steps):
    proc = subprocess.run(step["argv"], input=data if step["stdin"] else b"", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    if proc.returncode != 0 and not step["may_fail"]:
        sys.stderr.buffer.write(proc.stderr or proc.stdout)
        sys.exit(10 + index)
    outputs.append(proc.stdout.decode("utf-8", "surrogateescape") if proc.returncode == 0 else None)
sys.stdout.write(json.dumps(outputs))
'''


@dataclasses.dataclass(frozen=True)
class Step:
    argv: tuple
    stdin: bool = False
    may_fail: bool = False


@dataclasses.dataclass(frozen=True)
class ScratchResult:
    ok: bool
    outputs: tuple = ()  # stdout per step (None for a step that may fail and did)
    failed_step: int | None = None  # index of the step that failed; None: all ran (or unshare failed)
    unshare_failed: bool = False
    stderr: str = ''


def resolved(argv):
    """``argv`` with its tool as an absolute path, or None when the tool is missing."""
    tool = argv[0] if argv[0].startswith('/') else find_tool(argv[0])
    return None if tool is None else (tool,) + tuple(argv[1:])


def scratch_argv(steps):
    return [sys.executable, '-c', _CHILD,
            json.dumps([{'argv': list(s.argv), 'stdin': s.stdin, 'may_fail': s.may_fail} for s in steps])]


def run_in_scratch(runner, steps, data=''):
    """Run ``steps`` (:class:`Step`, tools resolved by the caller) in a scratch namespace."""
    rc, out, err = runner.run(scratch_argv(steps), data, kind='scratch')
    if rc == 0:
        try:
            outputs = json.loads(out)
        except ValueError:
            return ScratchResult(False, stderr='unreadable scratch namespace output: %r' % out[:200])
        return ScratchResult(True, tuple(outputs))
    if rc == UNSHARE_FAILED:
        return ScratchResult(False, unshare_failed=True, stderr=err)
    failed = rc - _FIRST_STEP_EXIT if _FIRST_STEP_EXIT <= rc < _FIRST_STEP_EXIT + len(steps) else None
    return ScratchResult(False, failed_step=failed, stderr=err)
