# -*- coding: utf-8 -*-
"""Behaviour, not text: the nftables layout decides every frame as the ebtables/iptables layout does.

Two throwaway hypervisors (tests/lib/netns.py), each with three guests on a
bridge whose ports do not learn (every frame floods to every port, so where a
frame arrives depends only on the filters).  Guests 0 and 1 get the same
filter (several NICs on one filter, each with its own MAC, IP list and IPv6
address); guest 2 is unfiltered.  Hypervisor A applies the bindings with the
xtables layout (libvirt's ebtables/iptables chains), hypervisor B with the
nftables layout (table bridge hnf_nic, plus iptables for the IP layer of NICs
that need conntrack).  The same battery of frames (tests/kernel/frames.py:
right and spoofed MAC/IP/ARP/RARP, every protocol, DHCP, multicast, VLAN,
STP, and frames built from every resolved rule instance with near misses) is
sent from each guest on both; raw sockets in every guest record which frames
arrive.  For every frame the set of guests it reached must be equal.

Cases: every built-in filter, and generated filters over every protocol and
attribute (tests/differential/generator.py).  ``HNF_NFT_BEHAVIOUR_CASES``
(default 16) sets the number of generated cases, ``HNF_NFT_BEHAVIOUR_SEED``
the seed.  The counts of cases, frames and decisions compared are printed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as layout
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import (
    _sort_key, binding_variables, compile_binding)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import instances, resolve
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Ruleset, merge_rulesets
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.bindings import make_binding
from ansible_collections.hypervisor.netfilter.tests.kernel import frames as F
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import NsRunner, sync
from ansible_collections.hypervisor.netfilter.tests.lib.netns import (
    ThrowawayHypervisor, can_create_namespaces, missing_tools)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'differential'))
from generator import Generator  # noqa: E402 pylint: disable=wrong-import-position

GENERATED = int(os.environ.get('HNF_NFT_BEHAVIOUR_CASES', '16'))
SEED = int(os.environ.get('HNF_NFT_BEHAVIOUR_SEED', '11'))
MAX_RULE_FRAMES = 240  # per sender and case, sampled: keeps a case under a few seconds


def require_kernel():
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)
    missing = missing_tools('nft', 'ebtables-nft-restore', 'iptables-nft-restore', 'python3')
    if missing:
        pytest.skip('missing tools: %s' % ', '.join(missing))


class Side:
    """One throwaway hypervisor and the backend that applies bindings on it."""

    def __init__(self, hv, backend, state_dir):
        self.hv = hv
        self.backend = backend
        self.runner = NsRunner(hv.host)
        self.state_dir = state_dir
        self.engine = XtablesEngine(NWFILTER_OWNERSHIP, backend='nft', ebtables_backend='nft', state_dir=state_dir,
                                    runner=self.runner)
        for guest in hv.guests:
            hv.host.ip('link', 'set', 'dev', guest.port, 'type', 'bridge_slave', 'learning', 'off')
            # The guests' own stacks see nothing (raw sockets still do): no answers, no ICMP rate limits.
            guest.ns.run(['nft', '-f', '-'], input_text=(
                'table netdev quiet {\n chain in { type filter hook ingress device %s priority 0; '
                'policy drop; }\n}\n' % guest.nic))

    def bind(self, bindings, filters):
        if self.backend == 'xtables':
            ruleset = merge_rulesets([compile_binding(b.interface, b.mac, b.filter, b.parameters, filters)
                                      for b in bindings]) if bindings else Ruleset()
            sync(self.engine, ruleset)
            return None
        return nft_nics.sync_nics(self.runner, bindings, filters, engine=self.engine, state_dir=self.state_dir)

    def exchange(self, batches):
        """batches: {sender index: [(tag index, frame bytes)]} -> {tag index: frozenset(receiver indexes)}."""
        self.hv.host.run(['python3', '-c', F.CONNTRACK_FLUSH])
        listeners = []
        bridge_mac = json.loads(self.hv.host.ip('-j', 'link', 'show', self.hv.bridge).stdout)[0]['address']
        try:
            for index, guest in enumerate(self.hv.guests):
                proc = guest.ns.popen(['python3', '-c', F.RECEIVER, guest.nic, bridge_mac], stdout=subprocess.PIPE,
                                      universal_newlines=True)
                listeners.append((index, proc))
            for _index, proc in listeners:
                assert proc.stdout.readline().strip() == 'ready'
            for sender, items in batches.items():
                guest = self.hv.guests[sender]
                guest.ns.run(['python3', '-c', F.SENDER, guest.nic],
                             input_text=''.join(frame.hex() + '\n' for _tag, frame in items))
            time.sleep(0.3)
        finally:
            for _index, proc in listeners:
                proc.terminate()
        seen = {}
        for index, proc in listeners:
            out, _err = proc.communicate(timeout=10)
            for line in out.split():
                if line != 'ready':
                    seen.setdefault(int(line, 16), set()).add(index)
        return dict((tag, frozenset(receivers)) for tag, receivers in seen.items())


def guest_info(guest):
    return {'mac': guest.mac, 'ip': guest.ip, 'ip6': guest.ip6}


def builtin_parameters(hv, filter_name, index):
    guest = hv.guests[index]
    params = {'IP': [guest.ip, '192.0.2.%d' % (110 + index)], 'IPV6': guest.ip6,
              'DHCPSERVER': hv.host_ip6 if 'dhcpv6' in filter_name else hv.host_ip,
              'GATEWAY_MAC': hv.guests[2].mac, 'CTRL_IP_LEARNING': 'none'}
    return params


def battery(hv, bindings, filters, extra_ips, rng):
    """{sender: [(tag, frame)]}: base frames both ways plus frames from every rule instance of guest 0's binding."""
    g0, g1, g2 = (guest_info(g) for g in hv.guests)
    specs = {0: [s for _label, s in F.base_frames(g0, g2, extra_ips[0])],
             1: [s for _label, s in F.base_frames(g1, g0, extra_ips[1])][:20],
             2: [s for _label, s in F.base_frames(g2, g0)]}
    first = bindings[0]
    expanded = resolve(first.filter, filters, binding_variables(first.mac, first.parameters))
    from_rules = {0: [], 2: []}
    for item in sorted(expanded, key=_sort_key):
        for inst in instances(item):
            for sender, me, peer in ((0, g0, g2), (2, g2, g0)):
                spec = F.rule_frame(inst, me, peer)
                if spec is None:
                    continue
                from_rules[sender] += [spec, F.swapped(spec)] + F.variants(spec)
    for sender, extra in from_rules.items():
        if len(extra) > MAX_RULE_FRAMES:
            extra = rng.sample(extra, MAX_RULE_FRAMES)
        specs[sender] += extra
    batches = {}
    tag = 0
    for sender, items in specs.items():
        for spec in items:
            try:
                frame = F.build(spec, tag)
            except (ValueError, OSError, KeyError):
                continue  # a value the frame builder cannot put on the wire (e.g. an IPv4 value in IPv6)
            batches.setdefault(sender, []).append((tag, frame))
            tag += 1
    return batches


