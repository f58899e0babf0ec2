# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse ``ebtables-save`` / ``iptables-save`` / ``ip6tables-save`` output.

The parser keeps each rule as the exact text the tool printed after
``-A CHAIN `` (its *save spelling*).  The apply engine compares save text with
save text (see :mod:`xtables_apply`), so nothing here has to understand what a
rule means: only the target of rules in chains we do not own is looked at.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError


class SaveParseError(NetfilterError):
    """A ``*-save`` dump could not be understood."""


@dataclasses.dataclass(frozen=True)
class SavedChain:
    name: str
    policy: str  # 'ACCEPT'/'DROP'/... for built-ins and ebtables chains, '-' for iptables user chains
    rules: tuple = ()  # rule texts in save spelling, without the leading "-A NAME "


@dataclasses.dataclass(frozen=True)
class SavedTable:
    family: str
    name: str
    chains: tuple = ()  # SavedChain, in dump order

    def chain_map(self):
        return {c.name: c for c in self.chains}


def split_words(text):
    """Split a restore/save line the way the xtables tokenizer does.

    Words are separated by blanks; a double-quoted word may contain blanks,
    ``\\"`` and ``\\\\``.  Single quotes have no special meaning.
    """
    words = []
    current = []
    in_quotes = False
    had_quotes = False
    i = 0
    length = len(text)
    while i < length:
        char = text[i]
        if in_quotes:
            if char == '\\' and i + 1 < length and text[i + 1] in '"\\':
                current.append(text[i + 1])
                i += 2
                continue
            if char == '"':
                in_quotes = False
            else:
                current.append(char)
        elif char == '"':
            in_quotes = True
            had_quotes = True
        elif char in ' \t':
            if current or had_quotes:
                words.append(''.join(current))
            current = []
            had_quotes = False
        else:
            current.append(char)
        i += 1
    if in_quotes:
        raise SaveParseError('unterminated double quote in %r' % text)
    if current or had_quotes:
        words.append(''.join(current))
    return tuple(words)


def rule_target(args):
    """The ``-j``/``-g`` target of an argument tuple (None if it has none)."""
    target = None
    for index, word in enumerate(args[:-1]):
        if word in ('-j', '--jump', '-g', '--goto'):
            target = args[index + 1]
    return target


def text_target(rule_text):
    """Target of a rule given as save text; cheap path for plain lines."""
    if '"' not in rule_text:
        return rule_target(tuple(rule_text.split()))
    return rule_target(split_words(rule_text))


def parse_save(family, text):
    """Parse a whole ``*-save`` dump into ``{table name: SavedTable}``.

    Comment lines and counters are ignored.  ``COMMIT`` is optional (ebtables
    has none).  Chains keep dump order; rules keep chain order.
    """
    tables = {}
    table = None
    order = []
    policies = {}
    rules = {}

    def close():
        if table is not None:
            tables[table] = SavedTable(family, table, tuple(
                SavedChain(name, policies[name], tuple(rules[name])) for name in order))

    for number, raw in enumerate(text.split('\n'), 1):
        if raw.startswith('-A '):
            # Hot path (tens of thousands of lines): no tokenising, just the chain name.
            name, _sep, rule = raw[3:].partition(' ')
            chain_rules = rules.get(name)
            if chain_rules is None:
                if table is None:
                    raise SaveParseError('%s-save line %d outside a table: %r' % (family, number, raw))
                order.append(name)
                policies[name] = '-'
                chain_rules = rules[name] = []
            chain_rules.append(rule.strip())
            continue
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('*'):
            close()
            table = line[1:].strip()
            order, policies, rules = [], {}, {}
            continue
        if table is None:
            raise SaveParseError('%s-save line %d outside a table: %r' % (family, number, raw))
        if line == 'COMMIT':
            close()
            table = None
            order, policies, rules = [], {}, {}
            continue
        if line.startswith(':'):
            words = line[1:].split()
            if not words:
                raise SaveParseError('%s-save line %d: empty chain declaration' % (family, number))
            name = words[0]
            if name not in policies:
                order.append(name)
                rules[name] = []
            policies[name] = words[1] if len(words) > 1 else '-'
            continue
        # "[packets:bytes] -A ..." (iptables-save -c) is not asked for; anything else is unknown.
        raise SaveParseError('%s-save line %d not understood: %r' % (family, number, raw))
    close()
    return tables
