# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""link_lookup answers as link_exists does, from one listing of the namespace's interfaces."""

from __future__ import annotations

import os

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host import interfaces


def test_link_lookup_answers_like_link_exists():
    lookup = interfaces.link_lookup()
    present = sorted(os.listdir(interfaces.SYS_NET))
    assert present, 'this namespace lists no interface at all'
    for name in present + ['hnf-no-such0', 'vnet-absent']:
        assert lookup(name) == interfaces.link_exists(name), name


def test_link_lookup_falls_back_when_the_listing_fails(monkeypatch):
    monkeypatch.setattr(interfaces, 'SYS_NET', '/nonexistent-hnf-sys-class-net')
    assert interfaces.link_lookup() is interfaces.link_exists
