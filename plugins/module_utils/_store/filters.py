# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters a host knows: the built-in catalog overlaid by the filters defined
in ``state_dir``.

Layout of ``state_dir`` (default ``/etc/hypervisor-netfilter``)::

    filters/<name>.xml     one defined filter, canonical XML (nwfilter_format)

Files are written atomically (temporary file in the same directory, fsync,
``os.replace``, fsync of the directory), so a reader sees the old or the new
filter, never a torn one.  Filter names become file names, hence
:func:`validate_filter_name`.

Like libvirt: a defined filter may replace a built-in of the same name;
references to filters that do not exist yet are allowed at definition time;
a definition that closes a reference cycle among the known filters is refused
(:func:`check_no_cycle` names the cycle).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write, fsync_dir
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.format import format_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import FilterRef, parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.yaml_form import filter_to_options

DEFAULT_STATE_DIR = host_settings.DEFAULT_STATE_DIR
FILTERS_SUBDIR = 'filters'
SUFFIX = '.xml'
MAX_NAME_LENGTH = 200

# Letters, digits and _ . : + - @; not starting with '.' or '-' (hidden files,
# '.', '..', option-like names).  Every libvirt stock filter name and the names
# OpenStack/oVirt generate (nova-instance-instance-00000001-fa163e...) fit.
_NAME = re.compile(r'[A-Za-z0-9_:+@][A-Za-z0-9_.:+@-]*')


class StoreError(FilterError):
    """A stored filter cannot be read or written."""


def validate_filter_name(name):
    """Raise FilterError unless ``name`` is safe to use as a filter (file) name."""
    if not isinstance(name, str) or not name:
        raise FilterError('a filter name must be a non-empty string', value=name)
    if len(name) > MAX_NAME_LENGTH:
        raise FilterError('filter name is %d characters long; at most %d are allowed' % (len(name), MAX_NAME_LENGTH),
                          value=name[:40] + '...')
    if not _NAME.fullmatch(name):
        bad = sorted(set(c for c in name if not re.match(r'[A-Za-z0-9_.:+@-]', c)))
        detail = ('characters %s are not allowed' % ', '.join(repr(c) for c in bad)) if bad else \
            "it must not start with '.' or '-'"
        raise FilterError('invalid filter name: %s (use letters, digits and _ . : + - @)' % detail, value=name)
    return name


def filters_dir(state_dir):
    return os.path.join(state_dir, FILTERS_SUBDIR)


def filter_path(state_dir, name):
    validate_filter_name(name)
    return os.path.join(filters_dir(state_dir), name + SUFFIX)


# --------------------------------------------------------------------------
# Built-ins

_BUILTIN_CACHE = {}


def builtin_filters():
    """The built-in catalog parsed once per process: dict name -> Filter."""
    if not _BUILTIN_CACHE:
        for name, text in BUILTIN_FILTERS.items():
            _BUILTIN_CACHE[name] = parse_filter(text, source='built-in filter %s' % name, strict=True)
    return dict(_BUILTIN_CACHE)


def is_builtin(name):
    return name in BUILTIN_FILTERS


# --------------------------------------------------------------------------
# Reading

def load_defined(state_dir):
    """The filters defined in ``state_dir``: dict name -> Filter (empty if none)."""
    directory = filters_dir(state_dir)
    try:
        entries = sorted(os.listdir(directory))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return {}
        raise StoreError('cannot list %s: %s' % (directory, exc))
    defined = {}
    for entry in entries:
        if not entry.endswith(SUFFIX) or entry.startswith('.'):
            continue  # temporary files of an interrupted write
        path = os.path.join(directory, entry)
        try:
            with open(path, encoding='utf-8') as handle:
                text = handle.read()
        except OSError as exc:
            raise StoreError('cannot read stored filter %s: %s' % (path, exc))
        nwfilter = parse_filter(text, source=path, strict=False)
        if nwfilter.name + SUFFIX != entry:
            raise StoreError("stored filter %s is named '%s'; the file name must be '%s%s'"
                             % (path, nwfilter.name, nwfilter.name, SUFFIX))
        defined[nwfilter.name] = nwfilter
    return defined


