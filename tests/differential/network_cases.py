# -*- coding: utf-8 -*-
"""Hand-picked networks for the fixed network differential
(test_diff_network.py): every one is started by libvirt 9.0 and applied by
our module, and the outcome must be the expected one: ``identical`` (same
rules), ``both-rejected``, or ``deliberate`` (we refuse on purpose, see
network_suite.DELIBERATE_REFUSALS). Each entry: (name, expected outcome,
[network XML, ...] started in order, [uplinks our side must create]).
"""

from __future__ import annotations


def _net(name, body, attrs=''):
    return "<network%s>\n  <name>%s</name>\n%s</network>\n" % (attrs, name, body)


CASES = (
    # finding N1: nat/route/open need an <ip>
    ('nat-without-ip', 'both-rejected', [_net('e1', "  <forward mode='nat'/>\n  <bridge name='vbe1'/>\n")], []),
    ('route-without-ip', 'both-rejected', [_net('e2', "  <forward mode='route' dev='eth9'/>\n  <bridge name='vbe2'/>\n")],
     ['eth9']),
    ('open-without-ip', 'both-rejected', [_net('e3', "  <forward mode='open'/>\n  <bridge name='vbe3'/>\n")], []),
    ('isolated-without-ip', 'identical', [_net('e4', "  <bridge name='vbe4'/>\n")], []),
    # prefix and netmask together; netmask with prefix='0'
    ('prefix-and-netmask', 'both-rejected', [_net('e5', "  <forward/>\n  <bridge name='vbe5'/>\n"
                                       "  <ip address='10.5.0.1' prefix='16' netmask='255.255.255.0'/>\n")], []),
    ('prefix-zero-and-netmask', 'identical', [_net('e6', "  <forward/>\n  <bridge name='vbe6'/>\n"
                                            "  <ip address='10.6.0.1' prefix='0' netmask='255.255.255.0'/>\n")],
     []),
    # an IPv6 address without family='ipv6'
    ('ipv6-without-family', 'both-rejected', [_net('e7', "  <forward mode='route'/>\n  <bridge name='vbe7'/>\n"
                                        "  <ip address='fd00:7::1' prefix='64'/>\n")], []),
    # <tftp/> without root is no TFTP for libvirt
    ('tftp-without-root', 'identical', [_net('e8', "  <bridge name='vbe8'/>\n"
                                      "  <ip address='10.8.0.1' prefix='24'><tftp/></ip>\n")], []),
    ('tftp-with-root', 'identical', [_net('e9', "  <bridge name='vbe9'/>\n"
                                   "  <ip address='10.9.0.1' prefix='24'><tftp root='/tmp'/></ip>\n")], []),
    # masquerade port range edge values
    ('nat-ports-from-zero', 'identical', [_net('e10', "  <forward mode='nat'><nat><port start='0' end='1023'/></nat></forward>\n"
                                         "  <bridge name='vbe10'/>\n  <ip address='10.10.0.1' prefix='24'/>\n")],
     []),
    ('nat-ports-zero-zero', 'identical', [_net('e11', "  <forward mode='nat'><nat><port start='0' end='0'/></nat></forward>\n"
                                         "  <bridge name='vbe11'/>\n  <ip address='10.11.0.1' prefix='24'/>\n")],
     []),
    ('nat-port-missing-start', 'both-rejected', [_net('e12', "  <forward mode='nat'><nat><port end='2000'/></nat></forward>\n"
                                            "  <bridge name='vbe12'/>\n  <ip address='10.12.0.1' prefix='24'/>\n")],
     []),
    ('empty-nat-in-route-mode', 'both-rejected', [_net('e13', "  <forward mode='route'><nat/></forward>\n"
                                             "  <bridge name='vbe13'/>\n  <ip address='10.13.0.1' prefix='24'/>\n")],
     []),
    # non-contiguous netmask
    ('netmask-not-contiguous', 'both-rejected', [_net('e14', "  <bridge name='vbe14'/>\n"
                                            "  <ip address='10.14.0.1' netmask='255.0.255.0'/>\n")], []),
    # classful defaults
    ('classful-a-b-c', 'identical', [_net('e15', "  <forward mode='route'/>\n  <bridge name='vbe15'/>\n"
                                    "  <ip address='10.15.0.1'/>\n  <ip address='172.17.0.1'/>\n"
                                    "  <ip address='192.168.15.1'/>\n  <ip family='ipv6' address='fd00:15::1'/>\n")],
     []),
    # ipv6='yes' without an IPv6 address, and a nat ipv6 without IPv6 address
    ('ipv6-yes-no-address', 'identical', [_net('e16', "  <forward/>\n  <bridge name='vbe16'/>\n"
                                         "  <ip address='10.16.0.1' prefix='24'/>\n", " ipv6='yes'")], []),
    ('nat-ipv6-snat-dev', 'identical', [_net('e17', "  <forward mode='nat' dev='up17'>\n    <nat ipv6='yes'>\n"
                                       "      <address start='203.0.113.5' end='203.0.113.9'/>\n"
                                       "      <port start='2000' end='3000'/>\n    </nat>\n  </forward>\n"
                                       "  <bridge name='vbe17'/>\n  <ip address='10.17.0.1' prefix='24'>\n"
                                       "    <dhcp><range start='10.17.0.2' end='10.17.0.9'/></dhcp>\n  </ip>\n"
                                       "  <ip family='ipv6' address='fd00:17::1' prefix='64'/>\n")], ['up17']),
    # two networks, the later one above
    ('two-networks', 'identical', [
        _net('e18', "  <forward/>\n  <bridge name='vbe18'/>\n  <ip address='10.18.0.1' prefix='24'/>\n"),
        _net('e19', "  <forward mode='route'/>\n  <bridge name='vbe19'/>\n  <ip address='10.19.0.1' prefix='24'/>\n"
                    "  <ip family='ipv6' address='fd00:19::1' prefix='64'/>\n")], []),
    # deliberate refusals: the subnet's own network/broadcast address as gateway,
    # overlapping subnets (one network; two networks), non-canonical addresses
    ('gateway-is-network-address', 'deliberate', [_net('e20', "  <bridge name='vbe20'/>\n  <ip address='10.20.0.0' prefix='24'/>\n")],
     []),
    ('gateway-is-broadcast-address', 'deliberate', [_net('e21', "  <bridge name='vbe21'/>\n"
                                                  "  <ip address='10.21.0.255' prefix='24'/>\n")], []),
    ('overlap-in-one-network', 'deliberate', [_net('e22', "  <forward/>\n  <bridge name='vbe22'/>\n"
                                            "  <ip address='10.22.0.1' prefix='16'/>\n"
                                            "  <ip address='10.22.5.1' prefix='24'/>\n")], []),
    ('overlap-between-networks', 'deliberate', [
        _net('e23', "  <forward/>\n  <bridge name='vbe23'/>\n  <ip address='10.23.0.1' prefix='16'/>\n"),
        _net('e24', "  <forward/>\n  <bridge name='vbe24'/>\n  <ip address='10.23.5.1' prefix='24'/>\n")], []),
    ('same-subnet-two-networks', 'identical', [
        _net('e25', "  <forward/>\n  <bridge name='vbe25'/>\n  <ip address='10.25.0.1' prefix='24'/>\n"),
        _net('e26', "  <forward/>\n  <bridge name='vbe26'/>\n  <ip address='10.25.0.2' prefix='24'/>\n")], []),
    ('octal-address', 'deliberate', [_net('e27', "  <bridge name='vbe27'/>\n  <ip address='010.27.0.1' prefix='24'/>\n")], []),
)
