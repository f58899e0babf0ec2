# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply libvirt's nftables layout (``table ip|ip6 libvirt_network``) atomically.

Read: ``nft list table FAM libvirt_network`` for both families (a missing
table is an empty state, as for libvirt).

Compare: the desired tables are loaded with ``nft -f`` into a throwaway network
namespace (:mod:`._host.scratch`; bridges of the same names are created there
first: ``iif``/``oif`` need the device); what ``nft list`` prints there is
nft's own spelling of our rules. Live and
desired listings are compared after dropping handles and counters, so a
re-run with nothing to do makes no write.

Write: one ``nft -f`` script, one kernel transaction for both families: for
each family that must change, ``add table`` + ``delete table`` + the whole new
table (or just ``delete table`` when no network is left). Either all of it
applies or nothing does.
"""

from __future__ import annotations

import dataclasses
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.network_nftables import (
    FAMILIES, TABLE, render_table)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import HostError, find_tool
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.scratch import Step, run_in_scratch

_COUNTER = re.compile(r'counter packets \d+ bytes \d+')
_HANDLE = re.compile(r'\s+# handle \d+')


def normalise_listing(text):
    if text is None:
        return None
    lines = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        line = _HANDLE.sub('', _COUNTER.sub('counter', line)).rstrip()
        lines.append(line)
    return '\n'.join(lines) + '\n'


def read_live(runner):
    """{family: normalised listing or None when the table does not exist}."""
    live = {}
    for family in FAMILIES:
        rc, out, _err = runner.run(['nft', 'list', 'table', family, TABLE])
        live[family] = normalise_listing(out) if rc == 0 else None
    return live


def desired_listing(runner, ruleset, bridges):
    """What nft prints for ``ruleset`` once loaded ({family: listing or None})."""
    if not ruleset.tables:
        return dict((family, None) for family in FAMILIES)
    nft, ip = find_tool('nft'), find_tool('ip')
    if nft is None or ip is None:
        raise HostError('the nftables backend needs the nft and ip commands')
    # iif/oif need the devices: bridges of the same names are made in the scratch namespace.
    steps = [Step((ip, 'link', 'add', 'name', bridge, 'type', 'bridge')) for bridge in sorted(set(bridges))]
    steps.append(Step((nft, '-f', '-'), stdin=True))
    steps.extend(Step((nft, 'list', 'table', family, TABLE), may_fail=True) for family in FAMILIES)
    result = run_in_scratch(runner, steps, ruleset.render())
    if not result.ok:
        raise HostError('nft rejected the desired rules in a scratch namespace: %s' % result.stderr.strip())
    listing = dict(zip(FAMILIES, result.outputs[-len(FAMILIES):]))
    return dict((family, normalise_listing(listing.get(family))) for family in FAMILIES)


@dataclasses.dataclass(frozen=True)
class NftPlan:
    script: str  # '' when nothing changes
    before: dict  # family -> listing or None
    after: dict  # family -> listing or None
    changed_families: tuple = ()

    @property
    def changed(self):
        return bool(self.changed_families)


def plan(runner, ruleset, bridges):
    live = read_live(runner)
    desired = desired_listing(runner, ruleset, bridges)
    parts = []
    changed = []
    for family in FAMILIES:
        if live[family] == desired[family]:
            continue
        changed.append(family)
        table = ruleset.table(family)
        parts.append('add table %s %s\n' % (family, TABLE))
        parts.append('delete table %s %s\n' % (family, TABLE))
        if table is not None:
            parts.append(render_table(table))
    return NftPlan(''.join(parts), live, desired, tuple(changed))


def apply(runner, nft_plan):
    if nft_plan.changed:
        runner.run(['nft', '-f', '-'], data=nft_plan.script, kind='write', check=True)


def diff_text(listing_by_family):
    return ''.join(listing_by_family[f] or '' for f in FAMILIES)
