# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Networks the module manages, persisted in ``state_dir``.

One JSON file per network (``networks/<name>.json``) holds the model, the
firewall backend it was applied with, whether we created its bridge, the
firewalld zone we put it in and its start sequence number (libvirt's rule
order depends on the order networks were started: later networks' rules sit
above earlier ones). Files are written atomically (temp file + rename).

The desired host state is always the union of all stored networks, so a
network's ``state: absent`` removes exactly its own rules.
"""

from __future__ import annotations

import dataclasses
import json
import os

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import (
    NetworkSpec, NetworkSpecError)

SUBDIR = 'networks'
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class StoredNetwork:
    spec: NetworkSpec
    backend: str  # 'iptables' or 'nftables'
    seq: int
    bridge_created: bool = False
    zone: str | None = None  # firewalld zone we put the bridge in
    xtables_backend: str = 'auto'  # iptables tools variant: auto, nft or legacy
    create_bridge: bool = True  # we manage the bridge device (create it, its addresses, up)
    # gateway addresses (CIDR) we added to a bridge we did not create: removed with the network
    addresses_added: tuple = ()

    def to_json(self):
        return json.dumps({'version': FORMAT_VERSION, 'spec': self.spec.to_dict(), 'backend': self.backend,
                           'seq': self.seq, 'bridge_created': self.bridge_created, 'zone': self.zone,
                           'xtables_backend': self.xtables_backend, 'create_bridge': self.create_bridge,
                           'addresses_added': list(self.addresses_added)},
                          indent=1, sort_keys=True) + '\n'


class StoreError(NetworkSpecError):
    """A stored network file is unreadable or malformed."""


def _dir(state_dir):
    return os.path.join(state_dir, SUBDIR)


def network_path(state_dir, name):
    return os.path.join(_dir(state_dir), name + '.json')


def load_all(state_dir):
    """All stored networks, oldest start first."""
    directory = _dir(state_dir)
    if not os.path.isdir(directory):
        return ()
    out = []
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith('.json'):
            continue
        path = os.path.join(directory, entry)
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise StoreError('cannot read stored network %s: %s' % (path, exc))
        if not isinstance(data, dict) or data.get('version') != FORMAT_VERSION:
            raise StoreError('stored network %s has an unknown format' % path)
        spec = NetworkSpec.from_dict(data.get('spec') or {})
        if data.get('backend') not in ('iptables', 'nftables'):
            raise StoreError('stored network %s has an unknown backend %r' % (path, data.get('backend')))
        xtables_backend = data.get('xtables_backend') or 'auto'
        if xtables_backend not in ('auto', 'nft', 'legacy'):
            raise StoreError('stored network %s has an unknown xtables backend %r' % (path, xtables_backend))
        out.append(StoredNetwork(spec=spec, backend=data['backend'], seq=int(data.get('seq') or 0),
                                 bridge_created=bool(data.get('bridge_created')), zone=data.get('zone'),
                                 xtables_backend=xtables_backend,
                                 create_bridge=bool(data.get('create_bridge', True)),
                                 addresses_added=tuple(str(a) for a in data.get('addresses_added') or ())))
    return tuple(sorted(out, key=lambda n: (n.seq, n.spec.name)))


def next_seq(stored):
    return max([n.seq for n in stored] + [0]) + 1


def save(state_dir, network):
    atomic_write(network_path(state_dir, network.spec.name), network.to_json())


def remove(state_dir, name):
    path = network_path(state_dir, name)
    if os.path.exists(path):
        os.unlink(path)
