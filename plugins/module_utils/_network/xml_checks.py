# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt's define/start-time checks of ``<network>`` elements that make no
firewall rules (static ``<route>``s, ``<vlan>``).

The model does not keep these elements, but a network libvirt refuses must be
refused here too (found by the network differential against libvirt 9.0,
tests/differential/NETWORK_FINDINGS.md N8/N9). Each check returns the problem
as text, or None; ``parse.spec_from_xml`` raises it with the network named.
"""

from __future__ import annotations

import ipaddress


def _route_gateway(route, index):
    """The gateway of the ``index``-th ``<route>`` or a problem text."""
    for name in ('address', 'gateway'):
        if not route.get(name):
            return None, '<route> #%d has no %s' % (index, name)
    try:
        return ipaddress.ip_address(route.get('gateway')), None
    except ValueError:
        return None, '<route> #%d gateway %r is not an IP address' % (index, route.get('gateway'))


def route_problem(root, ips):
    """libvirt refuses a static route whose gateway is on none of the
    network's subnets of its family (``ips``: the parsed IpSpec tuple)."""
    for index, route in enumerate(root.findall('route'), 1):
        gateway, problem = _route_gateway(route, index)
        if problem:
            return problem
        for ip in ips:
            if (ip.family == 'ipv6') == (gateway.version == 6) and gateway in ipaddress.ip_network(ip.network):
                break
        else:
            return ('<route> #%d gateway %s is not on any of the network\'s subnets (libvirt refuses an '
                    'unreachable static route gateway)' % (index, gateway))
    return None


def vlan_problem(root):
    """libvirt's bridges (nat, route, open, isolated) take no ``<vlan>``, neither
    on the network nor in a ``<portgroup>`` (a ``<virtualport>`` it accepts)."""
    if root.find('vlan') is not None or root.find('portgroup/vlan') is not None:
        return ('<vlan> is not supported by a network with a libvirt-managed bridge (libvirt refuses it for '
                'the isolated, nat, route and open modes)')
    return None
