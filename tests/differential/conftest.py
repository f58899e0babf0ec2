# -*- coding: utf-8 -*-
"""Fixtures of the differential tests (tests/differential): one libvirt-oracle
instance per test session, started on first use and stopped at the end."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import oracle as harness


def pytest_configure(config):
    config.addinivalue_line('markers', 'libvirt_oracle: compares our rules with a real libvirt '
                                       '(skips when libvirt-oracle, root or libvirt is unavailable)')
    config.addinivalue_line('markers', 'netns: loads rules into a throw-away network namespace '
                                       '(skips when not root or tools are missing)')


def engine_missing():
    """Skip reason while the lead's parser/compiler modules do not exist yet."""
    for name in ('_nwfilter.parse', '_compile.nwfilter'):
        full = 'ansible_collections.hypervisor.netfilter.plugins.module_utils.' + name
        if importlib.util.find_spec(full) is None:
            return 'engine module %s does not exist yet' % name
    return None


@pytest.fixture(scope='session')
def netns_tools():
    reason = harness.unavailable_reason() or engine_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope='session')
def libvirt_oracle(netns_tools):  # pylint: disable=unused-argument,redefined-outer-name
    instance = harness.LibvirtOracle()
    try:
        instance.start()
    except harness.OracleUnavailable as exc:
        pytest.skip(str(exc))
    sys.stderr.write('\nlibvirt-oracle %s started in %.1f s\n' % (instance.ns, instance.start_seconds))
    yield instance
    instance.stop()
