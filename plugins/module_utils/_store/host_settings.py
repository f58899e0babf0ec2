# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-host settings kept in ``state_dir/host.json``, and the default ``state_dir``.

The stored networks, bindings and filters say *what* a host must have; these
settings say *how* to put it there, so that a reconcile without any module
options (the host agent at boot, after a firewalld reload) does what the last
playbook run did:

``xtables_backend``
    iptables/ip6tables variant: ``auto`` (follow the host's ``iptables``
    command), ``nft`` or ``legacy``.
``ebtables_backend``
    the same for ebtables.
``firewall_backend``
    the layout of guest NIC filters: ``iptables`` (libvirt's ebtables/iptables
    chains) or ``nftables`` (our own nftables layout).
``drop_unbound_interfaces``
    interface name patterns (a name, or a prefix ending in ``*``, e.g.
    ``vnet*``): with the nftables layout, frames from and to a matching tap
    that has no binding are dropped (fail closed for guests started before
    their binding).  Empty (the default): nothing is dropped.
``skip_missing_interfaces``
    ``False`` (the default, fail closed): a binding's rules are installed
    whether or not its tap exists (ebtables/iptables match interface *names*,
    so the rules hold from the tap's first frame).  ``True``: the old
    behaviour, bindings of absent interfaces are stored but not applied.

Modules write the settings they are given (:func:`save_host_settings`);
:func:`load_host_settings` returns the defaults for a host without the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.versioned_json import read_versioned

DEFAULT_STATE_DIR = '/etc/hypervisor-netfilter'
HOST_FILE = 'host.json'
FORMAT_VERSION = 1

VARIANTS = ('auto', 'nft', 'legacy')
FIREWALL_BACKENDS = ('iptables', 'nftables')


_PATTERN = re.compile(r'^[A-Za-z0-9_.:@-]{1,15}\*?$')


class HostSettingsError(NetfilterError):
    """A host setting is invalid, or host.json is damaged."""


@dataclasses.dataclass(frozen=True)
class HostSettings:
    xtables_backend: str = 'auto'
    ebtables_backend: str = 'auto'
    firewall_backend: str = 'iptables'
    skip_missing_interfaces: bool = False
    drop_unbound_interfaces: tuple = ()

    def __post_init__(self):
        patterns = self.drop_unbound_interfaces
        if not isinstance(patterns, (list, tuple)) or not all(
                isinstance(p, str) and _PATTERN.match(p) and p != '*' for p in patterns):
            raise HostSettingsError('drop_unbound_interfaces must be a list of interface names or prefixes ending '
                                    'in * (up to 15 characters of [A-Za-z0-9_.:@-]), got %r' % (patterns,))
        object.__setattr__(self, 'drop_unbound_interfaces', tuple(patterns))
        for name in ('xtables_backend', 'ebtables_backend'):
            if getattr(self, name) not in VARIANTS:
                raise HostSettingsError('%s must be one of %s, got %r'
                                        % (name, ', '.join(VARIANTS), getattr(self, name)))
        if self.firewall_backend not in FIREWALL_BACKENDS:
            raise HostSettingsError('firewall_backend must be one of %s, got %r'
                                    % (', '.join(FIREWALL_BACKENDS), self.firewall_backend))
        if not isinstance(self.skip_missing_interfaces, bool):
            raise HostSettingsError('skip_missing_interfaces must be true or false, got %r'
                                    % (self.skip_missing_interfaces,))

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """These settings with ``changes`` applied; ``None`` values are ignored (option not given)."""
        unknown = sorted(set(changes) - set(f.name for f in dataclasses.fields(self)))
        if unknown:
            raise HostSettingsError('unknown host settings: %s' % ', '.join(unknown))
        return dataclasses.replace(self, **dict((k, v) for k, v in changes.items() if v is not None))


def host_settings_path(state_dir):
    return os.path.join(state_dir, HOST_FILE)


def load_host_settings(state_dir):
    """The stored settings, or the defaults when ``host.json`` does not exist."""
    path = host_settings_path(state_dir)
    settings = read_versioned(path, 'host settings', FORMAT_VERSION, 'settings', dict, HostSettingsError)
    if settings is None:
        return HostSettings()
    try:
        return HostSettings().replace(**settings)
    except HostSettingsError as exc:
        raise HostSettingsError('host settings %s: %s' % (path, exc))


def save_host_settings(state_dir, settings):
    """Write ``settings`` atomically; returns whether the file changed."""
    if load_host_settings(state_dir) == settings and os.path.exists(host_settings_path(state_dir)):
        return False
    text = json.dumps({'version': FORMAT_VERSION, 'settings': settings.to_dict()}, indent=1, sort_keys=True) + '\n'
    atomic_write(host_settings_path(state_dir), text)
    return True
