# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nft's own spelling of our chains, learnt in a throwaway network namespace and cached.

The desired chains are compared with the live ones as nft's JSON
expressions; nft alone knows how it prints what we write, so the desired
skeleton (chains and empty sets) is loaded once into a scratch namespace
(:mod:`._host.scratch`) and read back.  :class:`Canonical` keeps the result
by chain name (names carry a digest of the rules), with the outcome of
:func:`probe_bridge_conntrack`, in the one JSON cache of state_dir
(:mod:`._host.json_cache`, ``nft-nic-canonical.json``); keys carry the nft
binary's identity, so another nft learns afresh.
"""

from __future__ import annotations

import dataclasses
import json
import os

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.nft_nics_live import (
    NftError, nft_command, parse_live)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as L
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.json_cache import JsonCache, cache_path
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.scratch import Step, run_in_scratch


def _tool_id(path):
    try:
        stat = os.stat(os.path.realpath(path))
    except OSError:
        return path
    return '%s:%d:%d' % (os.path.realpath(path), stat.st_size, int(stat.st_mtime))


def scratch(runner, script, list_table=True):
    """Load ``script`` into a throwaway network namespace (:mod:`._host.scratch`);
    ``(the table's JSON or '' when not listed, '')``, or ``(None, nft's error)``."""
    nft = nft_command()
    steps = [Step((nft, '-f', '-'), stdin=True)]
    if list_table:
        steps.append(Step((nft, '-j', 'list', 'table', L.FAMILY, L.TABLE)))
    result = run_in_scratch(runner, steps, script)
    if result.unshare_failed:
        raise NftError('cannot create a scratch network namespace (needs root with CAP_SYS_ADMIN): %s'
                       % result.stderr.strip())
    if not result.ok:
        return None, result.stderr.strip()
    return (result.outputs[-1] if list_table else ''), ''


# ---------------------------------------------------------------------------- probes

PROBE_CONNTRACK = ('add table bridge hnf_probe\n'
                   'add chain bridge hnf_probe c { type filter hook forward priority 0; policy accept; }\n'
                   'add rule bridge hnf_probe c ct state established accept\n')


def probe_bridge_conntrack(runner, cache=None):
    """Whether ``ct state`` loads in a bridge-family table (nf_conntrack_bridge), tried in a scratch namespace."""
    key = 'conntrack:%s:%s' % (os.uname().release, _tool_id(nft_command()))
    known = cache.lookup('probe:' + key) if cache is not None else None
    if known is not None:
        return known
    out, _err = scratch(runner, PROBE_CONNTRACK, list_table=False)
    result = out is not None
    if cache is not None:
        cache.store('probe:' + key, result)
    return result


# ---------------------------------------------------------------------------- canonical forms

class Canonical(JsonCache):
    """nft's JSON spelling of our chains, learnt in a scratch namespace, cached in state_dir.

    ``chains``: chain key (:func:`chain_key`) -> rules, for the chains this run asked about.
    """

    VERSION = 2  # 1: chains and probes in a file of their own format

    def __init__(self, state_dir):
        super().__init__(cache_path(state_dir, 'nft-nic-canonical'))
        self.tool = _tool_id(nft_command())
        self.chains = {}

    def _entry(self, key):
        return 'chain:%s:%s' % (self.tool, key)

    def learn(self, runner, layout, keys):
        """Make sure every chain key in ``keys`` is known; one scratch load for all unknown ones."""
        for key in keys:
            if key not in self.chains:
                rules = self.lookup(self._entry(key))
                if rules is not None:
                    self.chains[key] = rules
        if all(k in self.chains for k in keys):
            return
        skeleton = dataclasses.replace(layout, sets=tuple(dataclasses.replace(s, elements=frozenset())
                                                          for s in layout.sets),
                                       maps=tuple((name, ()) for name, _elements in layout.maps))
        # The skeleton's maps are empty: add the base chains the layout uses but the skeleton lacks.
        script = L.render_layout(skeleton) + ''.join(
            line + '\n' for base in layout.bases() if base not in skeleton.bases()
            for line in L.render_base_chain(base, layout.fail_closed))
        out, err = scratch(runner, script)
        if out is None:
            raise NftError('nft rejected the desired guest NIC rules (tried in a scratch network namespace, the '
                           'host is untouched): %s' % err)
        live = parse_live(out)
        for name, rules in live.chains.items():
            key = chain_key(name, layout)
            self.chains[key] = rules
            self.store(self._entry(key), rules)


def chain_key(name, layout):
    """Cache key of a chain: its name (which carries a digest of its rules), or for base chains the rules."""
    for base in L.BASE_CHAINS:
        if base.name == name:
            return 'base:%s:%s' % (name, json.dumps(L.base_chain_rules(base, layout.fail_closed)))
    return name
