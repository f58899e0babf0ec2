# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Result keys every module returns from the whole-host reconcile its run ends with.

``objects``: one dict per stored network and guest NIC binding (kind, name,
status in_sync / repaired / would_repair / skipped / failed, missing,
summary, error); ``in_sync`` (state=gathered): whether all of them are.
The modules document these keys in their RETURN sections.
"""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.module_run import failures

IN_SYNC = ('in_sync', 'skipped')


def objects(report, kinds=None):
    """The per-object reports of ``report`` (only those of ``kinds`` when given), as dicts."""
    return [o.to_dict() for o in report.objects if kinds is None or o.kind in kinds]


def in_sync(report, kinds=None):
    return all(o.status in IN_SYNC for o in report.objects if kinds is None or o.kind in kinds)


def diff(own, report):
    """The module's own diff (a dict, a list of dicts or None) followed by the reconcile's."""
    if not report.diff:
        return own
    mine = [] if own is None else ([own] if isinstance(own, dict) else list(own))
    return mine + list(report.diff)


def fail_if_failed(module, report, result):
    """Fail the run, with ``result`` and the failed objects named, when the reconcile could not repair one."""
    if report.failed:
        module.fail_json(msg='the host could not be brought in sync with %s: %s'
                         % (module.params['state_dir'], failures(report)), **result)
