# -*- coding: utf-8 -*-
"""Hand-picked networks for the fixed network differential
(test_diff_network.py): every one is started by libvirt 9.0 and applied by
our module, and the outcome must be the expected one: ``identical`` (same
rules), ``both-rejected``, or ``deliberate`` (we refuse on purpose, see
network_suite.DELIBERATE_REFUSALS). Each entry: (name, expected outcome,
[network XML, ...] started in order, [uplinks our side must create]).
"""

from __future__ import annotations


def _net(name, *lines, attrs=''):
    """A <network> document: ``lines`` are its elements after <name>, one per line."""
    return '<network%s>\n  <name>%s</name>\n%s</network>\n' % (attrs, name, ''.join('  %s\n' % line for line in lines))


CASES = (
    # finding N1: nat/route/open need an <ip>
    ('nat-without-ip', 'both-rejected', [
        _net('e1', "<forward mode='nat'/>", "<bridge name='vbe1'/>"),
    ], []),
    ('route-without-ip', 'both-rejected', [
        _net('e2', "<forward mode='route' dev='eth9'/>", "<bridge name='vbe2'/>"),
    ], ['eth9']),
    ('open-without-ip', 'both-rejected', [
        _net('e3', "<forward mode='open'/>", "<bridge name='vbe3'/>"),
    ], []),
    ('isolated-without-ip', 'identical', [
        _net('e4', "<bridge name='vbe4'/>"),
    ], []),
    # prefix and netmask together; netmask with prefix='0'
    ('prefix-and-netmask', 'both-rejected', [
        _net(
            'e5',
            '<forward/>',
            "<bridge name='vbe5'/>",
            "<ip address='10.5.0.1' prefix='16' netmask='255.255.255.0'/>",
        ),
    ], []),
    ('prefix-zero-and-netmask', 'identical', [
        _net(
            'e6',
            '<forward/>',
            "<bridge name='vbe6'/>",
            "<ip address='10.6.0.1' prefix='0' netmask='255.255.255.0'/>",
        ),
    ], []),
    # an IPv6 address without family='ipv6'
    ('ipv6-without-family', 'both-rejected', [
        _net('e7', "<forward mode='route'/>", "<bridge name='vbe7'/>", "<ip address='fd00:7::1' prefix='64'/>"),
    ], []),
    # <tftp/> without root is no TFTP for libvirt
    ('tftp-without-root', 'identical', [
        _net('e8', "<bridge name='vbe8'/>", "<ip address='10.8.0.1' prefix='24'><tftp/></ip>"),
    ], []),
    ('tftp-with-root', 'identical', [
        _net('e9', "<bridge name='vbe9'/>", "<ip address='10.9.0.1' prefix='24'><tftp root='/tmp'/></ip>"),
    ], []),
    # masquerade port range edge values
    ('nat-ports-from-zero', 'identical', [
        _net(
            'e10',
            "<forward mode='nat'><nat><port start='0' end='1023'/></nat></forward>",
            "<bridge name='vbe10'/>",
            "<ip address='10.10.0.1' prefix='24'/>",
        ),
    ], []),
    ('nat-ports-zero-zero', 'identical', [
        _net(
            'e11',
            "<forward mode='nat'><nat><port start='0' end='0'/></nat></forward>",
            "<bridge name='vbe11'/>",
            "<ip address='10.11.0.1' prefix='24'/>",
        ),
    ], []),
    ('nat-port-missing-start', 'both-rejected', [
        _net(
            'e12',
            "<forward mode='nat'><nat><port end='2000'/></nat></forward>",
            "<bridge name='vbe12'/>",
            "<ip address='10.12.0.1' prefix='24'/>",
        ),
    ], []),
    ('empty-nat-in-route-mode', 'both-rejected', [
        _net(
            'e13',
            "<forward mode='route'><nat/></forward>",
            "<bridge name='vbe13'/>",
            "<ip address='10.13.0.1' prefix='24'/>",
        ),
    ], []),
    # non-contiguous netmask
    ('netmask-not-contiguous', 'both-rejected', [
        _net('e14', "<bridge name='vbe14'/>", "<ip address='10.14.0.1' netmask='255.0.255.0'/>"),
    ], []),
    # classful defaults
    ('classful-a-b-c', 'identical', [
        _net(
            'e15',
            "<forward mode='route'/>",
            "<bridge name='vbe15'/>",
            "<ip address='10.15.0.1'/>",
            "<ip address='172.17.0.1'/>",
            "<ip address='192.168.15.1'/>",
            "<ip family='ipv6' address='fd00:15::1'/>",
        ),
    ], []),
    # ipv6='yes' without an IPv6 address, and a nat ipv6 without IPv6 address
    ('ipv6-yes-no-address', 'identical', [
        _net(
            'e16',
            '<forward/>',
            "<bridge name='vbe16'/>",
            "<ip address='10.16.0.1' prefix='24'/>",
            attrs=" ipv6='yes'",
        ),
    ], []),
    ('nat-ipv6-snat-dev', 'identical', [
        _net(
            'e17',
            "<forward mode='nat' dev='up17'>",
            "<nat ipv6='yes'>",
            "<address start='203.0.113.5' end='203.0.113.9'/>",
            "<port start='2000' end='3000'/>",
            '</nat>',
            '</forward>',
            "<bridge name='vbe17'/>",
            "<ip address='10.17.0.1' prefix='24'>",
            "<dhcp><range start='10.17.0.2' end='10.17.0.9'/></dhcp>",
            '</ip>',
            "<ip family='ipv6' address='fd00:17::1' prefix='64'/>",
        ),
    ], ['up17']),
    # two networks, the later one above
    ('two-networks', 'identical', [
        _net('e18', '<forward/>', "<bridge name='vbe18'/>", "<ip address='10.18.0.1' prefix='24'/>"),
        _net(
            'e19',
            "<forward mode='route'/>",
            "<bridge name='vbe19'/>",
            "<ip address='10.19.0.1' prefix='24'/>",
            "<ip family='ipv6' address='fd00:19::1' prefix='64'/>",
        ),
    ], []),
    # deliberate refusals: the subnet's own network/broadcast address as gateway,
    # overlapping subnets (one network; two networks), non-canonical addresses
    ('gateway-is-network-address', 'deliberate', [
        _net('e20', "<bridge name='vbe20'/>", "<ip address='10.20.0.0' prefix='24'/>"),
    ], []),
    ('gateway-is-broadcast-address', 'deliberate', [
        _net('e21', "<bridge name='vbe21'/>", "<ip address='10.21.0.255' prefix='24'/>"),
    ], []),
    ('overlap-in-one-network', 'deliberate', [
        _net(
            'e22',
            '<forward/>',
            "<bridge name='vbe22'/>",
            "<ip address='10.22.0.1' prefix='16'/>",
            "<ip address='10.22.5.1' prefix='24'/>",
        ),
    ], []),
    ('overlap-between-networks', 'deliberate', [
        _net('e23', '<forward/>', "<bridge name='vbe23'/>", "<ip address='10.23.0.1' prefix='16'/>"),
        _net('e24', '<forward/>', "<bridge name='vbe24'/>", "<ip address='10.23.5.1' prefix='24'/>"),
    ], []),
    ('same-subnet-two-networks', 'identical', [
        _net('e25', '<forward/>', "<bridge name='vbe25'/>", "<ip address='10.25.0.1' prefix='24'/>"),
        _net('e26', '<forward/>', "<bridge name='vbe26'/>", "<ip address='10.25.0.2' prefix='24'/>"),
    ], []),
    ('octal-address', 'deliberate', [
        _net('e27', "<bridge name='vbe27'/>", "<ip address='010.27.0.1' prefix='24'/>"),
    ], []),
    # finding N7: records in a disabled <dns>
    ('dns-disabled-with-forwarder', 'both-rejected', [
        _net('e28', "<bridge name='vbe28'/>", "<dns enable='no'><forwarder addr='192.0.2.53'/></dns>",
             "<ip address='10.28.0.1' prefix='24'/>"),
    ], []),
    ('dns-disabled', 'identical', [
        _net('e29', "<forward/>", "<bridge name='vbe29'/>", "<dns enable='no'/>",
             "<ip address='10.29.0.1' prefix='24'/>"),
    ], []),
    # SNAT to one address (nft prints it as A/32, iptables as A)
    ('snat-one-address-ports', 'identical', [
        _net('e30', "<forward mode='nat' dev='up30'><nat><address start='203.0.113.30' end='203.0.113.30'/>"
                    "<port start='1024' end='1025'/></nat></forward>",
             "<bridge name='vbe30'/>", "<ip address='10.30.0.126' prefix='25'/>"),
    ], ['up30']),
    # finding N8: a static route needs a gateway on one of the subnets
    ('route-gateway-unreachable', 'both-rejected', [
        _net('e31', "<forward mode='route'/>", "<bridge name='vbe31'/>", "<ip address='10.31.0.1' prefix='24'/>",
             "<route address='10.99.0.0' prefix='16' gateway='10.32.0.9'/>"),
    ], []),
    ('route-gateway-reachable', 'identical', [
        _net('e32', "<forward mode='route'/>", "<bridge name='vbe32'/>", "<ip address='10.32.0.1' prefix='24'/>",
             "<route address='10.98.0.0' prefix='16' gateway='10.32.0.9'/>"),
    ], []),
    # finding N9: no <vlan> on a libvirt-managed bridge (network or portgroup); a <virtualport> is accepted
    ('vlan-in-nat', 'both-rejected', [
        _net('e33', "<forward/>", "<bridge name='vbe33'/>", "<vlan><tag id='42'/></vlan>",
             "<ip address='10.33.0.1' prefix='24'/>"),
    ], []),
    ('vlan-in-portgroup', 'both-rejected', [
        _net('e37', "<forward mode='route'/>", "<bridge name='vbe37'/>",
             "<portgroup name='p'><vlan><tag id='7'/></vlan></portgroup>", "<ip address='10.37.0.1' prefix='24'/>"),
    ], []),
    ('virtualport-in-route', 'identical', [
        _net('e34', "<forward mode='route'/>", "<bridge name='vbe34'/>", "<virtualport type='openvswitch'/>",
             "<ip address='10.34.0.1' prefix='24'/>"),
    ], []),
    # finding N10: dev= of mode='none' is ignored
    ('dev-with-isolated', 'identical', [
        _net('e35', "<forward mode='none' dev='eth5'/>", "<bridge name='vbe35'/>",
             "<ip address='10.35.0.1' prefix='24'/>"),
    ], []),
    # finding N11: an address with a blank is no address
    ('address-with-blank', 'both-rejected', [
        _net('e36', "<bridge name='vbe36'/>", "<ip address=' 10.36.0.1' prefix='24'/>"),
    ], []),
    # finding N12: empty attributes
    ('network-ipv6-empty', 'identical', [
        _net('e38', "<bridge name='vbe38'/>", "<ip address='10.38.0.1' prefix='24'/>", attrs=" ipv6=''"),
    ], []),
    ('prefix-empty', 'both-rejected', [
        _net('e39', "<bridge name='vbe39'/>", "<ip address='10.39.0.1' prefix='' netmask='255.255.255.0'/>"),
    ], []),
    ('forward-dev-empty', 'identical', [
        _net('e40', "<forward mode='nat' dev=''/>", "<bridge name='vbe40'/>", "<ip address='10.40.0.1' prefix='24'/>"),
    ], []),
    ('nat-ipv6-empty', 'both-rejected', [
        _net('e41', "<forward><nat ipv6=''/></forward>", "<bridge name='vbe41'/>",
             "<ip address='10.41.0.1' prefix='24'/>"),
    ], []),
    # finding N14: a bridge named like an `ip` keyword abbreviation
    ('bridge-named-a', 'identical', [
        _net('e42', "<forward/>", "<bridge name='a'/>", "<ip address='10.42.0.1' prefix='24'/>"),
    ], []),
    # deliberate: '+' in interface names (dev='eth+' is an xtables wildcard in libvirt's rules)
    ('bridge-name-with-plus', 'deliberate', [
        _net('e43', "<bridge name='br+1'/>", "<ip address='10.43.0.1' prefix='24'/>"),
    ], []),
    ('forward-dev-wildcard', 'deliberate', [
        _net('e44', "<forward dev='eth+'/>", "<bridge name='vbe44'/>", "<ip address='10.44.0.1' prefix='24'/>"),
    ], []),
    ('bridge-name-with-at', 'identical', [
        _net('e45', "<bridge name='br@1'/>", "<ip address='10.45.0.1' prefix='24'/>"),
    ], []),
    ('network-name-with-blank', 'deliberate', [
        _net('e 46', "<bridge name='vbe46'/>", "<ip address='10.46.0.1' prefix='24'/>"),
    ], []),
    # finding N15: class D/E addresses have no classful default prefix
    ('class-d-without-prefix', 'both-rejected', [
        _net('e47', "<bridge name='vbe47'/>", "<ip address='230.1.2.3'/>"),
    ], []),
    ('class-e-with-prefix', 'identical', [
        _net('e48', "<forward/>", "<bridge name='vbe48'/>", "<ip address='240.1.2.3' prefix='24'/>"),
    ], []),
    # finding N16: an IPv4-mapped IPv6 gateway (iproute2 prints it differently)
    ('ipv4-mapped-ipv6', 'identical', [
        _net('e49', "<bridge name='vbe49'/>", "<ip family='ipv6' address='::ffff:10.1.2.3' prefix='120'/>"),
    ], []),
    ('ipv6-link-local', 'identical', [
        _net('e50', "<forward mode='route'/>", "<bridge name='vbe50'/>",
             "<ip family='ipv6' address='fe80::1' prefix='64'/>"),
    ], []),
    ('same-ipv6-subnet-two-networks', 'deliberate', [
        _net('e51', "<bridge name='vbe51'/>", "<ip family='ipv6' address='fd00:51::1' prefix='64'/>"),
        _net('e52', "<bridge name='vbe52'/>", "<ip family='ipv6' address='fd00:51::2' prefix='64'/>"),
    ], []),
    # zones without firewalld: refused by both, except for open networks, whose zone
    # 9.0 ignores (11.3, which we follow, refuses it)
    ('zone-without-firewalld', 'both-rejected', [
        _net('e53', "<forward/>", "<bridge name='vbe53' zone='trusted'/>", "<ip address='10.53.0.1' prefix='24'/>"),
    ], []),
    ('open-zone-without-firewalld', 'deliberate', [
        _net('e54', "<forward mode='open'/>", "<bridge name='vbe54' zone='trusted'/>",
             "<ip address='10.54.0.1' prefix='24'/>"),
    ], []),
    # modes without a libvirt firewall are not this module's
    ('bridge-mode', 'deliberate', [
        _net('e55', "<forward mode='bridge'/>", "<bridge name='vbe55'/>"),
    ], []),
)

