# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest NIC filter bindings persisted in ``state_dir``.

Layout (default state_dir ``/etc/hypervisor-netfilter``)::

    bindings.json          {"version": 1, "bindings": [{interface, mac, filter, parameters}, ...]}
    bindings.applied.json  {"version": 1, "interfaces": [...]}: see :func:`save_applied`

One file for all bindings, in the order they were first stored (libvirt
instantiates in that order, and the order of the ebtables
PREROUTING/POSTROUTING jumps follows it); rebinding an interface keeps its
place.  One file, because a call that binds 1,000 NICs must not pay 1,000
fsyncs (measured: 4 ms each here).  It is written atomically (temporary
file in the same directory, fsync, ``os.replace``, fsync of the directory): a
reader sees the old or the new set of bindings, never a torn one.

Interface names become xtables/nft arguments, so they are checked with the
one interface-name rule (:mod:`._host.interfaces`: Linux's ``dev_valid_name``
with a conservative character set on top); the message says what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.interfaces import interface_name_problem
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.versioned_json import read_versioned

BINDINGS_FILE = 'bindings.json'
# Interfaces whose NIC chains runs wrote (a superset while a run applies): see save_applied.
APPLIED_FILE = 'bindings.applied.json'
FORMAT_VERSION = 1

_MAC = re.compile(r'^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$')
# Any name is stored: libvirt uses [A-Za-z0-9_]+ (a leading digit too) and drops
# other names; the compiler does the same and warns (see split_parameters).
_PARAM_NAME = re.compile(r'^[^\x00-\x1f\x7f]+$')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def validate_interface(name, where='interface'):
    """Return ``name`` if it is a safe interface name, else raise BindingError saying why."""
    problem = interface_name_problem(name)
    if problem is not None:
        raise BindingError('%s: %s' % (where, problem) if not isinstance(name, str) or not name
                           else '%s %r: %s' % (where, name, problem))
    return name


def normalise_mac(mac, where='mac'):
    if not isinstance(mac, str) or not _MAC.match(mac.strip()):
        raise BindingError('%s: %r is not a MAC address like 52:54:00:12:34:56' % (where, mac))
    return mac.strip().lower()


def normalise_parameters(parameters, where='parameters'):
    """``dict name -> str | list of str`` into ``((name, (value, ...)), ...)`` in given order."""
    if parameters is None:
        return ()
    if isinstance(parameters, (list, tuple)):
        items = parameters
    elif isinstance(parameters, dict):
        items = parameters.items()
    else:
        raise BindingError('%s must be a dict of name: value or list of values, got %s'
                           % (where, type(parameters).__name__))
    result = []
    seen = set()
    for name, value in items:
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise BindingError('%s: %r is not a valid parameter name (a non-empty string without control '
                               'characters)' % (where, name))
        if name in seen:
            raise BindingError('%s: parameter %s given twice' % (where, name))
        seen.add(name)
        values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not values:
            raise BindingError('%s: parameter %s has an empty list of values' % (where, name))
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise BindingError('%s: parameter %s: value %r must be a string' % (where, name, item))
            if _CONTROL.search(str(item)):
                # A line break would end a rule in the *-restore text: never let one through.
                raise BindingError('%s: parameter %s: value %r contains control characters' % (where, name, item))
        result.append((name, tuple(str(v) for v in values)))
    return tuple(result)


@dataclasses.dataclass(frozen=True)
class StoredBinding:
    interface: str
    mac: str
    filter: str
    parameters: tuple = ()  # ((name, (value, ...)), ...)
    seq: int = 0
    # libvirt's <owner> (the guest's name and UUID) of an imported <filterbinding>: kept, not used for rules
    owner: tuple = ()  # () or (name, uuid)

    @property
    def portdev(self):
        return self.interface

    def describe(self):
        """One line for diffs: interface, mac, filter and parameters."""
        params = ' '.join('%s=%s' % (name, ','.join(values)) for name, values in self.parameters)
        return ' '.join(part for part in (self.interface, self.mac, self.filter, params) if part)

    def parameters_dict(self):
        """Parameters as module output: a str for one value, a list for several."""
        return dict((name, values[0] if len(values) == 1 else list(values)) for name, values in self.parameters)

    def same_binding(self, other):
        """Equal apart from the storage order."""
        return (self.interface, self.mac, self.filter, self.parameters, self.owner) == \
            (other.interface, other.mac, other.filter, other.parameters, other.owner)

    def to_dict(self):
        data = {
            'interface': self.interface,
            'mac': self.mac,
            'filter': self.filter,
            'parameters': [[name, list(values)] for name, values in self.parameters],
        }
        if self.owner:
            data['owner'] = {'name': self.owner[0], 'uuid': self.owner[1]}
        return data


def _owner(owner, where):
    """``()`` or ``(name, uuid)`` from None, a pair or a dict with name and uuid."""
    if not owner:
        return ()
    if isinstance(owner, dict):
        owner = (owner.get('name'), owner.get('uuid'))
    if not isinstance(owner, (list, tuple)) or len(owner) != 2 or \
            not all(isinstance(part, str) and part and not _CONTROL.search(part) for part in owner):
        raise BindingError('%s: owner must have a name and a uuid, got %r' % (where, owner))
    return tuple(owner)


