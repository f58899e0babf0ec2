# -*- coding: utf-8 -*-
"""Parsed ``*-save`` dumps turned back into the neutral model (tests and reports only)."""
from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import split_words
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import (
    BUILTIN_CHAINS, Chain, Ruleset, Table)


def saved_to_ruleset(saved_tables, owns=None):
    """Turn parsed dumps into the neutral model (for tests and reports).

    ``saved_tables`` is ``{family: {table: SavedTable}}``.  With ``owns``
    (``callable(family, table, chain) -> bool``) only owned chains are kept;
    rules in built-in chains become nothing here (they are not chains we own).
    """
    result = []
    for family, tables in saved_tables.items():
        for name, saved in tables.items():
            chains = tuple(
                Chain(c.name, tuple(split_words(r) for r in c.rules)) for c in saved.chains
                if c.name not in BUILTIN_CHAINS and (owns is None or owns(family, name, c.name)))
            result.append(Table(family, name, chains=chains))
    return Ruleset(tuple(result))