def load_filters(state_dir):
    """Every filter the host knows: built-ins overlaid by the defined ones."""
    filters = builtin_filters()
    filters.update(load_defined(state_dir))
    return filters


# --------------------------------------------------------------------------
# References, cycles, users

def references(nwfilter):
    """Names of the filters ``nwfilter`` references directly, in document order, once each."""
    seen = []
    for entry in nwfilter.entries:
        if isinstance(entry, FilterRef) and entry.filter not in seen:
            seen.append(entry.filter)
    return tuple(seen)


def find_cycle(nwfilter, filters):
    """If defining ``nwfilter`` would make its reference tree (through ``filters``,
    with ``nwfilter`` replacing any filter of its name) reach its own name, return
    the cycle as a list of names ``[F, ..., F]``; otherwise None."""
    known = dict(filters)
    known[nwfilter.name] = nwfilter
    target = nwfilter.name
    visited = set()

    def walk(name, path):
        for child in references(known[name]):
            if child == target:
                return path + [child]
            if child in visited or child not in known:
                continue  # undefined references are allowed at definition time
            visited.add(child)
            found = walk(child, path + [child])
            if found:
                return found
        return None

    return walk(target, [target])


def check_no_cycle(nwfilter, filters):
    cycle = find_cycle(nwfilter, filters)
    if cycle:
        raise FilterError('filter would introduce a reference loop: %s' % ' -> '.join(cycle),
                          filter_name=nwfilter.name)


def reference_closure(name, filters):
    """Every filter name reachable from ``name`` (itself included), known or not."""
    reached = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in reached:
            continue
        reached.add(current)
        if current in filters:
            pending.extend(references(filters[current]))
    return reached


def referencing_filters(name, filters):
    """Names of the filters that reference ``name`` directly, sorted."""
    return tuple(sorted(other for other, f in filters.items() if other != name and name in references(f)))


@dataclasses.dataclass(frozen=True)
class Users:
    filters: tuple = ()  # names of filters that reference the filter directly
    bindings: tuple = ()  # interfaces (portdev) whose binding's filter tree contains it

    def __bool__(self):
        return bool(self.filters or self.bindings)

    def describe(self):
        parts = []
        if self.filters:
            parts.append('filters %s' % ', '.join("'%s'" % n for n in self.filters))
        if self.bindings:
            parts.append('bindings of interfaces %s' % ', '.join("'%s'" % n for n in self.bindings))
        return ' and '.join(parts)


def stored_bindings(state_dir):
    """``(interface, top-level filter name)`` of every guest NIC binding stored in
    ``state_dir`` (the bindings belong to binding_store)."""
    return tuple(binding_store.binding_filters(state_dir))


def bindings_using(name, filters, bindings):
    """Interfaces among ``bindings`` ((interface, filter)) whose tree contains ``name``."""
    return tuple(sorted(interface for interface, top in bindings if name in reference_closure(top, filters)))


def users_of(name, state_dir, filters=None, bindings=None):
    """Who uses filter ``name``: filters referencing it and bindings whose tree contains it."""
    if filters is None:
        filters = load_filters(state_dir)
    if bindings is None:
        bindings = stored_bindings(state_dir)
    return Users(filters=referencing_filters(name, filters), bindings=bindings_using(name, filters, bindings))


# --------------------------------------------------------------------------
# Writing

def save_filter(state_dir, nwfilter):
    """Store ``nwfilter`` (which must have a UUID) as canonical XML; return the text written."""
    if not nwfilter.uuid:
        raise StoreError('refusing to store a filter without UUID', filter_name=nwfilter.name)
    text = format_filter(nwfilter)
    atomic_write(filter_path(state_dir, nwfilter.name), text)
    return text


def remove_filter(state_dir, name):
    """Delete the stored definition of ``name``; return whether there was one."""
    path = filter_path(state_dir, name)
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise StoreError('cannot remove %s: %s' % (path, exc), filter_name=name)
    fsync_dir(os.path.dirname(path))
    return True


