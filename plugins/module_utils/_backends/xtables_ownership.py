# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is ours in the host's xtables: :class:`Ownership` and the two layouts we own.

``Ownership(name, chains)``: ``chains`` is a tuple of ``(family, table,
regex)``; a chain of that table whose whole name matches the regex is *owned*:
ours entirely, compared as an ordered rule list, flushed and refilled when it
differs, deleted when no longer desired.  A rule in a built-in chain whose
``-j``/``-g`` target is an owned chain is one of our *hooks*.  Everything else
(an admin's chain that jumps into ours, other software's chains) is never
written.

* :data:`NWFILTER_OWNERSHIP`: libvirt's nwfilter chains of guest NICs.
* :data:`NETWORK_OWNERSHIP`: libvirt's ``LIBVIRT_*`` chains of virtual networks.
"""

from __future__ import annotations

import dataclasses
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import ApplyError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import BUILTIN_CHAINS, FAMILIES

# libvirt's nwfilter objects: ebtables nat chains of a NIC (libvirt-I/O-<dev>,
# I-/O-<dev>-<chain>, and the temporary J/P names of an interrupted swap) and
# the iptables/ip6tables filter chains FI/FO/HI-<dev> (FJ/FP/HJ temporary)
# plus the shared libvirt-in/out/in-post/host-in chains.  Sub-chains always
# have two dashes, so an admin's "I-accept" is not taken for ours.
_NWFILTER_EB = r'libvirt-[IOJP]-.+|[IOJP]-.+-.+'
_NWFILTER_IP = r'libvirt-(in|out|in-post|host-in)|(F[IOJP]|H[IJ])-.+'
# libvirt's private chains of virtual networks.
_NETWORK_FILTER = r'LIBVIRT_(INP|OUT|FWO|FWI|FWX)'


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


NETWORK_OWNERSHIP = Ownership('virt_network', (
    ('ip', 'filter', _NETWORK_FILTER),
    ('ip', 'nat', r'LIBVIRT_PRT'),
    ('ip', 'mangle', r'LIBVIRT_PRT'),
    ('ip6', 'filter', _NETWORK_FILTER),
    ('ip6', 'nat', r'LIBVIRT_PRT'),
    ('ip6', 'mangle', r'LIBVIRT_PRT'),
))
