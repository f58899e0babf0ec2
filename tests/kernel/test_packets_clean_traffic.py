# -*- coding: utf-8 -*-
"""Real frames through a bridge filtered by clean-traffic, counted on the other side.

A throwaway hypervisor (tests/lib/netns.py): bridge br0 with guest 0 on vnet0
and guest 1 on vnet1, each guest in its own namespace.  clean-traffic is bound
to vnet0 with the guest's real MAC and IP through nic_sync.sync_host (the
code path of the guest_nic_filter module).  Guest 0 sends crafted frames with
scapy (three of each kind, each kind tagged so it can be told apart); tcpdump
in guest 1 counts what crossed the bridge.  Exact counts are asserted: the
spoofed kinds 0, the legitimate ones 3.  The same frames are sent once more
before binding (all 3 arrive) to show that the drops come from the filter.
"""

from __future__ import annotations


from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import NsRunner
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.packets import (
    COPIES, frame_specs, require_environment, send_and_count)


def test_clean_traffic_drops_spoofed_frames_and_passes_real_ones(tmp_path):
    require_environment()
    with ThrowawayHypervisor(guests=2) as hv:
        guest, peer = hv.guests[0], hv.guests[1]
        specs = frame_specs(guest, peer)
        # Teach the bridge where the peer is, so unicast goes to vnet1 only.
        peer.ns.run(['ping', '-c', '1', '-W', '1', hv.host_ip], check=False)

        unfiltered = send_and_count(hv, specs, str(tmp_path), 'before')
        assert unfiltered == dict((name, COPIES) for name, _e, _b, _s in specs), unfiltered

        engine = XtablesEngine(NWFILTER_OWNERSHIP, backend='nft', ebtables_backend='nft',
                               state_dir=str(tmp_path / 'state'), runner=NsRunner(hv.host))
        binding = binding_store.make_binding(guest.port, guest.mac, 'clean-traffic', {'IP': guest.ip})
        result = nic_sync.sync_host(str(tmp_path / 'state'), engine, upserts=[binding],
                                    interface_exists_fn=lambda name: True)
        assert result.kernel_changed and result.interfaces_changed == (guest.port,)

        filtered = send_and_count(hv, specs, str(tmp_path), 'after')
        expected = dict((name, count) for name, count, _b, _s in specs)
        assert filtered == expected

        # The filter's drop rules counted what they dropped (ebtables counters).
        listing = hv.host.run(['ebtables-nft', '-t', 'nat', '-L', '--Lc']).stdout
        assert '-j DROP' in listing

        # Unbinding restores free passage.
        nic_sync.sync_host(str(tmp_path / 'state'), engine, removals=[guest.port],
                           interface_exists_fn=lambda name: True)
        assert send_and_count(hv, specs, str(tmp_path), 'unbound') == unfiltered