# --------------------------------------------------------------------------
# Planning a definition / removal (pure: the nwfilter module writes the result)

@dataclasses.dataclass(frozen=True)
class Change:
    """What defining or removing a filter does.

    ``before``/``after`` are canonical XML ('' when absent); ``filter`` is the
    filter as it will be stored (with its UUID) or None for a removal;
    ``write`` says whether state_dir changes; ``changed`` whether the filter
    the host knows under ``name`` changes (both differ for a built-in: defining
    it with its built-in text writes nothing; removing an override changes it).
    """

    name: str
    before: str
    after: str
    filter: object = None
    write: bool = False
    remove: bool = False
    notes: tuple = ()

    @property
    def changed(self):
        return self.before != self.after


def plan_define(nwfilter, filters, defined, new_uuid):
    """Plan storing ``nwfilter`` given every known filter (``filters``) and the
    defined ones (``defined``); ``new_uuid`` is used when neither the document
    nor an existing filter of that name has one.  Raises FilterError."""
    name = validate_filter_name(nwfilter.name)
    existing = filters.get(name)
    if nwfilter.uuid is None:
        nwfilter = nwfilter.with_uuid(existing.uuid if existing is not None and existing.uuid else new_uuid)
    elif name in defined and defined[name].uuid and defined[name].uuid != nwfilter.uuid:
        # libvirt refuses this too ("filter 'X' already exists with uuid Y")
        raise FilterError('filter already exists with uuid %s; remove it first or omit <uuid>' % defined[name].uuid,
                          filter_name=name, attribute='uuid', value=nwfilter.uuid)
    for other_name, other in sorted(filters.items()):
        if other_name != name and other.uuid == nwfilter.uuid:
            raise FilterError("uuid is already used by filter '%s'" % other_name, filter_name=name,
                              attribute='uuid', value=nwfilter.uuid)
    check_no_cycle(nwfilter, filters)
    before = format_filter(existing) if existing is not None else ''
    after = format_filter(nwfilter)
    if name in defined:
        write = format_filter(defined[name]) != after
    else:
        write = before != after  # a built-in defined with its own text needs no file
    return Change(name=name, before=before, after=after, filter=nwfilter, write=write)


def plan_undefine(name, filters, defined, bindings):
    """Plan removing the definition of ``name``; refuse while it is used.

    ``bindings`` is a sequence of (interface, top-level filter name).
    Removing a redefined built-in falls back to the built-in definition; a
    built-in cannot be removed.  Raises FilterError when the filter is in use.
    """
    validate_filter_name(name)
    if name not in defined:
        notes = ("'%s' is a built-in filter; its built-in definition stays" % name,) if is_builtin(name) else ()
        return Change(name=name, before='', after='', notes=notes) if not is_builtin(name) else \
            Change(name=name, before=format_filter(filters[name]), after=format_filter(filters[name]), notes=notes)
    before = format_filter(defined[name])
    if is_builtin(name):
        builtin = builtin_filters()[name]
        return Change(name=name, before=before, after=format_filter(builtin), remove=True, write=True,
                      notes=("'%s' falls back to its built-in definition" % name,))
    remaining = dict(filters)
    del remaining[name]
    users = Users(filters=referencing_filters(name, remaining), bindings=bindings_using(name, filters, bindings))
    if users:
        raise FilterError('cannot remove the filter while it is used by %s' % users.describe(), filter_name=name)
    return Change(name=name, before=before, after='', remove=True, write=True)


def affected_bindings(name, filters, bindings):
    """Interfaces whose binding must be rebuilt when filter ``name`` changes."""
    return bindings_using(name, filters, bindings)


def describe_filter(nwfilter, defined_names):
    """The ``gathered`` entry of one filter (virsh nwfilter-list + nwfilter-dumpxml)."""
    return dict(name=nwfilter.name, uuid=nwfilter.uuid, chain=nwfilter.chain, priority=nwfilter.priority,
                builtin=is_builtin(nwfilter.name), defined=nwfilter.name in defined_names,
                xml=format_filter(nwfilter), yaml=filter_to_options(nwfilter))