# (name, expected outcome, networks started in order, uplinks, operations after them)
LIFECYCLE_CASES = (
    # finding N13: a network restarted with a change sits above those started after it
    ('restart-moves-above', 'identical', [
        _net('l1', "<forward/>", "<bridge name='vbl1'/>", "<ip address='10.81.0.1' prefix='24'/>"),
        _net('l2', "<forward mode='route'/>", "<bridge name='vbl2'/>", "<ip address='10.82.0.1' prefix='24'/>"),
        _net('l3', "<bridge name='vbl3'/>", "<ip address='10.83.0.1' prefix='24'/>"),
    ], [], [('restart', _net('l1', "<forward/>", "<bridge name='vbl1'/>", "<ip address='10.84.0.1' prefix='24'/>"))]),
    # the middle network destroyed: the others keep their order
    ('destroy-middle', 'identical', [
        _net('l4', "<forward/>", "<bridge name='vbl4'/>", "<ip address='10.85.0.1' prefix='24'/>"),
        _net('l5', "<forward mode='route'/>", "<bridge name='vbl5'/>", "<ip address='10.86.0.1' prefix='24'/>"),
        _net('l6', "<bridge name='vbl6'/>", "<ip address='10.87.0.1' prefix='24'/>"),
    ], [], [('destroy', 'l5')]),
)
