# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The standard network filters every libvirt host has, written for this collection.

libvirt installs 24 filters (``clean-traffic`` and the pieces it is made of)
that guests reference by name. Hosts managed by this collection have no
libvirtd, so we ship our own definitions of them. They were written from the
documented behaviour of those filters; what they compile to (chain names, chain
and rule priorities, matches, directions, actions and the order of rules inside
each filter) is the same as libvirt's, which the differential tests check
against a real libvirt.

The filters are plain nwfilter XML strings (AnsiballZ ships only Python files
to managed hosts, so they cannot live in .xml data files). Each has a fixed
UUID of our own so that re-defining them is idempotent.

A note on the direction words used below: ``out`` is traffic the guest sends,
``in`` is traffic delivered to the guest, ``inout`` is both.
"""

from __future__ import annotations

# Layer-2 building blocks ---------------------------------------------------

_NO_MAC_SPOOFING = """\
<filter name='no-mac-spoofing' chain='mac' priority='-800'>
  <uuid>0dcc8d15-2afc-4d3a-9e81-dd82a98a818a</uuid>
  <!-- Frames the guest sends must carry its own MAC as source: those go
       back to the root chain, any other source MAC is dropped. -->
  <rule action='return' direction='out' priority='500'>
    <mac srcmacaddr='$MAC'/>
  </rule>
  <rule action='drop' direction='out' priority='500'>
    <mac/>
  </rule>
</filter>
"""

_NO_MAC_BROADCAST = """\
<filter name='no-mac-broadcast' chain='ipv4'>
  <uuid>b6b3bcf9-dd8c-4834-b8ea-d465e3970738</uuid>
  <!-- The guest may not send to the Ethernet broadcast address. The chain is
       an ipv4 one, so only IPv4 frames ever reach this rule. -->
  <rule action='drop' direction='out' priority='500'>
    <mac dstmacaddr='ff:ff:ff:ff:ff:ff'/>
  </rule>
</filter>
"""

_NO_OTHER_L2_TRAFFIC = """\
<filter name='no-other-l2-traffic'>
  <uuid>673cb490-f952-450e-951f-4dce0a9683e7</uuid>
  <!-- The catch-all at the very end of a root chain: whatever no earlier rule
       accepted is dropped, in both directions. -->
  <rule action='drop' direction='inout' priority='1000'/>
</filter>
"""

# ARP and RARP --------------------------------------------------------------

_ALLOW_ARP = """\
<filter name='allow-arp' chain='arp'>
  <uuid>ade76cfb-f537-4f70-8ca5-fc5d2de3a481</uuid>
  <!-- Every ARP frame, to and from the guest. -->
  <rule action='accept' direction='inout' priority='500'/>
</filter>
"""

_NO_ARP_MAC_SPOOFING = """\
<filter name='no-arp-mac-spoofing' chain='arp-mac' priority='-520'>
  <uuid>02ee5ccc-bb21-49c5-acc1-3ac7a1cf27c6</uuid>
  <!-- ARP from the guest must name the guest's MAC as the sender hardware
       address; anything else is dropped. -->
  <rule action='return' direction='out' priority='350'>
    <arp arpsrcmacaddr='$MAC'/>
  </rule>
  <rule action='drop' direction='out' priority='1000'/>
</filter>
"""

_NO_ARP_IP_SPOOFING = """\
<filter name='no-arp-ip-spoofing' chain='arp-ip' priority='-510'>
  <uuid>a14120d9-4936-4356-a3c6-8fe11755934d</uuid>
  <!-- ARP from the guest must name one of the guest's addresses ($IP, may
       be a list) as the sender protocol address; the rest is dropped. -->
  <rule action='return' direction='out' priority='400'>
    <arp arpsrcipaddr='$IP'/>
  </rule>
  <rule action='drop' direction='out' priority='1000'/>
</filter>
"""

_NO_ARP_SPOOFING = """\
<filter name='no-arp-spoofing' chain='root'>
  <uuid>cab970fb-f318-4245-b3fd-f5e6a47fd3fe</uuid>
  <!-- Both ARP checks: sender MAC first, then sender IP. -->
  <filterref filter='no-arp-mac-spoofing'/>
  <filterref filter='no-arp-ip-spoofing'/>
</filter>
"""

_NO_OTHER_RARP_TRAFFIC = """\
<filter name='no-other-rarp-traffic' chain='rarp'>
  <uuid>84c4592d-89c9-4b25-a306-99f53591f1c3</uuid>
  <!-- Closes the rarp chain: RARP not accepted before is dropped. -->
  <rule action='drop' direction='inout' priority='1000'/>
