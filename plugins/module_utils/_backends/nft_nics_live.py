# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the guest NIC nftables table (``table bridge hnf_nic``) as it is in the kernel.

One ``nft -j list table`` call (a missing table is an empty state), parsed
into a :class:`LiveTable`: chains as lists of nft's own JSON expressions, set
and map elements as values (intervals of integers), so that comparing with
the desired layout is comparing values, not spellings.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as L
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables_match as M
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import find_tool

_CHAIN_BLOCK = re.compile(r'^\tchain (\S+) \{\n(.*?)^\t\}', re.M | re.S)


class NftError(NetfilterError):
    """nft is missing, refused our rules, or printed something we cannot read."""


def nft_command():
    """The nft program's path (an error naming the package when it is missing)."""
    path = find_tool('nft')
    if path is None:
        raise NftError('the nftables backend for guest NIC filters needs the nft command (package nftables)')
    return path


@dataclasses.dataclass(frozen=True)
class LiveTable:
    exists: bool = False
    chains: dict = dataclasses.field(default_factory=dict)  # name -> [canonical rule json]
    base: dict = dataclasses.field(default_factory=dict)  # name -> (type, hook, prio, policy)
    sets: dict = dataclasses.field(default_factory=dict)  # name -> (type tuple, flags tuple, elements set)
    maps: dict = dataclasses.field(default_factory=dict)  # name -> (type, map type, {ifname: verdict})


def _canon_rule(expr):
    return json.dumps(expr, sort_keys=True, separators=(',', ':'))


def _scalar(kind, value):
    if isinstance(value, int):
        return value
    if kind == 'ipv4_addr':
        return int(ipaddress.IPv4Address(value))
    if kind == 'ipv6_addr':
        return int(ipaddress.IPv6Address(value))
    if kind == 'ether_addr':
        return M.parse_mac(value)
    return int(value, 0)


def _component(kind, value):
    if kind == 'ifname':
        return value
    if isinstance(value, dict) and 'prefix' in value:
        addr = value['prefix']['addr']
        width = 32 if kind == 'ipv4_addr' else 128
        low = _scalar(kind, addr)
        return (low, low | ((1 << (width - value['prefix']['len'])) - 1))
    if isinstance(value, dict) and 'range' in value:
        return (_scalar(kind, value['range'][0]), _scalar(kind, value['range'][1]))
    number = _scalar(kind, value)
    return (number, number)


def _element(types, value):
    if isinstance(value, dict) and 'elem' in value:
        value = value['elem']['val']
    if isinstance(value, dict) and 'concat' in value:
        parts = value['concat']
    else:
        parts = [value]
    return tuple(_component(kind, part) for kind, part in zip(types, parts))


def _verdict(value):
    for name in ('goto', 'jump'):
        if isinstance(value, dict) and name in value:
            return '%s %s' % (name, value[name]['target'])
    if isinstance(value, dict) and list(value.values()) == [None]:
        return list(value)[0]  # {"accept": null}: accept, drop, return, continue
    return json.dumps(value, sort_keys=True)


def parse_live(text):
    """LiveTable from ``nft -j list table`` output."""
    try:
        items = json.loads(text)['nftables']
    except (ValueError, KeyError, TypeError) as exc:
        raise NftError('cannot read nft -j output: %s' % exc)
    chains, base, sets, maps = {}, {}, {}, {}
    for item in items:
        if 'chain' in item:
            chain = item['chain']
            chains[chain['name']] = []
            if 'hook' in chain:
                base[chain['name']] = (chain.get('type'), chain['hook'], chain.get('prio'), chain.get('policy'))
        elif 'rule' in item:
            rule = item['rule']
            chains.setdefault(rule['chain'], []).append(_canon_rule(rule['expr']))
        elif 'set' in item:
            data = item['set']
            types = data['type'] if isinstance(data['type'], list) else [data['type']]
            try:
                elements = frozenset(_element(types, e) for e in data.get('elem', ()))
            except (ValueError, TypeError, KeyError, M.Unsupported) as exc:
                raise NftError('cannot read the elements of set %s: %s' % (data['name'], exc))
            sets[data['name']] = (tuple(types), tuple(sorted(data.get('flags', ()))), elements)
        elif 'map' in item:
            data = item['map']
            elements = dict((e[0], _verdict(e[1])) for e in data.get('elem', ()))
            maps[data['name']] = (data['type'], data['map'], elements)
    return LiveTable(True, chains, base, sets, maps)


def read_live(runner):
    rc, out, err = runner.run([nft_command(), '-j', 'list', 'table', L.FAMILY, L.TABLE])
    if rc != 0:
        if 'No such file or directory' in err:
            return LiveTable()
        raise NftError('nft -j list table %s %s failed: %s' % (L.FAMILY, L.TABLE, err.strip()))
    return parse_live(out)


def read_chain_texts(runner, names):
    """Rule lines of chains, as ``nft list table`` prints them (for --diff)."""
    if not names:
        return {}
    rc, out, _err = runner.run([nft_command(), 'list', 'table', L.FAMILY, L.TABLE])
    if rc != 0:
        return {}
    found = {}
    for match in _CHAIN_BLOCK.finditer(out):
        if match.group(1) in names:
            found[match.group(1)] = [line.strip() for line in match.group(2).splitlines()
                                     if line.strip() and not line.strip().startswith(('type ', 'comment '))]
    return found
