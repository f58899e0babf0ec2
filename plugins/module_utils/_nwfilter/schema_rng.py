# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data: the RelaxNG grammar (written for this project) of nwfilter ``<filter>`` and
``<filterbinding>`` documents, as text; :mod:`._nwfilter.schema` compiles and uses it.

It is a Python module, not a ``.rng`` file, only because AnsiballZ ships just the
``.py`` files of module_utils to the managed host.  Keep code out of it.

Lexical patterns are XML Schema regular expressions (implicitly anchored at both
ends) and deliberately loose: they accept a superset of what libvirt's parser
accepts; the parser does the exact value checks (see :mod:`._nwfilter.schema`).
The ``rule-content`` define lists the protocol elements in the order libvirt
documents them: a rule holds none (matches every frame) or one or more elements
of the SAME protocol (libvirt merges repeated elements into one rule, and its
canonical form prints the negated attributes in a second element).
"""

RNG_NS = 'http://relaxng.org/ns/structure/1.0'

# Every <define> of the grammar; the schema module wraps them in <grammar> with a <start>.
DEFINES = r'''
  <!-- $NAME, $NAME[N], $NAME[@N]; libvirt ignores whatever follows the ']' -->
  <define name="t-var">
    <data type="string"><param name="pattern">[$][A-Za-z0-9_]+(\[.*)?</param></data>
  </define>
  <!-- unsigned number: decimal or hex (with or without 0x); libvirt's strtoul
       also takes leading blanks and a sign -->
  <define name="t-num">
    <choice>
      <data type="string"><param name="pattern">\s*[+\-]?(0[xX])?[0-9A-Fa-f]+</param></data>
      <ref name="t-var"/>
    </choice>
  </define>
  <!-- a number or a symbolic name (protocolid, encap-protocol, opcode, protocol) -->
  <define name="t-num-or-name">
    <choice>
      <ref name="t-num"/>
      <data type="string"><param name="pattern">[A-Za-z][A-Za-z0-9_]*</param></data>
    </choice>
  </define>
  <!-- MAC address or mask: 1-2 hex digits per byte; libvirt ignores text after a blank -->
  <define name="t-mac">
    <choice>
      <data type="string"><param name="pattern">[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){5}(\s.*)?</param></data>
      <ref name="t-var"/>
    </choice>
  </define>
  <!-- IPv4 address: dotted quad or an inet_aton short/hex/octal form -->
  <define name="t-ipv4-text">
    <data type="string"><param name="pattern">[0-9][0-9A-Fa-fxX.]*</param></data>
  </define>
  <define name="t-ipv4">
    <choice><ref name="t-ipv4-text"/><ref name="t-var"/></choice>
  </define>
  <!-- IPv6 address, possibly with an IPv4 tail or a zone -->
  <define name="t-ipv6-text">
    <data type="string"><param name="pattern">[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%\S*)?</param></data>
  </define>
  <define name="t-ipv6">
    <choice><ref name="t-ipv6-text"/><ref name="t-var"/></choice>
  </define>
  <!-- masks: a prefix length or a netmask -->
  <define name="t-ipv4-mask">
    <choice><ref name="t-num"/><ref name="t-ipv4-text"/></choice>
  </define>
  <define name="t-ipv6-mask">
    <choice><ref name="t-num"/><ref name="t-ipv6-text"/></choice>
  </define>
  <!-- libvirt types dstipto as IPv4 even for IPv6 protocols; we let the parser say so -->
  <define name="t-ip-any">
    <choice><ref name="t-ipv4-text"/><ref name="t-ipv6-text"/><ref name="t-var"/></choice>
  </define>
  <!-- booleans, statematch and match: libvirt reads any other text as false / no -->
  <define name="t-any">
    <data type="string"/>
  </define>
  <!-- conntrack state words NEW ESTABLISHED RELATED INVALID NONE, any case -->
  <define name="t-state">
    <choice>
      <data type="string"><param name="pattern">[A-Za-z,\s]*</param></data>
      <ref name="t-var"/>
    </choice>
  </define>
  <!-- tcp flags MASK/FLAGS, each a comma list of SYN ACK URG PSH FIN RST ALL NONE -->
  <define name="t-tcp-flags">
    <choice>
      <data type="string"><param name="pattern">[A-Za-z,\s]*/[A-Za-z,\s]*</param></data>
      <ref name="t-var"/>
    </choice>
  </define>
  <define name="t-ipset">
    <choice>
      <data type="string"><param name="pattern">[A-Za-z0-9_.:+ \-]*</param></data>
      <ref name="t-var"/>
    </choice>
  </define>
  <define name="t-ipset-flags">
    <choice>
      <data type="string"><param name="pattern">[A-Za-z,\s]*</param></data>
      <ref name="t-var"/>
    </choice>
  </define>
  <define name="t-int">
    <data type="string"><param name="pattern">\s*[+\-]?[0-9]+</param></data>
  </define>
  <!-- libvirt's UUID parser skips blanks around and '-'/' ' between the 16 bytes -->
  <define name="t-uuid">
    <data type="string"><param name="pattern">\s*([\- ]*[0-9A-Fa-f]{2}){16}\s*</param></data>
  </define>

  <define name="a-match">
    <interleave>
      <optional><attribute name="match"><ref name="t-any"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-comment">
    <interleave>
      <optional><attribute name="comment"><ref name="t-any"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-srcmac">
    <interleave>
      <optional><attribute name="srcmacaddr"><ref name="t-mac"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-eth-src">
    <interleave>
      <ref name="a-srcmac"/>
      <optional><attribute name="srcmacmask"><ref name="t-mac"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-eth">
    <interleave>
      <ref name="a-eth-src"/>
      <optional><attribute name="dstmacaddr"><ref name="t-mac"/></attribute></optional>
      <optional><attribute name="dstmacmask"><ref name="t-mac"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-ports">
    <interleave>
      <optional><attribute name="srcportstart"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="srcportend"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="dstportstart"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="dstportend"><ref name="t-num"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-dscp">
    <interleave>
      <optional><attribute name="dscp"><ref name="t-num"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-icmp-type-code">
    <interleave>
      <optional><attribute name="type"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="code"><ref name="t-num"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-ipv4-addrs">
    <interleave>
      <optional><attribute name="srcipaddr"><ref name="t-ipv4"/></attribute></optional>
      <optional><attribute name="srcipmask"><ref name="t-ipv4-mask"/></attribute></optional>
      <optional><attribute name="dstipaddr"><ref name="t-ipv4"/></attribute></optional>
      <optional><attribute name="dstipmask"><ref name="t-ipv4-mask"/></attribute></optional>
    </interleave>
  </define>
  <define name="a-ipv6-addrs">
    <interleave>
      <optional><attribute name="srcipaddr"><ref name="t-ipv6"/></attribute></optional>
      <optional><attribute name="srcipmask"><ref name="t-ipv6-mask"/></attribute></optional>
      <optional><attribute name="dstipaddr"><ref name="t-ipv6"/></attribute></optional>
      <optional><attribute name="dstipmask"><ref name="t-ipv6-mask"/></attribute></optional>
    </interleave>
  </define>
  <!-- attributes every IP-layer (iptables) protocol has, after the addresses -->
  <define name="a-ip-layer-tail">
    <interleave>
      <ref name="a-dscp"/>
      <optional><attribute name="connlimit-above"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="state"><ref name="t-state"/></attribute></optional>
      <optional><attribute name="ipset"><ref name="t-ipset"/></attribute></optional>
      <optional><attribute name="ipsetflags"><ref name="t-ipset-flags"/></attribute></optional>
      <ref name="a-comment"/>
      <ref name="a-match"/>
    </interleave>
  </define>
  <define name="a-ip4-layer">
    <interleave>
      <ref name="a-srcmac"/>
      <ref name="a-ipv4-addrs"/>
      <optional><attribute name="srcipfrom"><ref name="t-ipv4"/></attribute></optional>
      <optional><attribute name="srcipto"><ref name="t-ipv4"/></attribute></optional>
      <optional><attribute name="dstipfrom"><ref name="t-ipv4"/></attribute></optional>
      <optional><attribute name="dstipto"><ref name="t-ipv4"/></attribute></optional>
      <ref name="a-ip-layer-tail"/>
    </interleave>
  </define>
  <define name="a-ip6-layer">
    <interleave>
      <ref name="a-srcmac"/>
      <ref name="a-ipv6-addrs"/>
      <optional><attribute name="srcipfrom"><ref name="t-ipv6"/></attribute></optional>
      <optional><attribute name="srcipto"><ref name="t-ipv6"/></attribute></optional>
      <optional><attribute name="dstipfrom"><ref name="t-ipv6"/></attribute></optional>
      <optional><attribute name="dstipto"><ref name="t-ip-any"/></attribute></optional>
      <ref name="a-ip-layer-tail"/>
    </interleave>
  </define>

  <define name="p-mac">
    <element name="mac"><interleave>
      <ref name="a-eth"/>
      <optional><attribute name="protocolid"><ref name="t-num-or-name"/></attribute></optional>
      <ref name="a-comment"/>
      <ref name="a-match"/>
    </interleave></element>
  </define>
  <define name="p-vlan">
    <element name="vlan"><interleave>
      <ref name="a-eth"/>
      <optional><attribute name="vlanid"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="encap-protocol"><ref name="t-num-or-name"/></attribute></optional>
      <ref name="a-comment"/>
      <ref name="a-match"/>
    </interleave></element>
  </define>
  <define name="p-stp">
    <element name="stp"><interleave>
      <ref name="a-eth-src"/>
      <optional><attribute name="type"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="flags"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="root-priority"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="root-priority-hi"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="root-address"><ref name="t-mac"/></attribute></optional>
      <optional><attribute name="root-address-mask"><ref name="t-mac"/></attribute></optional>
      <optional><attribute name="root-cost"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="root-cost-hi"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="sender-priority"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="sender-priority-hi"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="sender-address"><ref name="t-mac"/></attribute></optional>
      <optional><attribute name="sender-address-mask"><ref name="t-mac"/></attribute></optional>
      <optional><attribute name="port"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="port-hi"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="age"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="age-hi"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="max-age"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="max-age-hi"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="hello-time"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="hello-time-hi"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="forward-delay"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="forward-delay-hi"><ref name="t-num"/></attribute></optional>
      <ref name="a-comment"/>
      <ref name="a-match"/>
    </interleave></element>
  </define>
  <define name="a-arp">
    <interleave>
      <ref name="a-eth"/>
      <optional><attribute name="hwtype"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="protocoltype"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="opcode"><ref name="t-num-or-name"/></attribute></optional>
      <optional><attribute name="arpsrcmacaddr"><ref name="t-mac"/></attribute></optional>
      <optional><attribute name="arpdstmacaddr"><ref name="t-mac"/></attribute></optional>
      <optional><attribute name="arpsrcipaddr"><ref name="t-ipv4"/></attribute></optional>
      <optional><attribute name="arpsrcipmask"><ref name="t-ipv4-mask"/></attribute></optional>
      <optional><attribute name="arpdstipaddr"><ref name="t-ipv4"/></attribute></optional>
      <optional><attribute name="arpdstipmask"><ref name="t-ipv4-mask"/></attribute></optional>
      <optional><attribute name="gratuitous"><ref name="t-any"/></attribute></optional>
      <ref name="a-comment"/>
      <ref name="a-match"/>
    </interleave>
  </define>
  <define name="p-arp"><element name="arp"><interleave><ref name="a-arp"/></interleave></element></define>
  <define name="p-rarp"><element name="rarp"><interleave><ref name="a-arp"/></interleave></element></define>
  <define name="p-ip">
    <element name="ip"><interleave>
      <ref name="a-eth"/>
      <ref name="a-ipv4-addrs"/>
      <optional><attribute name="protocol"><ref name="t-num-or-name"/></attribute></optional>
      <ref name="a-ports"/>
      <ref name="a-dscp"/>
      <ref name="a-comment"/>
      <ref name="a-match"/>
    </interleave></element>
  </define>
  <define name="p-ipv6">
    <element name="ipv6"><interleave>
      <ref name="a-eth"/>
      <ref name="a-ipv6-addrs"/>
      <optional><attribute name="protocol"><ref name="t-num-or-name"/></attribute></optional>
      <ref name="a-ports"/>
      <optional><attribute name="type"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="typeend"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="code"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="codeend"><ref name="t-num"/></attribute></optional>
      <ref name="a-comment"/>
      <ref name="a-match"/>
    </interleave></element>
  </define>
  <define name="p-tcp">
    <element name="tcp"><interleave>
      <ref name="a-ip4-layer"/><ref name="a-ports"/>
      <optional><attribute name="option"><ref name="t-num"/></attribute></optional>
      <optional><attribute name="flags"><ref name="t-tcp-flags"/></attribute></optional>
    </interleave></element>
  </define>
  <define name="p-udp"><element name="udp"><interleave><ref name="a-ip4-layer"/><ref name="a-ports"/></interleave></element></define>
  <define name="p-sctp"><element name="sctp"><interleave><ref name="a-ip4-layer"/><ref name="a-ports"/></interleave></element></define>
  <define name="p-udplite"><element name="udplite"><interleave><ref name="a-ip4-layer"/></interleave></element></define>
  <define name="p-esp"><element name="esp"><interleave><ref name="a-ip4-layer"/></interleave></element></define>
  <define name="p-ah"><element name="ah"><interleave><ref name="a-ip4-layer"/></interleave></element></define>
  <define name="p-igmp"><element name="igmp"><interleave><ref name="a-ip4-layer"/></interleave></element></define>
  <define name="p-all"><element name="all"><interleave><ref name="a-ip4-layer"/></interleave></element></define>
  <define name="p-icmp">
    <element name="icmp"><interleave><ref name="a-ip4-layer"/><ref name="a-icmp-type-code"/></interleave></element>
  </define>
  <define name="p-tcp-ipv6">
    <element name="tcp-ipv6"><interleave>
      <ref name="a-ip6-layer"/><ref name="a-ports"/>
      <optional><attribute name="option"><ref name="t-num"/></attribute></optional>
    </interleave></element>
  </define>
  <define name="p-udp-ipv6"><element name="udp-ipv6"><interleave><ref name="a-ip6-layer"/><ref name="a-ports"/></interleave></element></define>
  <define name="p-sctp-ipv6"><element name="sctp-ipv6"><interleave><ref name="a-ip6-layer"/><ref name="a-ports"/></interleave></element></define>
  <define name="p-udplite-ipv6"><element name="udplite-ipv6"><interleave><ref name="a-ip6-layer"/></interleave></element></define>
  <define name="p-esp-ipv6"><element name="esp-ipv6"><interleave><ref name="a-ip6-layer"/></interleave></element></define>
  <define name="p-ah-ipv6"><element name="ah-ipv6"><interleave><ref name="a-ip6-layer"/></interleave></element></define>
  <define name="p-all-ipv6"><element name="all-ipv6"><interleave><ref name="a-ip6-layer"/></interleave></element></define>
  <define name="p-icmpv6">
    <element name="icmpv6"><interleave><ref name="a-ip6-layer"/><ref name="a-icmp-type-code"/></interleave></element>
  </define>
  <define name="rule-content">
    <choice>
      <empty/>
      <oneOrMore><ref name="p-mac"/></oneOrMore>
      <oneOrMore><ref name="p-vlan"/></oneOrMore>
      <oneOrMore><ref name="p-stp"/></oneOrMore>
      <oneOrMore><ref name="p-arp"/></oneOrMore>
      <oneOrMore><ref name="p-rarp"/></oneOrMore>
      <oneOrMore><ref name="p-ip"/></oneOrMore>
      <oneOrMore><ref name="p-ipv6"/></oneOrMore>
      <oneOrMore><ref name="p-tcp"/></oneOrMore>
      <oneOrMore><ref name="p-udp"/></oneOrMore>
      <oneOrMore><ref name="p-udplite"/></oneOrMore>
      <oneOrMore><ref name="p-sctp"/></oneOrMore>
      <oneOrMore><ref name="p-icmp"/></oneOrMore>
      <oneOrMore><ref name="p-igmp"/></oneOrMore>
      <oneOrMore><ref name="p-esp"/></oneOrMore>
      <oneOrMore><ref name="p-ah"/></oneOrMore>
      <oneOrMore><ref name="p-all"/></oneOrMore>
      <oneOrMore><ref name="p-tcp-ipv6"/></oneOrMore>
      <oneOrMore><ref name="p-udp-ipv6"/></oneOrMore>
      <oneOrMore><ref name="p-udplite-ipv6"/></oneOrMore>
      <oneOrMore><ref name="p-sctp-ipv6"/></oneOrMore>
      <oneOrMore><ref name="p-esp-ipv6"/></oneOrMore>
      <oneOrMore><ref name="p-ah-ipv6"/></oneOrMore>
      <oneOrMore><ref name="p-all-ipv6"/></oneOrMore>
      <oneOrMore><ref name="p-icmpv6"/></oneOrMore>
    </choice>
  </define>

  <define name="filter">
    <element name="filter">
      <attribute name="name"><data type="string"><param name="minLength">1</param></data></attribute>
      <optional>
        <attribute name="chain">
          <choice>
            <value type="string">root</value>
            <!-- libvirt: at most 12 characters from [A-Za-z0-9_.:-], starting with a layer-2 prefix -->
            <data type="string">
              <param name="pattern">(mac|stp|arp)[A-Za-z0-9_.:\-]{0,9}|(vlan|rarp|ipv4|ipv6)[A-Za-z0-9_.:\-]{0,8}</param>
            </data>
          </choice>
        </attribute>
      </optional>
      <optional><attribute name="priority"><ref name="t-int"/></attribute></optional>
      <interleave>
        <optional><element name="uuid"><ref name="t-uuid"/></element></optional>
        <zeroOrMore>
          <choice><ref name="rule"/><ref name="filterref"/></choice>
        </zeroOrMore>
      </interleave>
    </element>
  </define>
  <define name="rule">
    <element name="rule">
      <attribute name="action">
        <choice>
          <value>drop</value><value>accept</value><value>reject</value><value>return</value><value>continue</value>
        </choice>
      </attribute>
      <attribute name="direction">
        <choice><value>in</value><value>out</value><value>inout</value></choice>
      </attribute>
      <optional><attribute name="priority"><ref name="t-int"/></attribute></optional>
      <optional><attribute name="statematch"><ref name="t-any"/></attribute></optional>
      <ref name="rule-content"/>
    </element>
  </define>
  <define name="filterref">
    <element name="filterref">
      <attribute name="filter"><data type="string"><param name="minLength">1</param></data></attribute>
      <zeroOrMore><ref name="parameter"/></zeroOrMore>
    </element>
  </define>
  <!-- libvirt silently skips a parameter whose name or value is not valid, so
       only presence is checked here -->
  <define name="parameter">
    <element name="parameter">
      <attribute name="name"><ref name="t-any"/></attribute>
      <attribute name="value"><ref name="t-any"/></attribute>
    </element>
  </define>

  <define name="filterbinding">
    <element name="filterbinding">
      <interleave>
        <element name="owner">
          <interleave>
            <element name="name"><data type="string"><param name="minLength">1</param></data></element>
            <element name="uuid"><ref name="t-uuid"/></element>
          </interleave>
        </element>
        <element name="portdev">
          <attribute name="name"><data type="string"><param name="minLength">1</param></data></attribute>
        </element>
        <optional>
          <element name="linkdev">
            <attribute name="name"><data type="string"><param name="minLength">1</param></data></attribute>
          </element>
        </optional>
        <element name="mac">
          <attribute name="address"><ref name="t-mac"/></attribute>
        </element>
        <ref name="filterref"/>
      </interleave>
    </element>
  </define>
'''
