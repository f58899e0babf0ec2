# -*- coding: utf-8 -*-
"""The guest NIC nftables backend (table bridge hnf_nic) against the real nft and kernel.

In throwaway namespaces: apply, a re-run changes nothing and writes nothing;
one NIC's change touches only its own set/map elements; drift (a flushed
chain, an edited rule, a deleted element, a deleted table) is reported in
check mode and repaired; a tap bound before it exists and a recreated tap are
filtered (frames counted); removal leaves nothing of ours; the admin's own
nftables table and iptables-nft rules keep their exact bytes; NICs that need
conntrack keep their IP layer on iptables with a warning.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics_canonical
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics_plan
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as layout
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.bindings import make_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters
from ansible_collections.hypervisor.netfilter.tests.lib.nft_nics import binding, require_kernel
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import NsRunner, sync
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns, ThrowawayHypervisor

FILTERS = builtin_filters()


@pytest.fixture
def ns():
    require_kernel()
    with Netns(tag='nn') as namespace:
        yield namespace


class Host:
    """One namespace, its runner, state_dir and xtables engine (for NICs that stay there)."""

    def __init__(self, ns, state_dir):
        self.ns = ns
        self.state_dir = state_dir
        self.runner = NsRunner(ns)
        self.engine = XtablesEngine(NWFILTER_OWNERSHIP, backend='nft', ebtables_backend='nft',
                                    state_dir=state_dir, runner=self.runner)

    def sync(self, bindings, filters=None, **kwargs):
        return nft_nics.sync_nics(self.runner, bindings, filters or FILTERS, engine=self.engine,
                                  state_dir=self.state_dir, **kwargs)

    def nft(self, *args):
        return self.ns.run(['nft'] + list(args)).stdout

    def state(self):
        """Our table as values (element order in listings follows insertion order)."""
        return nft_nics.read_live(self.runner)

    def table(self):
        result = self.ns.run(['nft', 'list', 'table', 'bridge', 'hnf_nic'], check=False)
        return result.stdout if result.returncode == 0 else None


@pytest.fixture
def host(ns, tmp_path):
    return Host(ns, str(tmp_path / 'state'))


def test_apply_rerun_and_counts(host):
    bindings = [binding(i) for i in range(20)]
    first = host.sync(bindings)
    assert first.changed and first.writes and not first.warnings
    assert all(nic.mode == layout.NFT for nic in first.nics)
    # Shared: the same chains whatever the number of NICs.
    listing = host.table()
    chains = [line for line in listing.splitlines() if line.strip().startswith('chain ')]
    assert len(chains) == len(first.layout.chains) + len(first.layout.bases()) < 20
    rules, elements = first.layout.counts()
    assert rules < 60 and elements >= 20 * 4
    second = host.sync(bindings)
    assert not second.changed and second.writes == () and second.diff == ()
    # A fresh cache (canonical forms learnt again in a scratch namespace) agrees.
    third = nft_nics.sync_nics(host.runner, bindings, FILTERS, engine=host.engine, state_dir=None)
    assert not third.changed


def test_canonical_forms_and_probe_come_from_the_state_dir_cache(host):
    """nft's spelling of our chains and the conntrack probe are learnt once (a scratch namespace each)
    and kept in the one JSON cache of state_dir: a later run with a fresh object loads none."""
    first = host.sync([binding(i) for i in range(5)])
    with open(os.path.join(host.state_dir, 'cache', 'nft-nic-canonical.json'), encoding='utf-8') as handle:
        data = json.load(handle)
    assert data['version'] == nft_nics_canonical.Canonical.VERSION
    chains = [k for k in data['entries'] if k.startswith('chain:')]
    assert len(chains) == len(first.layout.chains) + len(first.layout.bases())
    assert [k for k in data['entries'] if k.startswith('probe:conntrack:')]
    live = nft_nics.read_live(host.runner)
    for state_dir, scratch_loads in ((host.state_dir, 0), (None, 2)):
        runner = NsRunner(host.ns)
        canonical = nft_nics_canonical.Canonical(state_dir)
        nft_nics_canonical.probe_bridge_conntrack(runner, canonical)
        assert not nft_nics_plan.plan(runner, first.layout, live, canonical).changed
        assert [kind for kind, _argv in runner.calls].count('scratch') == scratch_loads, state_dir


def test_one_nic_change_touches_only_its_elements(host):
    bindings = [binding(i) for i in range(10)]
    host.sync(bindings)
    before = host.table()
    changed = list(bindings)
    changed[3] = binding(3, ips=['10.1.9.3', '10.1.9.4'])
    result = host.sync(changed, check_mode=True)
    assert result.changed and result.writes == ()
    assert host.table() == before  # check mode touched nothing
    plan = result.nft_plan
    assert plan.chains_added == plan.chains_replaced == plan.chains_deleted == ()
    assert plan.interfaces == ('vnet3',)
    script = plan.script.splitlines()
    assert script and all(line.startswith(('add element', 'delete element')) and '"vnet3"' in line
                          for line in script), script
    diff = result.diff[0]
    assert '10.1.0.3' in diff['before'] and '10.1.9.4' in diff['after']
    applied = host.sync(changed)
    assert applied.changed and len(applied.writes) == 1
    assert not host.sync(changed).changed
    # Removing one NIC: only its map and set elements go.
    removal = host.sync(changed[:3] + changed[4:])
    assert removal.nft_plan.interfaces == ('vnet3',) and not removal.nft_plan.chains_deleted


def test_drift_is_reported_and_repaired(host):
    bindings = [binding(i) for i in range(3)]
    first = host.sync(bindings)
    reference = host.state()
    chain = [c.name for c in first.layout.chains if c.name.startswith('eI-mac')][0]
    set_name = [s.name for s in first.layout.sets if s.name.startswith('eI-ipv4')][0]
    drifts = [
        ['flush', 'chain', 'bridge', 'hnf_nic', chain],
        ['delete', 'element', 'bridge', 'hnf_nic', set_name, '{ "vnet1" . 10.1.0.1 }'],
        ['delete', 'element', 'bridge', 'hnf_nic', 'eth-in', '{ "vnet2" }'],
        ['add', 'rule', 'bridge', 'hnf_nic', chain, 'ether saddr 52:54:00:00:01:01 accept'],
        ['delete', 'table', 'bridge', 'hnf_nic'],
    ]
    for drift in drifts:
        host.ns.run(['nft'] + drift)
        assert host.state() != reference, drift
        check = host.sync(bindings, check_mode=True)
        assert check.changed and check.writes == () and check.diff, drift
        repaired = host.sync(bindings)
        assert repaired.changed, drift
        assert host.state() == reference, drift
        assert not host.sync(bindings).changed


def test_admin_tables_and_iptables_untouched(host):
    admin = ('table bridge admin_filter {\n  chain admin_fwd { type filter hook forward priority -5; policy accept; '
             'ether saddr 02:00:00:00:00:01 counter drop; }\n}\n'
             'table inet admin {\n  chain input { type filter hook input priority 0; policy accept; '
             'tcp dport 22 accept; }\n}\n')
    host.ns.run(['nft', '-f', '-'], input_text=admin)
    host.ns.run(['iptables-nft', '-A', 'FORWARD', '-s', '192.0.2.7', '-j', 'DROP'])
    host.ns.run(['ebtables-nft', '-A', 'FORWARD', '-s', '02:00:00:00:00:02', '-j', 'DROP'])

    def others():
        out = {}
        for family, table in (('bridge', 'admin_filter'), ('inet', 'admin'), ('ip', 'filter'),
                              ('bridge', 'filter')):
            out[(family, table)] = host.nft('list', 'table', family, table)
        return out

    before = others()
    bindings = [binding(i) for i in range(3)]
    host.sync(bindings)
    host.sync(bindings[:2])
    host.sync([])
    assert others() == before
    assert host.table() is not None  # an empty table of ours stays (its base chains dispatch nothing)
    removal = nft_nics.remove_table(host.runner)
    assert removal.changed and host.table() is None
    assert others() == before


def test_removal_leaves_nothing_and_moves_between_layouts(host):
    """iptables layout -> nftables layout -> back: each step removes the other's rules."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
    bindings = [binding(i) for i in range(3)]
    xt = merge_rulesets([compile_binding(b.interface, b.mac, b.filter, b.parameters, FILTERS) for b in bindings])
    sync(host.engine, xt)
    assert 'libvirt-I-vnet0' in host.ns.run(['ebtables-nft-save']).stdout
    moved = host.sync(bindings)
    assert moved.changed and moved.xt_plan.changed
    assert 'libvirt' not in host.ns.run(['ebtables-nft-save']).stdout
    assert 'hnf_nic' in host.nft('list', 'tables')
    sync(host.engine, xt)
    nft_nics.remove_table(host.runner)
    assert 'hnf_nic' not in host.nft('list', 'tables')
    sync(host.engine, type(xt)())
    assert 'libvirt' not in host.ns.run(['ebtables-nft-save']).stdout


