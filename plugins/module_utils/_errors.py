# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Error types of the engine. Modules turn them into ``fail_json`` messages."""

from __future__ import annotations


class NetfilterError(Exception):
    """Base class: something the user must fix; the message says what and where."""


class FilterError(NetfilterError):
    """An nwfilter document or reference is invalid.

    ``filter_name``, ``rule`` (e.g. "rule #3 (priority 500)"), ``attribute`` and
    ``value`` say where; the message always contains all that are known.
    """

    def __init__(self, message, filter_name=None, rule=None, attribute=None, value=None, source=None):
        self.message = message  # without the location (callers may re-label it, e.g. the YAML form)
        self.filter_name = filter_name
        self.rule = rule
        self.attribute = attribute
        self.value = value
        self.source = source
        where = []
        if source and source != filter_name:
            where.append(str(source))
        if filter_name is not None:
            where.append("filter '%s'" % filter_name)
        if rule is not None:
            where.append(str(rule))
        if attribute is not None:
            where.append("attribute '%s'" % attribute)
        if value is not None:
            where.append("value %r" % (value,))
        text = message if not where else '%s: %s' % (', '.join(where), message)
        super().__init__(text)


class ResolveError(FilterError):
    """A binding cannot be instantiated: missing filter, cycle, missing variables."""


class BindingError(NetfilterError):
    """A guest NIC binding is invalid (interface name, MAC, parameters)."""
