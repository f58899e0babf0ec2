# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolve a filter for one NIC: walk the filterref tree, pass variables down,
and expand list variables into concrete rule instances, exactly as libvirt does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import ResolveError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import FilterRef, Rule


@dataclasses.dataclass(frozen=True)
class ExpandedRule:
    """A rule of the flattened tree, with the context of the filter it came from."""

    rule: Rule
    filter_name: str
    chain: str
    chain_priority: int
    variables: tuple  # ((name, (value, ...)), ...) in effect for this rule


@dataclasses.dataclass(frozen=True)
class RuleInstance:
    """One variable combination of an expanded rule: every attribute is concrete.

    ``attrs`` maps attribute name -> (text, negated) in the protocol's table order.
    """

    rule: Rule
    filter_name: str
    chain: str
    chain_priority: int
    attrs: tuple
    by_name: dict = dataclasses.field(default=None, compare=False, hash=False, repr=False)

    def get(self, name):
        """(text, negated) of attribute ``name``, or None."""
        return self.by_name.get(name)

    def text(self, name):
        found = self.by_name.get(name)
        return found[0] if found else None


def normalise_parameters(parameters):
    """Accept a dict of str | list, or a tuple of (name, values) pairs; return the pair form."""
    if parameters is None:
        return ()
    items = parameters.items() if hasattr(parameters, 'items') else parameters
    result = []
    for name, value in items:
        if isinstance(value, (list, tuple)):
            values = tuple(str(v) for v in value)
        else:
            values = (str(value),)
        result.append((str(name), values))
    return tuple(result)


def _overlay(base, top):
    """Variables of ``top`` win over ``base`` (the caller's table over filterref parameters)."""
    table = dict(base)
    table.update(dict(top))
    return tuple(table.items())


def expand(filter_name, filters, variables):
    """Flatten the filter tree depth-first; raise ResolveError for missing filters or cycles."""
    expanded = []

    def walk(name, table, path):
        if name in path:
            cycle = path[path.index(name):] + (name,)
            raise ResolveError('filter reference cycle: %s' % ' -> '.join(cycle), filter_name=path[0])
        flt = filters.get(name)
        if flt is None:
            if path:
                raise ResolveError("referenced filter '%s' is missing (reference path: %s)" % (
                    name, ' -> '.join(path + (name,))), filter_name=path[-1])
            raise ResolveError("filter '%s' is not defined" % name)
        for entry in flt.entries:
            if isinstance(entry, FilterRef):
                walk(entry.filter, _overlay(entry.parameters, table), path + (name,))
            else:
                expanded.append(ExpandedRule(entry, flt.name, flt.chain, flt.priority, table))

    walk(filter_name, tuple(variables), ())
    return tuple(expanded)


def filter_tree(filter_name, filters):
    """Names of every defined filter reachable from ``filter_name`` (itself first).

    Missing references and cycles are skipped here; ``expand`` reports them.
    """
    seen = []
    pending = [filter_name]
    while pending:
        name = pending.pop(0)
        if name in seen or name not in filters:
            continue
        seen.append(name)
        pending.extend(filters[name].references)
    return tuple(seen)


def tree_digest(filter_name, filters):
    """Digest of every definition in ``filter_name``'s tree (missing references
    included): equal digests mean the tree compiles the same (cache keys)."""
    hasher = hashlib.sha256()
    for name in filter_tree(filter_name, filters):
        hasher.update(repr(filters[name]).encode('utf-8'))
        for ref in filters[name].references:
            if ref not in filters:
                hasher.update(('missing:' + ref).encode('utf-8'))
    if filter_name not in filters:
        hasher.update(('missing:' + filter_name).encode('utf-8'))
    return hasher.hexdigest()


def _accesses(rule):
    """Distinct variable accesses of a rule, in the order libvirt recorded them."""
    return list(rule.var_accesses)


def missing_variables(expanded_rules):
    """Every variable access that cannot be satisfied, in discovery order, de-duplicated."""
    missing = []
    for item in expanded_rules:
        table = dict(item.variables)
        for access in _accesses(item.rule):
            values = table.get(access.name)
            if values is None:
                label = access.name
            elif access.index is not None and access.index >= len(values):
                label = '%s[%d]' % (access.name, access.index)
            else:
                continue
            if label not in missing:
                missing.append(label)
    return missing


def _iterators(accesses):
    """Group accesses into iterators: iterator 0 first, then each @K and each [N] in order."""
    groups = [('iter', 0, [])]
    for access in accesses:
        if access.index is not None:
            groups.append(('index', access.index, [access]))
            continue
        for group in groups:
            if group[0] == 'iter' and group[1] == access.iterator:
                group[2].append(access)
                break
        else:
            groups.append(('iter', access.iterator, [access]))
    return groups


def _positions(group, table, item):
    kind, number, accesses = group
    if kind == 'index':
        return [number]
    if not accesses:
        return [0]
    lengths = set(len(table[a.name]) for a in accesses)
    if len(lengths) != 1:
        raise ResolveError('Cardinality of list items must be the same for processing them in parallel: %s'
                           % ', '.join('%s has %d' % (a.name, len(table[a.name])) for a in accesses),
                           filter_name=item.filter_name, rule=item.rule.where())
    kept = []
    seen = set()
    for position in range(lengths.pop()):
        combo = tuple(table[a.name][position] for a in accesses)
        if combo in seen:
            continue  # libvirt skips a position that repeats an earlier tuple of values
        seen.add(combo)
        kept.append(position)
    return kept


def instances(item):
    """All concrete instances of one expanded rule, in libvirt's iteration order."""
    rule = item.rule
    table = dict(item.variables)
    groups = _iterators(_accesses(rule))
    positions = [_positions(g, table, item) for g in groups]
    result = []
    # The first iterator varies fastest, like an odometer read from the left.
    for combo in itertools.product(*reversed(positions)):
        chosen = dict()
        for group, position in zip(groups, reversed(combo)):
            for access in group[2]:
                chosen[access] = table[access.name][position]
        attrs = tuple((value.name, chosen[value.var] if value.var is not None else value.text, value.negated)
                      for value in rule.values)
        by_name = dict((name, (text, negated)) for name, text, negated in attrs)
        result.append(RuleInstance(rule, item.filter_name, item.chain, item.chain_priority, attrs, by_name))
    return result


def resolve(filter_name, filters, variables):
    """Expanded rules of ``filter_name`` for one NIC, with all variables present.

    Raise ResolveError listing every missing variable at once.
    """
    expanded = expand(filter_name, filters, variables)
    missing = missing_variables(expanded)
    if missing == ['IP']:
        # libvirt would start learning the address here; we do not learn, so say what to pass.
        learning = dict(variables).get('CTRL_IP_LEARNING')
        if learning and learning[0].lower() not in ('none', 'any', 'dhcp'):
            raise ResolveError("learning value '%s' of CTRL_IP_LEARNING is invalid (none, any or dhcp); note that "
                               "IP addresses are not learned here: pass the IP parameter" % learning[0],
                               filter_name=filter_name, attribute='CTRL_IP_LEARNING', value=learning[0])
        raise ResolveError('the filter needs the variable IP, which libvirt would learn from the guest\'s traffic; '
                           'this engine does not learn addresses: pass the IP parameter (a list for several '
                           'addresses)', filter_name=filter_name)
    if missing:
        raise ResolveError('cannot instantiate filter due to unresolvable variables or unavailable list '
                           'elements: %s' % ', '.join(missing), filter_name=filter_name)
    return expanded