</filter>
"""

_QEMU_ANNOUNCE_SELF_RARP = """\
<filter name='qemu-announce-self-rarp' chain='rarp'>
  <uuid>7128632d-a6e2-4ccf-99f8-5a2b1e87ddb0</uuid>
  <!-- After a migration QEMU broadcasts a reverse-ARP request that carries
       the guest MAC as sender and target and 0.0.0.0 as both addresses.
       Let exactly that through, sent by the guest ... -->
  <rule action='accept' direction='out' priority='500'>
    <rarp srcmacaddr='$MAC' dstmacaddr='ff:ff:ff:ff:ff:ff'
          opcode='Request_Reverse'
          arpsrcmacaddr='$MAC' arpdstmacaddr='$MAC'
          arpsrcipaddr='0.0.0.0' arpdstipaddr='0.0.0.0'/>
  </rule>
  <!-- ... and delivered to the guest (no source MAC check that way). -->
  <rule action='accept' direction='in' priority='500'>
    <rarp dstmacaddr='ff:ff:ff:ff:ff:ff'
          opcode='Request_Reverse'
          arpsrcmacaddr='$MAC' arpdstmacaddr='$MAC'
          arpsrcipaddr='0.0.0.0' arpdstipaddr='0.0.0.0'/>
  </rule>
</filter>
"""

_QEMU_ANNOUNCE_SELF = """\
<filter name='qemu-announce-self' chain='root'>
  <uuid>2b3e148a-3ed0-4693-968c-25392fcf4a0c</uuid>
  <!-- Older QEMU versions announce themselves with the mistyped ethertype
       0x0835 instead of RARP's 0x8035: accept those frames from the guest. -->
  <rule action='accept' direction='out' priority='500'>
    <mac protocolid='0x835'/>
  </rule>
  <!-- The correctly typed announcement, then drop all other RARP. -->
  <filterref filter='qemu-announce-self-rarp'/>
  <filterref filter='no-other-rarp-traffic'/>
</filter>
"""

# IPv4 ----------------------------------------------------------------------

_ALLOW_IPV4 = """\
<filter name='allow-ipv4' chain='ipv4'>
  <uuid>79b76570-6d18-4c35-b0e6-c7e5e89b64ca</uuid>
  <!-- Every IPv4 frame, to and from the guest. -->
  <rule action='accept' direction='inout' priority='500'/>
</filter>
"""

_ALLOW_INCOMING_IPV4 = """\
<filter name='allow-incoming-ipv4' chain='ipv4'>
  <uuid>a254ac27-64d2-4b0e-ae34-7c9fdc9f9a3f</uuid>
  <!-- Every IPv4 frame delivered to the guest. -->
  <rule action='accept' direction='in' priority='500'/>
</filter>
"""

_NO_IP_SPOOFING = """\
<filter name='no-ip-spoofing' chain='ipv4-ip' priority='-710'>
  <uuid>f587253e-fb00-4c36-a812-f681d72b1a81</uuid>
  <!-- A guest without an address yet sends DHCP from 0.0.0.0: let UDP from
       0.0.0.0 pass this check (later rules decide about it). -->
  <rule action='return' direction='out' priority='100'>
    <ip protocol='udp' srcipaddr='0.0.0.0'/>
  </rule>
  <!-- The guest's own addresses ($IP, may be a list) pass ... -->
  <rule action='return' direction='out' priority='500'>
    <ip srcipaddr='$IP'/>
  </rule>
  <!-- ... any other source address is dropped. -->
  <rule action='drop' direction='out' priority='1000'/>
</filter>
"""

_NO_IP_MULTICAST = """\
<filter name='no-ip-multicast' chain='ipv4'>
  <uuid>f2fe1213-a560-4a2f-973e-bcd0a65c2288</uuid>
  <!-- The guest may not send to IPv4 multicast groups (224.0.0.0/4).
       Traffic to the guest is left alone. -->
  <rule action='drop' direction='out' priority='500'>
    <ip dstipmask='4' dstipaddr='224.0.0.0'/>
  </rule>
</filter>
"""

_ALLOW_DHCP = """\
<filter name='allow-dhcp' chain='ipv4'>
  <uuid>c9608319-02ae-4ac6-890a-331214c9f6d2</uuid>
  <!-- DHCP client requests: broadcast UDP from 0.0.0.0 port 68 to port 67.
       Priority 100 keeps this ahead of rules that drop broadcasts. -->
  <rule action='accept' direction='out' priority='100'>
    <ip protocol='udp'
        srcipaddr='0.0.0.0' srcportstart='68'
        dstipaddr='255.255.255.255' dstportstart='67'/>
  </rule>
  <!-- Replies from any DHCP server: UDP port 67 to port 68. -->
  <rule action='accept' direction='in' priority='100'>
    <ip protocol='udp' srcportstart='67' dstportstart='68'/>
  </rule>
