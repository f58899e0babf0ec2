# -*- coding: utf-8 -*-
"""virt_network against a live libvirt 9.0 (iptables layout), fixed cases.

Every hand-picked case of ``network_cases.py`` (the random differential's
findings and the edges around them) is started by libvirt in the oracle and
applied by our module in a fresh namespace (``network_suite.run_case``); the
outcome must be the expected one: same rules, both refuse, or a refusal we
make on purpose. Where the rules are the same, our nftables layout is applied
too and compared rule by rule with libvirt's iptables rules (libvirt 9.0 has
no nftables backend; ``network_suite.diff_nft`` maps them the way libvirt
11.3's nftables backend does). The randomised version is
test_diff_network_random.py.
"""

from __future__ import annotations

import pytest

import network_suite
from network_cases import CASES, LIFECYCLE_CASES
from network_generator import NetworkCase, NetworkGenerator


@pytest.mark.libvirt_oracle
@pytest.mark.parametrize('name, expected, xmls, devs', CASES, ids=[c[0] for c in CASES])
def test_network_case_against_libvirt(libvirt_oracle, name, expected, xmls, devs):
    case = NetworkCase(index=[c[0] for c in CASES].index(name), seed=0, networks=tuple(xmls),
                       forward_devs=tuple(devs))
    outcome = network_suite.run_case(libvirt_oracle, case, nft=True)
    assert outcome.status == expected, network_suite.format_outcome(outcome)


@pytest.mark.libvirt_oracle
@pytest.mark.parametrize('name, expected, xmls, devs, operations', LIFECYCLE_CASES,
                         ids=[c[0] for c in LIFECYCLE_CASES])
def test_network_life_cycle_against_libvirt(libvirt_oracle, name, expected, xmls, devs, operations):
    # networks started, then one restarted with a change or destroyed (our side:
    # the module with the changed XML / state: absent)
    case = NetworkCase(index=100 + [c[0] for c in LIFECYCLE_CASES].index(name), seed=0, networks=tuple(xmls),
                       forward_devs=tuple(devs), operations=tuple(operations))
    outcome = network_suite.run_case(libvirt_oracle, case, nft=True)
    assert outcome.status == expected, network_suite.format_outcome(outcome)


DEFAULT_SEED = 20261206


@pytest.mark.libvirt_oracle
@pytest.mark.parametrize('index', range(6))
def test_random_sample_against_libvirt(libvirt_oracle, index):
    # a small fixed slice of the random differential (seed DEFAULT_SEED: 12
    # networks, one destroy); the opt-in suite runs hundreds
    case = NetworkGenerator(DEFAULT_SEED).case(index)
    outcome = network_suite.run_case(libvirt_oracle, case, nft=True)
    assert outcome.status in ('identical', 'both-rejected', 'deliberate'), network_suite.format_outcome(outcome)


def test_generator_is_seed_deterministic_and_varied():
    # No libvirt needed: the same (seed, index) gives the same networks, and a
    # few hundred cases cover every forward mode, SNAT, ports, IPv6 and dev=.
    first = [NetworkGenerator(11).case(i) for i in range(300)]
    assert first == [NetworkGenerator(11).case(i) for i in range(300)]
    text = ''.join(''.join(c.networks) for c in first)
    for needle in ("<forward />", "mode=\"nat\"", "mode=\"route\"", "mode=\"open\"", "mode=\"none\"",
                   "<address start=", "<port start=", "ipv6=\"yes\"", "family=\"ipv6\"", "netmask=",
                   " dev=", "<interface dev=", "<tftp root=", "<host ", "<range ", "<mtu ", "<domain "):
        assert needle in text, needle
    assert any(len(c.networks) == 3 for c in first)
    assert {op for c in first for op, _arg in c.operations} == {'restart', 'destroy'}


LIBVIRT_DUMP = '''### iptables-save
*nat
:LIBVIRT_PRT -
-A POSTROUTING -j LIBVIRT_PRT
-A LIBVIRT_PRT -s 10.1.0.0/16 -d 255.255.255.255/32 -o eth7 -j RETURN
-A LIBVIRT_PRT -s 10.1.0.0/16 ! -d 10.1.0.0/16 -o eth7 -p tcp -j MASQUERADE --to-ports 500-600
COMMIT
*filter
-A LIBVIRT_FWI -d 10.1.0.0/16 -i eth7 -o br-a.1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A LIBVIRT_INP -i br-a.1 -p udp -m udp --dport 53 -j ACCEPT
COMMIT
### ip6tables-save
'''

OUR_NFT = ''.join(line.replace('    ', '\t') + '\n' for line in (
    'table ip libvirt_network {',
    '    chain guest_input {',
    '        iifname "eth7" oif "br-a.1" ip daddr 10.1.0.0/16 ct state established,related counter packets 0 bytes 0 accept',
    '    }',
    '    chain guest_nat {',
    '        type nat hook postrouting priority srcnat; policy accept;',
    '        oifname "eth7" ip saddr 10.1.0.0/16 ip daddr 255.255.255.255 counter packets 0 bytes 0 return',
    '        meta l4proto tcp ip saddr 10.1.0.0/16 ip daddr != 10.1.0.0/16 oifname "eth7" counter packets 0 bytes 0 masquerade to :500-600',
    '    }',
    '}',
))


def test_nft_comparison_maps_rules_and_sees_every_difference():
    # No libvirt needed: libvirt's iptables rules and our nft rules reduce to the
    # same features (INP/OUT have no nftables counterpart), and any changed
    # value, missing rule or reordering shows up in the diff.
    assert network_suite.diff_nft(LIBVIRT_DUMP, OUR_NFT) == ''
    for old, new in (('to :500-600', 'to :500-601'), ('!= 10.1.0.0/16', '10.1.0.0/16'),
                     ('ct state established,related ', ''), ('oifname "eth7" ip saddr', 'ip saddr')):
        assert network_suite.diff_nft(LIBVIRT_DUMP, OUR_NFT.replace(old, new, 1)), (old, new)
    swapped = OUR_NFT.splitlines()
    swapped[6], swapped[7] = swapped[7], swapped[6]
    assert network_suite.diff_nft(LIBVIRT_DUMP, '\n'.join(swapped))


def test_empty_private_chains_left_by_libvirt_are_the_documented_difference():
    # libvirt never removes LIBVIRT_* chains; we remove them with the last network
    case = NetworkCase(index=0, seed=0, networks=('<network/>',), forward_devs=())
    theirs = '### iptables-save\n*filter\n:INPUT ACCEPT\n:LIBVIRT_INP -\n-A INPUT -j LIBVIRT_INP\nCOMMIT\n'
    ours = '### iptables-save\n*filter\n:INPUT ACCEPT\nCOMMIT\n'
    assert network_suite.classify(case, ([None], theirs), ([None], ours)).status == 'deliberate'
    with_rule = theirs.replace('COMMIT', '-A LIBVIRT_INP -i br0 -j ACCEPT\nCOMMIT')
    assert network_suite.classify(case, ([None], with_rule), ([None], ours)).status == 'mismatch'
