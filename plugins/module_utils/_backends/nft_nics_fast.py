# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incremental path of the guest NIC nftables layout: NIC changes without reading the table.

Every nftables commit in a network namespace bumps the kernel's ruleset
generation id (``NFT_MSG_GETGEN``), iptables-nft and ebtables-nft commits
included.  After a run that left the live table equal to the desired layout,
:class:`Snapshot` records that id with each NIC's share of the layout (its
compile key, map entries, set elements and chains) in
``state_dir/cache/nft-applied.json``.  When the id is still the same, nothing
in nftables changed since, so the live table is known without reading it:
a run whose NICs only differ in set and map elements (new, changed or
removed NICs on chains that exist) writes the element difference at once.

Anything else (another id: some tool committed, maybe a drift; new or
unused chains; a NIC that needs xtables; legacy xtables, which the id does
not cover) returns None and the caller takes the full path: read, diff,
apply, and record a new snapshot.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import Runner
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as L
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write

VERSION = 1
_NFNL_SUBSYS_NFTABLES = 10
_NFT_MSG_GETGEN = 16
_NFTA_GEN_ID = 1

# The same query for a runner that runs commands elsewhere (a test namespace): prints the id.
GENID_CODE = r'''
import socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
s.send(struct.pack("=IHHII", 20, (10 << 8) | 16, 1, 1, 0) + struct.pack("BBH", 0, 0, 0))
data = s.recv(4096)
at = 20
while at + 4 <= len(data):
    length, kind = struct.unpack_from("=HH", data, at)
    if kind & 0x7fff == 1:
        print(struct.unpack_from("!I", data, at + 4)[0])
        break
    at += (length + 3) & ~3
'''


def _genid_here():
    """The ruleset generation id of this process's network namespace, or None."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    except OSError:
        return None
    try:
        sock.send(struct.pack('=IHHII', 20, (_NFNL_SUBSYS_NFTABLES << 8) | _NFT_MSG_GETGEN, 1, 1, 0)
                  + struct.pack('BBH', 0, 0, 0))
        data = sock.recv(4096)
    except OSError:
        return None
    finally:
        sock.close()
    at = 20  # nlmsghdr + nfgenmsg
    while at + 4 <= len(data):
        length, kind = struct.unpack_from('=HH', data, at)
        if length < 4:
            break
        if kind & 0x7fff == _NFTA_GEN_ID:
            return struct.unpack_from('!I', data, at + 4)[0]
        at += (length + 3) & ~3
    return None


IDENTITY_CODE = r'''
import os
with open("/proc/sys/kernel/random/boot_id") as handle:
    print("%s:%d" % (handle.read().strip(), os.stat("/proc/self/ns/net").st_ino))
'''


def identity(runner):
    """Which kernel boot and network namespace ``runner`` works in: a generation id only means
    something there (it restarts with every boot and every namespace)."""
    if type(runner).argv_for is Runner.argv_for:
        try:
            with open('/proc/sys/kernel/random/boot_id', encoding='ascii') as handle:
                return '%s:%d' % (handle.read().strip(), os.stat('/proc/self/ns/net').st_ino)
        except OSError:
            return None
    rc, out, _err = runner.run([sys.executable, '-c', IDENTITY_CODE])
    return out.strip() if rc == 0 and out.strip() else None


def genid(runner):
    """The generation id where ``runner`` runs its commands (None when it cannot be read)."""
    if type(runner).argv_for is Runner.argv_for:
        return _genid_here()
    rc, out, _err = runner.run([sys.executable, '-c', GENID_CODE])
    return int(out) if rc == 0 and out.strip().isdigit() else None


def _pack(entry):
    """A NIC's entry with its bulky parts as one JSON string: loading the snapshot parses
    a thousand short strings, and only the NICs that change are unpacked."""
    packed = json.dumps([entry['d'], entry['w'], entry['s']], separators=(',', ':'))
    return {'k': entry['k'], 'm': entry['m'], 'p': packed}


def _unpack(packed):
    dispatch, warnings, sets = json.loads(packed['p'])
    return {'k': packed['k'], 'm': packed['m'], 'd': dispatch, 'w': warnings, 's': sets}


def _element_out(element):
    return [element[0]] + [list(c) for c in element[1:]]


def _element_in(data):
    return (data[0],) + tuple(tuple(c) for c in data[1:])


class Snapshot:
    """The layout as last verified or applied, per NIC, with the generation id after it."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, 'cache', 'nft-applied.json') if state_dir else None
        self.data = None
        if self.path and os.path.exists(self.path):
            try:
                with open(self.path, encoding='utf-8') as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and data.get('version') == VERSION:
                self.data = data

    def forget(self):
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)
        self.data = None

    def record(self, generation, context, keys, layout):
        """Write the snapshot of ``layout`` (the live table now) at ``generation``."""
        if not self.path:
            return
        nics = {}
        for nic in layout.nics:
            nics[nic.interface] = {'k': keys.get(nic.interface), 'd': [list(d) for d in nic.dispatch],
                                   'm': nic.mode, 'w': list(nic.warnings), 's': {}}
        for nft_set in layout.sets:
            for element in nft_set.elements:
                entry = nics.get(element[0])
                if entry is not None:
                    entry['s'].setdefault(nft_set.name, []).append(_element_out(element))
        data = {'version': VERSION, 'genid': generation, 'context': context,
                'nics': dict((name, _pack(entry)) for name, entry in nics.items()),
                'chains': [c.name for c in layout.chains], 'bases': [b.name for b in layout.bases()],
                'sets': dict((s.name, [list(s.key), s.interval, list(s.kinds)]) for s in layout.sets)}
        atomic_write(self.path, json.dumps(data, separators=(',', ':')), durable=False)
        self.data = data