</filter>
"""

_ALLOW_DHCP_SERVER = """\
<filter name='allow-dhcp-server' chain='ipv4'>
  <uuid>7c452d39-71e2-41d1-a5ae-c8af92e3f9f8</uuid>
  <!-- DHCP client requests, as in allow-dhcp. -->
  <rule action='accept' direction='out' priority='100'>
    <ip protocol='udp'
        srcipaddr='0.0.0.0' srcportstart='68'
        dstipaddr='255.255.255.255' dstportstart='67'/>
  </rule>
  <!-- Replies only from the trusted server(s) in $DHCPSERVER (a list is
       allowed), which the referencing filter or binding must supply. -->
  <rule action='accept' direction='in' priority='100'>
    <ip protocol='udp' srcipaddr='$DHCPSERVER' srcportstart='67' dstportstart='68'/>
  </rule>
</filter>
"""

# IPv6 ----------------------------------------------------------------------

_ALLOW_IPV6 = """\
<filter name='allow-ipv6' chain='ipv6'>
  <uuid>3c392f28-48c2-4c3b-be8a-7802a9f58a02</uuid>
  <!-- Every IPv6 frame, to and from the guest. -->
  <rule action='accept' direction='inout' priority='500'/>
</filter>
"""

_ALLOW_INCOMING_IPV6 = """\
<filter name='allow-incoming-ipv6' chain='ipv6'>
  <uuid>4abbb17a-c202-4ac6-9fc0-995c16b477b0</uuid>
  <!-- Every IPv6 frame delivered to the guest. -->
  <rule action='accept' direction='in' priority='500'/>
</filter>
"""

_NO_IPV6_SPOOFING = """\
<filter name='no-ipv6-spoofing' chain='ipv6-ip' priority='-610'>
  <uuid>b6be8b3f-ec84-4297-b058-0a985b39f3cd</uuid>
  <!-- UDP from link-local sources (fe80::/10, used by DHCPv6 clients) passes
       this check; later rules decide about it. -->
  <rule action='return' direction='out' priority='100'>
    <ipv6 protocol='udp' srcipaddr='fe80::' srcipmask='10'/>
  </rule>
  <!-- The guest's own IPv6 addresses ($IPV6, never filled in automatically)
       pass, any other source address is dropped. -->
  <rule action='return' direction='out' priority='500'>
    <ipv6 srcipaddr='$IPV6'/>
  </rule>
  <rule action='drop' direction='out' priority='1000'/>
</filter>
"""

_NO_IPV6_MULTICAST = """\
<filter name='no-ipv6-multicast' chain='ipv6'>
  <uuid>44708076-fd2a-4997-941e-fc2d37ddaf69</uuid>
  <!-- The guest may not send to IPv6 multicast groups (ff00::/8).
       Traffic to the guest is left alone. -->
  <rule action='drop' direction='out' priority='500'>
    <ipv6 dstipmask='8' dstipaddr='ff00::'/>
  </rule>
</filter>
"""

_ALLOW_DHCPV6 = """\
<filter name='allow-dhcpv6' chain='ipv6'>
  <uuid>140d5064-5980-4da3-98dd-363c58a28bf4</uuid>
  <!-- DHCPv6 client messages (RFC 3315 section 14): UDP from a link-local
       address, port 546, to the All_DHCP_Relay_Agents_and_Servers group
       ff02::1:2, port 547. Priority 100 keeps it ahead of multicast drops. -->
  <rule action='accept' direction='out' priority='100'>
    <ipv6 protocol='udp'
          srcipaddr='fe80::' srcipmask='10' srcportstart='546'
          dstipaddr='ff02::1:2' dstportstart='547'/>
  </rule>
  <!-- Replies from any DHCPv6 server: UDP port 547 to port 546. -->
  <rule action='accept' direction='in' priority='100'>
    <ipv6 protocol='udp' srcportstart='547' dstportstart='546'/>
  </rule>
</filter>
"""

_ALLOW_DHCPV6_SERVER = """\
<filter name='allow-dhcpv6-server' chain='ipv6'>
  <uuid>f5502d9b-893c-4f5b-a480-f50d2ed1945d</uuid>
  <!-- DHCPv6 client messages, as in allow-dhcpv6. -->
  <rule action='accept' direction='out' priority='100'>
    <ipv6 protocol='udp'
          srcipaddr='fe80::' srcipmask='10' srcportstart='546'
          dstipaddr='ff02::1:2' dstportstart='547'/>
  </rule>
  <!-- Replies only from the trusted server(s) in $DHCPSERVER, which must
       hold IPv6 addresses here. -->
  <rule action='accept' direction='in' priority='100'>
    <ipv6 protocol='udp' srcipaddr='$DHCPSERVER' srcportstart='547' dstportstart='546'/>
  </rule>
