# -*- coding: utf-8 -*-
"""(c) Opt-in randomised differential suite.

HNF_RANDOM_DIFF=N runs N generated cases (generator.py) against libvirt;
HNF_RANDOM_SEED=S repeats a run (the seed is always printed);
HNF_RANDOM_BATCH=B bindings per oracle call (default 20);
HNF_RANDOM_SHRINK=1 minimises mismatching cases (one oracle call per try);
HNF_RANDOM_SIZE=K scales the filters (K x rules per filter and child filters);
HNF_RANDOM_REPORT=PATH also writes the report there.
Every case must give the same rules as libvirt, or be refused by both.
"""

from __future__ import annotations

import os
import sys

import pytest

import oracle as harness
import random_suite
from generator import Generator

COUNT = int(os.environ.get('HNF_RANDOM_DIFF') or 0)


@pytest.mark.libvirt_oracle
@pytest.mark.skipif(COUNT <= 0, reason='randomised differential suite is opt-in: set HNF_RANDOM_DIFF=N')
def test_random_filters_match_libvirt(libvirt_oracle):
    seed = harness.pick_seed(os.environ.get('HNF_RANDOM_SEED'))
    outcomes, shared = random_suite.run(
        libvirt_oracle, COUNT, seed, batch=int(os.environ.get('HNF_RANDOM_BATCH') or 20),
        do_shrink=os.environ.get('HNF_RANDOM_SHRINK') == '1',
        log=lambda msg: sys.stderr.write(msg + '\n'), size=int(os.environ.get('HNF_RANDOM_SIZE') or 1))
    bad = [o for o in outcomes if o.status not in ('identical', 'both-rejected')]
    report = ''.join(random_suite.format_outcome(o) for o in bad)
    report += ''.join('=== lines no NIC owns differ\n' + d for d in shared)
    if os.environ.get('HNF_RANDOM_REPORT'):
        with open(os.environ['HNF_RANDOM_REPORT'], 'w') as handle:
            handle.write(report)
    assert any(o.status == 'identical' for o in outcomes), 'no case compiled on both sides'
    assert not report, 'seed %d: %d of %d cases differ from libvirt\n%s' % (seed, len(bad), COUNT, report)


# What the generator may make on purpose that libvirt refuses too (its ebtables command fails):
# a 29+ character sub-chain name (FINDINGS F4) and an upside-down range from variables (F17).
BOTH_REFUSE = ('the filter chain name may have at most', 'ebtables refuses a range whose end is below its start')


def test_generated_cases_compile_with_our_engine():
    # No libvirt needed: the generator makes filters our parser and compiler accept, apart from
    # the few BOTH_REFUSE cases, so a random run compares rules instead of errors.
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
    generator = Generator(20261129)
    refused = 0
    for index in range(150):
        case = generator.case(index)
        binding = harness.Binding.make(case.interface, case.mac, case.top, case.parameters())
        try:
            ruleset = harness.compile_all(case.filters, [binding], strict=False)
        except NetfilterError as exc:
            assert any(text in str(exc) for text in BOTH_REFUSE), '%s\n%s' % (exc, case.describe())
            refused += 1
            continue
        assert ruleset.families(), case.describe()
    assert refused <= 150 // 20
