# -*- coding: utf-8 -*-
"""Opt-in randomised network differential against a live libvirt 9.0.

HNF_RANDOM_NETWORK=N runs N generated cases (network_generator.py; one to three
networks each, started in order) through libvirt and through the virt_network
module and compares the iptables/ip6tables dumps (network_suite.py);
HNF_RANDOM_SEED=S repeats a run (the seed is always printed); HNF_RANDOM_FIRST=I
starts at case I; HNF_RANDOM_REPORT=PATH also writes the report there;
HNF_RANDOM_NFT=1 also compares our nftables layout (network_suite.diff_nft).
About 3 s per case (4 s with nftables) on the 2-core build machine.
"""

from __future__ import annotations

import os
import sys

import pytest

import network_suite
import oracle as harness

COUNT = int(os.environ.get('HNF_RANDOM_NETWORK') or 0)


@pytest.mark.libvirt_oracle
@pytest.mark.skipif(COUNT <= 0, reason='randomised network differential is opt-in: set HNF_RANDOM_NETWORK=N')
def test_random_networks_match_libvirt(libvirt_oracle):
    seed = harness.pick_seed(os.environ.get('HNF_RANDOM_SEED'))
    outcomes = network_suite.run(libvirt_oracle, COUNT, seed, first=int(os.environ.get('HNF_RANDOM_FIRST') or 0),
                                 log=lambda msg: sys.stderr.write(msg + '\n'),
                                 nft=os.environ.get('HNF_RANDOM_NFT') == '1')
    bad = [o for o in outcomes if o.status not in ('identical', 'both-rejected', 'deliberate')]
    report = ''.join(network_suite.format_outcome(o) for o in bad)
    if os.environ.get('HNF_RANDOM_REPORT'):
        with open(os.environ['HNF_RANDOM_REPORT'], 'w') as handle:
            handle.write(report)
    assert any(o.status == 'identical' for o in outcomes), 'no network started on both sides'
    assert not report, 'seed %d: %d of %d cases differ from libvirt\n%s' % (seed, len(bad), COUNT, report)