</filter>
"""

# Complete policies ---------------------------------------------------------

_CLEAN_TRAFFIC = """\
<filter name='clean-traffic' chain='root'>
  <uuid>c09e36b9-168c-4ab5-9a15-468069498400</uuid>
  <!-- The guest may only use its own MAC ($MAC) ... -->
  <filterref filter='no-mac-spoofing'/>
  <!-- ... and its own IPv4 addresses ($IP) as source; -->
  <filterref filter='no-ip-spoofing'/>
  <!-- IPv4 that passed the checks above leaves the guest, -->
  <rule action='accept' direction='out' priority='-650'>
    <mac protocolid='ipv4'/>
  </rule>
  <!-- all IPv4 reaches it. -->
  <filterref filter='allow-incoming-ipv4'/>
  <!-- ARP must not lie about the guest's MAC or address; -->
  <filterref filter='no-arp-spoofing'/>
  <!-- ARP that passed the checks is accepted both ways. -->
  <rule action='accept' direction='inout' priority='-500'>
    <mac protocolid='arp'/>
  </rule>
  <!-- Everything else at layer 2 is dropped, except -->
  <filterref filter='no-other-l2-traffic'/>
  <!-- QEMU's post-migration self-announcement. -->
  <filterref filter='qemu-announce-self'/>
</filter>
"""

_CLEAN_TRAFFIC_GATEWAY = """\
<filter name='clean-traffic-gateway'>
  <uuid>ad239443-b6c0-42e1-8044-81cb9560c2ff</uuid>
  <!-- Same anti-spoofing as clean-traffic (MAC, IPv4 source, ARP) ... -->
  <filterref filter='no-mac-spoofing'/>
  <filterref filter='no-ip-spoofing'/>
  <filterref filter='no-arp-spoofing'/>
  <!-- ... ARP both ways ... -->
  <rule action='accept' direction='inout' priority='-500'>
    <mac protocolid='arp'/>
  </rule>
  <!-- ... but otherwise the guest talks to its gateway only: it receives
       frames from $GATEWAY_MAC and sends frames to $GATEWAY_MAC. -->
  <rule action='accept' direction='in' priority='500'>
    <mac srcmacaddr='$GATEWAY_MAC'/>
  </rule>
  <rule action='accept' direction='out' priority='500'>
    <mac dstmacaddr='$GATEWAY_MAC'/>
  </rule>
  <!-- Everything else is dropped, except QEMU's self-announcement. -->
  <filterref filter='no-other-l2-traffic'/>
  <filterref filter='qemu-announce-self'/>
</filter>
"""

# name -> nwfilter XML of every built-in filter, sorted by name.
BUILTIN_FILTERS = {
    'allow-arp': _ALLOW_ARP,
    'allow-dhcp': _ALLOW_DHCP,
    'allow-dhcp-server': _ALLOW_DHCP_SERVER,
    'allow-dhcpv6': _ALLOW_DHCPV6,
    'allow-dhcpv6-server': _ALLOW_DHCPV6_SERVER,
    'allow-incoming-ipv4': _ALLOW_INCOMING_IPV4,
    'allow-incoming-ipv6': _ALLOW_INCOMING_IPV6,
    'allow-ipv4': _ALLOW_IPV4,
    'allow-ipv6': _ALLOW_IPV6,
    'clean-traffic': _CLEAN_TRAFFIC,
    'clean-traffic-gateway': _CLEAN_TRAFFIC_GATEWAY,
    'no-arp-ip-spoofing': _NO_ARP_IP_SPOOFING,
    'no-arp-mac-spoofing': _NO_ARP_MAC_SPOOFING,
    'no-arp-spoofing': _NO_ARP_SPOOFING,
    'no-ip-multicast': _NO_IP_MULTICAST,
    'no-ip-spoofing': _NO_IP_SPOOFING,
    'no-ipv6-multicast': _NO_IPV6_MULTICAST,
    'no-ipv6-spoofing': _NO_IPV6_SPOOFING,
    'no-mac-broadcast': _NO_MAC_BROADCAST,
    'no-mac-spoofing': _NO_MAC_SPOOFING,
    'no-other-l2-traffic': _NO_OTHER_L2_TRAFFIC,
    'no-other-rarp-traffic': _NO_OTHER_RARP_TRAFFIC,
    'qemu-announce-self': _QEMU_ANNOUNCE_SELF,
    'qemu-announce-self-rarp': _QEMU_ANNOUNCE_SELF_RARP,
}