def make_binding(interface, mac, filter_name, parameters=None, seq=0, where=None, owner=None):
    """Validated :class:`StoredBinding` from module-style input."""
    where = where or 'binding %s' % (interface,)
    validate_interface(interface, where='%s: interface' % where)
    if not isinstance(filter_name, str) or not filter_name:
        raise BindingError('%s: filter must be a non-empty filter name' % where)
    return StoredBinding(interface, normalise_mac(mac, where='%s: mac' % where), filter_name,
                         normalise_parameters(parameters, where='%s: parameters' % where), seq,
                         _owner(owner, '%s: owner' % where))


def from_filterbinding(binding, seq=0):
    """From an :class:`nwfilter_parse.Binding` (a parsed ``<filterbinding>``), its owner kept."""
    owner = (binding.owner_name, binding.owner_uuid) if binding.owner_name and binding.owner_uuid else None
    return make_binding(binding.portdev, binding.mac, binding.filter, tuple(binding.parameters), seq,
                        where='filterbinding %s' % binding.portdev, owner=owner)


def bindings_path(state_dir):
    return os.path.join(state_dir, BINDINGS_FILE)


def _parse_entry(path, index, data):
    where = '%s: binding #%d' % (path, index + 1)
    try:
        return make_binding(data['interface'], data['mac'], data['filter'],
                            list(data.get('parameters') or []), index + 1, where=where, owner=data.get('owner'))
    except (ValueError, KeyError, TypeError) as exc:
        raise BindingError('%s is damaged: %s' % (where, exc))


def load_bindings(state_dir):
    """Every stored binding, in stored order (``seq`` is the 1-based position)."""
    path = bindings_path(state_dir)
    entries = read_versioned(path, 'stored bindings', FORMAT_VERSION, 'bindings', list, BindingError)
    if entries is None:
        return ()
    found = tuple(_parse_entry(path, i, entry) for i, entry in enumerate(entries))
    seen = set()
    for binding in found:
        if binding.interface in seen:
            raise BindingError('stored bindings %s hold interface %s twice' % (path, binding.interface))
        seen.add(binding.interface)
    return found


def binding_filters(state_dir):
    """``(interface, top-level filter)`` pairs (used by nwfilter_store.users_of)."""
    return tuple((b.interface, b.filter) for b in load_bindings(state_dir))


def next_seq(bindings):
    return max([b.seq for b in bindings] + [0]) + 1


def save_bindings(state_dir, bindings):
    """Replace the stored bindings by ``bindings`` (in this order), atomically."""
    path = bindings_path(state_dir)
    # One binding per line: as readable as an indented document, and each line comes from json's
    # C encoder (indent= selects the pure-Python one: 30 ms of a one-NIC change among 1,000).
    entries = ',\n'.join(' ' + json.dumps(b.to_dict(), sort_keys=True) for b in bindings)
    text = '{"bindings": [\n%s\n], "version": %s}\n' % (entries, json.dumps(FORMAT_VERSION))
    atomic_write(path, text)
    return path


def save_binding(state_dir, binding):
    """Store one binding (replacing the one of its interface in place, else appended)."""
    stored = list(load_bindings(state_dir))
    for index, old in enumerate(stored):
        if old.interface == binding.interface:
            stored[index] = binding
            break
    else:
        stored.append(binding)
    return save_bindings(state_dir, stored)


def remove_binding(state_dir, interface):
    """Delete the stored binding of ``interface``; return whether there was one."""
    validate_interface(interface)
    stored = load_bindings(state_dir)
    kept = [b for b in stored if b.interface != interface]
    if len(kept) == len(stored):
        return False
    save_bindings(state_dir, kept)
    return True


def applied_path(state_dir):
    return os.path.join(state_dir, APPLIED_FILE)


def save_applied(state_dir, interfaces):
    """Record the interfaces whose NIC chains are in the kernel by our runs.

    A real run writes the interfaces it applied plus the ones it adds *before* its kernel commit
    (``bindings.json`` is written only after the kernel accepted the rules, so a run killed in
    between, or failing after one family's restore, leaves chains of interfaces the store does not
    list), and exactly the ones it applied after.  The next run tells these (ours: finished or
    removed, never refused as "chains this collection did not make") from chains libvirt or another
    tool made (left alone, see ``_reconcile.foreign_nics``).
    """
    text = json.dumps({'version': FORMAT_VERSION, 'interfaces': sorted(interfaces)}, sort_keys=True) + '\n'
    atomic_write(applied_path(state_dir), text)


def load_applied(state_dir):
    """The interfaces :func:`save_applied` recorded (empty when missing or damaged)."""
    try:
        found = read_versioned(applied_path(state_dir), 'applied bindings', FORMAT_VERSION, 'interfaces', list,
                               BindingError)
    except BindingError:
        return frozenset()  # damaged: only the stored bindings count as ours
    return frozenset(i for i in found or () if isinstance(i, str))
