# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt's DHCP checksum fix for networks of its nftables layout, as tc commands.

nftables cannot fill in the UDP checksum of DHCP replies (iptables' CHECKSUM
target does it in the iptables layout), so libvirt puts a ``csum`` tc action on
the bridge.  Both the compiler (libvirt's command stream) and the host layer
(applying it) use these argv.
"""

from __future__ import annotations


def tc_qdisc_argv(bridge):
    return ('tc', 'qdisc', 'add', 'dev', bridge, 'root', 'handle', '1:', 'htb', 'default', '2')


def tc_filter_argv(bridge, verb):
    return ('tc', 'filter', verb, 'dev', bridge, 'prio', '2', 'protocol', 'ip', 'parent', '1:', 'u32',
            'match', 'ip', 'dport', '68', 'ffff', 'action', 'csum', 'ip', 'and', 'udp')
