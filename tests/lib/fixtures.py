# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest fixtures around tests/lib/netns.py.

Use them from a conftest.py (or a test module) by importing them:

    from ansible_collections.hypervisor.netfilter.tests.lib.fixtures import (  # noqa: F401 pylint: disable=unused-import
        netns, hypervisor, hypervisor_factory, require_tools)

Every fixture skips (with the reason) when not root or when ``ip`` is missing.
"""

from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import (
    Netns, ThrowawayHypervisor, can_create_namespaces, missing_tools)


def skip_unless_namespaces():
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)


def require_tools(*tools):
    """Skip the calling test unless every tool is on PATH."""
    missing = missing_tools(*tools)
    if missing:
        pytest.skip('missing tools: %s' % ', '.join(missing))


@pytest.fixture
def netns():
    """An empty namespace (lo up), deleted after the test."""
    skip_unless_namespaces()
    with Netns(tag='fx') as ns:
        yield ns


@pytest.fixture
def hypervisor():
    """A ThrowawayHypervisor with bridge br0 and two guests (vnet0, vnet1)."""
    skip_unless_namespaces()
    with ThrowawayHypervisor(guests=2) as hv:
        yield hv


@pytest.fixture
def hypervisor_factory():
    """Call it with ThrowawayHypervisor's arguments; all are torn down after the test."""
    skip_unless_namespaces()
    made = []

    def make(**kwargs):
        hv = ThrowawayHypervisor(**kwargs)
        made.append(hv)
        return hv.__enter__()

    yield make
    for hv in reversed(made):
        hv.teardown()
