# -*- coding: utf-8 -*-
"""nft listings normalised for comparison (handles, counters)."""
from __future__ import annotations


from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_apply as network_nft_apply


def test_nft_listing_normalisation():
    text = ('table ip libvirt_network { # handle 7\n\tchain guest_cross { # handle 3\n'
            '\t\tiif "virbr0" oif "virbr0" counter packets 12 bytes 3400 accept # handle 9\n\t}\n}\n')
    assert network_nft_apply.normalise_listing(text) == (
        'table ip libvirt_network {\n\tchain guest_cross {\n\t\tiif "virbr0" oif "virbr0" counter accept\n\t}\n}\n')
    assert network_nft_apply.normalise_listing(None) is None