def test_stateful_rules_keep_their_ip_layer_on_iptables(host):
    stateful = parse_filter(
        '<filter name="web-in" chain="root">'
        '<filterref filter="clean-traffic"/>'
        '<rule action="accept" direction="in"><tcp dstportstart="80"/></rule>'
        '<rule action="drop" direction="inout"><all/></rule>'
        '</filter>', source='test')
    filters = dict(FILTERS, **{'web-in': stateful})
    bindings = [binding(0, 'web-in'), binding(1)]
    result = host.sync(bindings, filters=filters)
    modes = dict((nic.interface, nic.mode) for nic in result.nics)
    if nft_nics.probe_bridge_conntrack(host.runner):
        assert modes == {'vnet0': layout.NFT, 'vnet1': layout.NFT}
        return
    assert modes == {'vnet0': layout.MIXED, 'vnet1': layout.NFT}
    assert any('vnet0' in w and 'iptables' in w for w in result.warnings)
    saved = host.ns.run(['iptables-nft-save']).stdout
    assert 'FI-vnet0' in saved and 'FO-vnet0' in saved and 'vnet1' not in saved
    assert 'libvirt' not in host.ns.run(['ebtables-nft-save']).stdout  # the Ethernet layer is in nftables
    assert not host.sync(bindings, filters=filters).changed