class Tally:
    def __init__(self):
        self.cases = 0
        self.frames = 0
        self.decisions = 0
        self.filtered = 0  # frames that did not reach every other guest: the filters decided something
        self.modes = {}
        self.skipped = []


def run_case(sides, name, filters, params_for, tally, rng):
    hv = sides[0].hv
    bindings = [make_binding(hv.guests[i].port, hv.guests[i].mac, name, params_for(i)) for i in (0, 1)]
    try:
        sides[0].bind(bindings, filters)
    except NetfilterError as exc:
        tally.skipped.append('%s: the xtables layout refuses it: %s' % (name, str(exc)[:200]))
        sides[0].bind([], filters)
        return
    result = sides[1].bind(bindings, filters)
    for nic in result.nics:
        tally.modes[nic.mode] = tally.modes.get(nic.mode, 0) + 1
    extra = [[v for v in dict(b.parameters).get('IP', ())[1:] if v.count('.') == 3] for b in bindings]
    batches = battery(hv, bindings, filters, extra, rng)
    outcomes = [side.exchange(batches) for side in sides]
    sent = dict((tag, (sender, frame)) for sender, items in batches.items() for tag, frame in items)
    mismatches = []
    for tag in sorted(sent):
        got = [outcome.get(tag, frozenset()) for outcome in outcomes]
        if got[0] != got[1]:
            mismatches.append('frame %d from guest %d: xtables -> %s, nftables -> %s: %s' % (
                tag, sent[tag][0], sorted(got[0]), sorted(got[1]), sent[tag][1].hex()))
    everyone = len(hv.guests) - 1
    tally.filtered += sum(1 for tag in sent if len(outcomes[0].get(tag, ())) < everyone)
    tally.cases += 1
    tally.frames += len(sent)
    tally.decisions += len(sent) * len(hv.guests)
    assert not mismatches, '%s (%s): %d of %d frames differ:\n%s\nnft layout:\n%s' % (
        name, [n.mode for n in result.nics], len(mismatches), len(sent), '\n'.join(mismatches[:15]),
        layout.render_layout(result.layout))


