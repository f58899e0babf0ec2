# -*- coding: utf-8 -*-
"""The nwfilter module stores a filter as canonical XML (``format_filter``) and
every binding compiles the stored text parsed again (``strict: false``). The
random suite compares the filters as written, so here every generated case must
compile the same after that round trip (FINDINGS.md F18). Needs no libvirt."""

from __future__ import annotations

import re

import pytest

from generator import Generator
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.format import format_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter

CASES = 150


def _compile(case, filters):
    try:
        ruleset = compile_binding(case.interface, case.mac, case.top, case.parameters(), filters)
    except NetfilterError as exc:
        return 'refused: %s' % re.sub(r'line \d+', 'line N', str(exc))  # the stored text has other lines
    return '\n'.join(ruleset.render(family) for family in ('eb', 'ip', 'ip6'))


@pytest.mark.parametrize('seed, size', [(51, 1), (52, 2), (53, 3)])
def test_generated_filters_compile_the_same_after_the_store_round_trip(seed, size):
    generator = Generator(seed, size)
    builtins = dict((n, parse_filter(t, source=n)) for n, t in BUILTIN_FILTERS.items())
    compared = 0
    for index in range(CASES):
        case = generator.case(index)
        try:
            written = dict((n, parse_filter(t, source=n, strict=False)) for n, t in case.filters.items())
        except NetfilterError:
            continue  # refused when defined: nothing is stored
        stored = dict((n, parse_filter(format_filter(f), source=n, strict=False)) for n, f in written.items())
        for name, nwfilter in stored.items():
            assert format_filter(nwfilter) == format_filter(written[name]), name  # a fixed point
        before = _compile(case, dict(builtins, **written))
        after = _compile(case, dict(builtins, **stored))
        assert before == after, 'case %d (seed %d):\n%s\n--- canonical ---\n%s' % (
            index, seed, case.describe(), ''.join(format_filter(f) for f in written.values()))
        compared += 1
    assert compared > CASES // 2