def test_fail_closed_pattern(host):
    result = host.sync([binding(0)], fail_closed=('vnet*',))
    assert 'iifname "vnet*" drop' in host.table()
    assert not host.sync([binding(0)], fail_closed=('vnet*',)).changed
    assert host.sync([binding(0)]).changed and 'vnet*' not in host.table()
    assert result.changed
    with pytest.raises(nft_nics.NftError):
        host.sync([binding(0)], fail_closed=('bad name*',))


# ---------------------------------------------------------------------------- real frames

_SEND = r'''
import socket, sys
frame = bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for i in range(int(sys.argv[3])):
    s.send(frame)
'''

_COUNT = r'''
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
marker = bytes.fromhex(sys.argv[2])
print("ready", flush=True)
seen = 0
end = time.time() + float(sys.argv[3])
while time.time() < end:
    try:
        data, address = s.recvfrom(65535)
    except socket.timeout:
        continue
    if address[2] != socket.PACKET_OUTGOING and marker in data:  # not the guest's own ICMP errors
        seen += 1
print(seen, flush=True)
'''


def udp_frame(src_mac, dst_mac, src_ip, dst_ip, marker):
    payload = marker
    udp = (40000).to_bytes(2, 'big') + (41000).to_bytes(2, 'big') + (8 + len(payload)).to_bytes(2, 'big') + \
        b'\0\0' + payload
    header = bytearray(b'\x45\x00' + (20 + len(udp)).to_bytes(2, 'big') + b'\0\0\0\0\x40\x11\0\0'
                       + socket.inet_aton(src_ip) + socket.inet_aton(dst_ip))
    total = sum(int.from_bytes(header[i:i + 2], 'big') for i in range(0, 20, 2))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    header[10:12] = (~total & 0xffff).to_bytes(2, 'big')
    return bytes.fromhex(dst_mac.replace(':', '') + src_mac.replace(':', '')) + b'\x08\x00' + bytes(header) + udp


def count_frames(sender, receiver, frame, marker, copies=3):
    listen = receiver.ns.popen(['python3', '-c', _COUNT, receiver.nic, marker.hex(), '2'],
                               stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert listen.stdout.readline().strip() == 'ready'
        sender.ns.run(['python3', '-c', _SEND, sender.nic, frame.hex(), str(copies)])
        return int(listen.stdout.readline())
    finally:
        listen.wait(timeout=10)


def test_tap_bound_before_it_exists_and_recreated(tmp_path):
    require_kernel()
    with ThrowawayHypervisor(guests=2) as hv:
        guest, peer = hv.guests
        state = str(tmp_path / 'state')
        host = Host(hv.host, state)
        # vnet5 does not exist yet: its elements are in place all the same.
        early = make_binding('vnet5', '52:54:00:00:05:05', 'clean-traffic', {'IP': '192.0.2.55'})
        bound = make_binding(guest.port, guest.mac, 'clean-traffic', {'IP': guest.ip})
        result = host.sync([bound, early])
        assert result.changed and '"vnet5"' in host.table()

        def spoofed_and_real():
            real = udp_frame(guest.mac, peer.mac, guest.ip, peer.ip, b'HNFreal1')
            spoof = udp_frame(guest.mac, peer.mac, '192.0.2.99', peer.ip, b'HNFspof1')
            return (count_frames(guest, peer, real, b'HNFreal1'), count_frames(guest, peer, spoof, b'HNFspof1'))

        assert spoofed_and_real() == (3, 0)
        # The tap is recreated (the guest restarts): same name, new ifindex; still filtered, nothing to do.
        index_before = hv.host.ip('-j', 'link', 'show', guest.port).stdout
        hv.host.ip('link', 'del', guest.port)
        hv.host.ip('link', 'add', guest.port, 'type', 'veth', 'peer', 'name', guest.nic, 'netns', guest.ns.name)
        hv.host.ip('link', 'set', guest.port, 'master', hv.bridge, 'up')
        guest.ns.ip('link', 'set', guest.nic, 'address', guest.mac)
        guest.ns.ip('addr', 'add', guest.ip + '/24', 'dev', guest.nic)
        guest.ns.ip('link', 'set', guest.nic, 'up')
        assert json.loads(index_before)[0]['ifindex'] != json.loads(
            hv.host.ip('-j', 'link', 'show', guest.port).stdout)[0]['ifindex']
        time.sleep(0.2)
        assert spoofed_and_real() == (3, 0)
        assert not host.sync([bound, early]).changed
