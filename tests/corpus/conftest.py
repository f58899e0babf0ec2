# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Markers of the corpus suite (tests/corpus)."""


def pytest_configure(config):
    config.addinivalue_line('markers', 'libvirt_oracle: compares our rules with a real libvirt '
                                       '(skips when libvirt-oracle, root or libvirt is unavailable)')