@pytest.fixture(scope='module')
def sides(tmp_path_factory):
    require_kernel()
    made = []
    try:
        for backend in ('xtables', 'nftables'):
            hv = ThrowawayHypervisor(guests=3).__enter__()
            made.append(hv)
        yield [Side(hv, backend, str(tmp_path_factory.mktemp(backend))) for hv, backend in
               zip(made, ('xtables', 'nftables'))]
    finally:
        for hv in made:
            hv.teardown()


def test_builtin_filters_same_decisions(sides, capsys):
    tally = Tally()
    rng = random.Random(SEED)
    filters = dict((n, parse_filter(t, source=n, strict=True)) for n, t in BUILTIN_FILTERS.items())
    hv = sides[0].hv
    for name in sorted(filters):
        run_case(sides, name, filters, lambda i, name=name: builtin_parameters(hv, name, i), tally, rng)
    with capsys.disabled():  # the counts belong in every test log, not only with -s
        print('\nbuilt-in filters: %d cases, %d frames (%d stopped for some guest), %d frame/guest decisions '
              'compared; NIC modes %s' % (tally.cases, tally.frames, tally.filtered, tally.decisions, tally.modes))
    assert tally.cases == len(filters) and not tally.skipped
    assert tally.filtered > tally.frames // 4


def test_generated_filters_same_decisions(sides, capsys):
    tally = Tally()
    rng = random.Random(SEED)
    generator = Generator(SEED)
    hv = sides[0].hv
    refused = 0
    for index in range(GENERATED):
        case = generator.case(index)
        texts = dict(BUILTIN_FILTERS)
        texts.update(case.filters)
        try:
            # libvirt's reading, as the differential suite parses them: the generator also writes what
            # strict mode refuses (unknown attributes, match='false', ...), which both layouts then share
            filters = dict((n, parse_filter(t, source=n, strict=n in BUILTIN_FILTERS)) for n, t in texts.items())
            params = case.parameters()
            compile_binding(hv.guests[0].port, hv.guests[0].mac, case.top, params, filters)
        except NetfilterError:
            refused += 1  # our compiler refuses it for both layouts alike
            continue
        run_case(sides, case.top, filters, lambda i, params=params: params, tally, rng)
    with capsys.disabled():
        print('\ngenerated filters (seed %d): %d cases, %d frames (%d stopped for some guest), %d frame/guest '
              'decisions compared; NIC modes %s; %d refused by the compiler, %d refused by the xtables layout'
              % (SEED, tally.cases, tally.frames, tally.filtered, tally.decisions, tally.modes, refused,
                 len(tally.skipped)))
    assert tally.cases >= GENERATED // 2