def fast_plan(snapshot, generation, context, bindings, keys, compile_one):
    """``(script, changes)`` for the element-only difference, or None when the full path is needed.

    ``keys``: interface -> compile key of each binding now; ``compile_one(binding)`` -> NicResult.
    ``changes``: dict with interfaces, elements_added/deleted (set or map, element line), new snapshot
    pieces (``nics``) for :func:`Snapshot` to record.
    """
    data = snapshot.data
    if data is None or generation is None or data.get('genid') != generation or data.get('context') != context:
        return None
    old = data['nics']
    wanted = dict((b.interface, b) for b in bindings)
    changed = [b for b in bindings if old.get(b.interface, {}).get('k') != keys[b.interface]]
    gone = [i for i in old if i not in wanted]
    chains = set(data['chains'])
    sets = data['sets']
    fam, table = L.FAMILY, L.TABLE
    deletes, adds, added, deleted = [], [], [], []
    new_entries = {}
    for interface in gone:
        if old[interface]['m'] != L.NFT:
            return None
    for binding in changed:
        result = compile_one(binding)
        nic = result.layout
        if nic.mode != L.NFT or any(c.name not in chains for c in result.chains) or \
                any(base not in data['bases'] for base, _target in nic.dispatch):
            return None  # needs xtables, new chains or a base chain not there: the full path does it
        entry = {'k': keys[binding.interface], 'd': [list(d) for d in nic.dispatch], 'm': nic.mode,
                 'w': list(nic.warnings), 's': {}}
        for nft_set in result.sets:
            if sets.get(nft_set.name) != [list(nft_set.key), nft_set.interval, list(nft_set.kinds)]:
                return None
            if nft_set.elements:
                entry['s'][nft_set.name] = [_element_out(e) for e in sorted(nft_set.elements)]
        if binding.interface in old and old[binding.interface]['m'] != L.NFT:
            return None
        new_entries[binding.interface] = entry
    unpacked = dict((i, _unpack(old[i])) for i in set(new_entries) | set(gone) if i in old)
    # Per NIC: only the map entries and set elements that differ.
    for interface in sorted(set(new_entries) | set(gone)):
        before = unpacked.get(interface, {'d': [], 's': {}})
        after = new_entries.get(interface, {'d': [], 's': {}})
        old_map, new_map = dict(map(tuple, before['d'])), dict(map(tuple, after['d']))
        for base in L.BASE_CHAINS:
            was, now = old_map.get(base.map), new_map.get(base.map)
            if was == now:
                continue
            if was is not None:
                deletes.append('delete element %s %s %s { "%s" }' % (fam, table, base.map, interface))
                deleted.append((base.map, '"%s" : goto %s' % (interface, was)))
            if now is not None:
                adds.append('add element %s %s %s { "%s" : goto %s }' % (fam, table, base.map, interface, now))
                added.append((base.map, '"%s" : goto %s' % (interface, now)))
        for name in sorted(set(before['s']) | set(after['s'])):
            nft_set = _declared(name, sets)
            was = set(_element_in(e) for e in before['s'].get(name, ()))
            now = set(_element_in(e) for e in after['s'].get(name, ()))
            if was - now:
                deletes.append(L.render_elements('delete', nft_set, sorted(was - now)))
                deleted.extend((name, L.render_element(nft_set, e)) for e in sorted(was - now))
            if now - was:
                adds.append(L.render_elements('add', nft_set, sorted(now - was)))
                added.extend((name, L.render_element(nft_set, e)) for e in sorted(now - was))
    # Chains nobody reaches any more would have to go: that is the full path's job.
    targets = set(t for entry in unpacked.values() for _b, t in entry['d']) - set(
        t for entry in new_entries.values() for _b, t in entry['d'])
    if targets:
        # Some chain lost a user: is anyone else still dispatched to it? (else the full path deletes it)
        still = set()
        for interface, packed in old.items():
            if interface in wanted and interface not in new_entries and any(t in packed['p'] for t in targets):
                still.update(t for t in targets if t in packed['p'])
        if targets - still:
            return None
    interfaces = sorted(set(i for _c, e in added + deleted for i in [e.split('"')[1]]))
    script = '\n'.join(deletes + adds) + '\n' if (deletes or adds) else ''
    return script, {'interfaces': tuple(interfaces), 'elements_added': tuple(added),
                    'elements_deleted': tuple(deleted), 'entries': new_entries, 'gone': tuple(gone)}


def _declared(name, sets):
    key, interval, kinds = sets[name]
    return L.NftSet(name, tuple(key), interval, frozenset(), tuple(kinds))


def updated(snapshot, generation, changes):
    """The snapshot data after a fast run (same chains and sets; NIC entries replaced)."""
    data = dict(snapshot.data)
    nics = dict(data['nics'])
    for interface in changes['gone']:
        nics.pop(interface, None)
    nics.update((name, _pack(entry)) for name, entry in changes['entries'].items())
    data['nics'] = nics
    data['genid'] = generation
    return data


def write(snapshot, data):
    if snapshot.path:
        atomic_write(snapshot.path, json.dumps(data, separators=(',', ':')), durable=False)
        snapshot.data = data
