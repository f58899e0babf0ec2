# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RelaxNG schemas (written for this project) for nwfilter ``<filter>`` and
``<filterbinding>`` documents, and validators with precise error messages.

The schemas check *structure* strictly (unknown elements and attributes are
errors) and *values* loosely: every lexical pattern here accepts a superset of
what libvirt's parser accepts (libvirt tolerates leading blanks and a sign on
numbers, tries numbers in base 10 then base 16, treats any non-true boolean as
false, ...). The parser (nwfilter_parse) does the exact value checks and the
normalisation. The parser runs these validators only in strict mode; in
libvirt-compatible mode unknown attributes/elements are ignored like libvirt does.

The schemas live in Python strings because AnsiballZ ships only Python files
of module_utils to the managed host.
"""

from __future__ import annotations

try:
    from lxml import etree
    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as exc:  # reported by modules with missing_required_lib('lxml')
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = exc

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError

RNG_NS = 'http://relaxng.org/ns/structure/1.0'

# --------------------------------------------------------------------------
# Shared lexical types.  Patterns are XML Schema regular expressions (implicitly
# anchored at both ends).  They are deliberately loose; see the module docstring.
_TYPES = r'''
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
'''

# --------------------------------------------------------------------------
# Attribute groups of the protocol elements.  Attributes are wrapped in
# <interleave>: libxml2 validates a long sequence of optional attributes in
# exponential time (seconds per rule), an interleave of them in microseconds.
_ATTRIBUTE_GROUPS = r'''
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
'''

# --------------------------------------------------------------------------
# Protocol elements.
_PROTOCOLS = r'''
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
'''

# The protocol element names, in the order libvirt documents them.
PROTOCOL_ELEMENTS = (
    'mac', 'vlan', 'stp', 'arp', 'rarp', 'ip', 'ipv6',
    'tcp', 'udp', 'udplite', 'sctp', 'icmp', 'igmp', 'esp', 'ah', 'all',
    'tcp-ipv6', 'udp-ipv6', 'udplite-ipv6', 'sctp-ipv6', 'esp-ipv6', 'ah-ipv6', 'all-ipv6', 'icmpv6',
)

# A rule holds no protocol element (matches every frame) or one or more elements
# of the SAME protocol: libvirt merges repeated elements into one rule, and its
# canonical form prints the negated attributes in a second element.
_RULE_CONTENT = ('  <define name="rule-content">\n    <choice>\n      <empty/>\n'
                 + ''.join('      <oneOrMore><ref name="p-%s"/></oneOrMore>\n' % name for name in PROTOCOL_ELEMENTS)
                 + '    </choice>\n  </define>\n')

_FILTER_PARTS = r'''
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
'''

_BINDING_PARTS = r'''
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


def _grammar(start):
    return ('<grammar xmlns="%s" datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">\n'
            '  <start><ref name="%s"/></start>\n' % (RNG_NS, start)
            + _TYPES + _ATTRIBUTE_GROUPS + _PROTOCOLS + _RULE_CONTENT + _FILTER_PARTS + _BINDING_PARTS
            + '</grammar>\n')


# The complete schemas, as text (e.g. for `jing` or for documentation).
FILTER_SCHEMA_TEXT = _grammar('filter')
BINDING_SCHEMA_TEXT = _grammar('filterbinding')

_COMPILED = {}


def _schema(start):
    """Compile (once per process) the grammar whose start pattern is ``start``."""
    if start not in _COMPILED:
        _COMPILED[start] = etree.RelaxNG(etree.fromstring(_grammar(start).encode('utf-8')))
    return _COMPILED[start]


# --------------------------------------------------------------------------
# Introspection of our own grammar: which attributes each element may carry and
# which are required.  Used to explain a validation failure precisely.

def _element_catalog(start):
    """Map element name -> (allowed attribute names, required attribute names)
    for the elements reachable from the grammar's ``start`` define."""
    root = etree.fromstring(_grammar(start).encode('utf-8'))
    defines = dict((d.get('name'), d) for d in root.iter('{%s}define' % RNG_NS))
    catalog = {}
    pending = [defines[start]]

    def collect(node, allowed, required, optional_depth):
        for child in node:
            if not isinstance(child.tag, str):
                continue
            tag = etree.QName(child).localname
            if tag == 'attribute':
                allowed.add(child.get('name'))
                if optional_depth == 0:
                    required.add(child.get('name'))
            elif tag == 'element':
                pending.append(child)  # catalogued on its own
            elif tag == 'ref':
                collect(defines[child.get('name')], allowed, required, optional_depth)
            elif tag in ('optional', 'zeroOrMore', 'choice'):
                collect(child, allowed, required, optional_depth + 1)
            elif tag in ('group', 'interleave', 'oneOrMore', 'define'):
                collect(child, allowed, required, optional_depth)

    done = set()
    while pending:
        node = pending.pop()
        path = node.getroottree().getpath(node)
        if path in done:
            continue
        done.add(path)
        if etree.QName(node).localname == 'define':
            collect(node, set(), set(), 0)
            continue
        allowed, required = set(), set()
        collect(node, allowed, required, 0)
        catalog[node.get('name')] = (frozenset(allowed), frozenset(required))
    return catalog


_CATALOGS = {}


def _catalog(kind):
    start = 'filter' if kind == 'filter' else 'filterbinding'
    if start not in _CATALOGS:
        _CATALOGS[start] = _element_catalog(start)
    return _CATALOGS[start]


def element_attributes(element_name, kind='filter'):
    """The attribute names the strict schema allows on ``element_name`` inside a
    ``kind`` ('filter' or 'binding') document (empty if the element is unknown)."""
    return _catalog(kind).get(element_name, (frozenset(), frozenset()))[0]


def _required_attributes(element_name, kind):
    return _catalog(kind).get(element_name, (frozenset(), frozenset()))[1]


# Minimal valid values for required attributes, used when probing one attribute alone.
_FILLERS = {'name': 'x', 'action': 'accept', 'direction': 'in', 'filter': 'x', 'value': 'x',
            'address': '00:00:00:00:00:00'}


_BINDING_TEMPLATE = ("<filterbinding><owner><name>x</name><uuid>00000000-0000-0000-0000-000000000000</uuid>"
                     "</owner><portdev name='x'/><linkdev name='x'/><mac address='00:00:00:00:00:00'/>"
                     "<filterref filter='x'><parameter name='x' value='x'/></filterref></filterbinding>")


def _probe_document(kind, element, attributes):
    """A minimal valid document in which one element is replaced by a copy of
    ``element`` carrying only ``attributes`` (and its text)."""
    tag = element.tag
    if kind != 'filter':
        document = etree.fromstring(_BINDING_TEMPLATE)
        if tag == 'filterbinding':
            return document
        parent_tag = element.getparent().tag if element.getparent() is not None else None
        for node in document.iter(tag):
            if parent_tag is None or node.getparent().tag == parent_tag:
                node.attrib.clear()
                node.attrib.update(attributes)
                if tag in ('uuid', 'name'):
                    node.text = element.text
                return document
        return document
    if tag == 'filter':
        return etree.Element('filter', attributes)
    node = etree.Element(tag, attributes)
    if tag == 'uuid':
        node.text = element.text
    if tag in PROTOCOL_ELEMENTS:
        parent = etree.Element('rule', action='accept', direction='in')
        parent.append(node)
        node = parent
    elif tag == 'parameter':
        parent = etree.Element('filterref', filter='x')
        parent.append(node)
        node = parent
    document = etree.Element('filter', name='x')
    document.append(node)
    return document


def _context(element):
    """(filter name, 'rule #N (priority P, line L)' or filterref description) of an element."""
    root = element.getroottree().getroot()
    filter_name = root.get('name') if root.tag == 'filter' else None
    node = element
    while node is not None and node.tag not in ('rule', 'filterref'):
        node = node.getparent()
    if node is None or node.getparent() is None:
        return filter_name, None
    siblings = [n for n in node.getparent() if isinstance(n.tag, str) and n.tag == node.tag]
    position = siblings.index(node) + 1
    if node.tag == 'rule':
        priority = node.get('priority', '500')
        return filter_name, 'rule #%d (priority %s, line %s)' % (position, priority, node.sourceline)
    return filter_name, "filterref #%d to '%s' (line %s)" % (position, node.get('filter', ''), node.sourceline)


# Children an element must have (the grammar's required elements), for messages.
_REQUIRED_CHILDREN = {
    'filterbinding': ('owner', 'portdev', 'mac', 'filterref'),
    'owner': ('name', 'uuid'),
}


def _allowed_children(element):
    tag = element.tag
    if tag == 'filter':
        return ('uuid', 'rule', 'filterref')
    if tag == 'rule':
        return PROTOCOL_ELEMENTS
    if tag == 'filterref':
        return ('parameter',)
    if tag == 'filterbinding':
        return ('owner', 'portdev', 'linkdev', 'mac', 'filterref')
    if tag == 'owner':
        return ('name', 'uuid')
    return ()


def _diagnose(tree_root, source, kind):
    """Find the first element/attribute our grammar rejects and explain it.

    Returns the keyword arguments of a FilterError, or None when no single
    culprit could be isolated.
    """
    expected_root = 'filter' if kind == 'filter' else 'filterbinding'
    if tree_root.tag != expected_root:
        return dict(message='root element is <%s>, expected <%s>' % (tree_root.tag, expected_root))
    schema = _schema(expected_root)
    for element in tree_root.iter():
        if not isinstance(element.tag, str):
            continue  # comments, processing instructions
        filter_name, rule = _context(element)
        fields = dict(filter_name=filter_name, rule=rule)
        at = '<%s> (line %s)' % (element.tag, element.sourceline)
        parent = element.getparent()
        if parent is not None and element.tag not in _allowed_children(parent):
            return dict(fields, message='element %s is not allowed inside <%s> (allowed: %s)' % (
                at, parent.tag, ', '.join(_allowed_children(parent)) or 'nothing'))
        present = [c.tag for c in element if isinstance(c.tag, str)]
        for child in _REQUIRED_CHILDREN.get(element.tag, ()):
            if present.count(child) != 1:
                return dict(fields, message='%s needs exactly one <%s> element' % (at, child))
        if element.tag == 'rule' and len(set(present)) > 1:
            return dict(fields, message='a rule holds one protocol; found <%s>. Elements of one protocol may '
                                        'repeat, other protocols need a rule of their own' % '>, <'.join(present))
        if element.tag == 'filter' and present.count('uuid') > 1:
            return dict(fields, message='more than one <uuid>')
        allowed = element_attributes(element.tag, kind)
        for attribute in element.attrib:
            if attribute not in allowed:
                return dict(fields, attribute=attribute, value=element.get(attribute),
                            message='unknown attribute of %s; allowed: %s' % (at, ', '.join(sorted(allowed)) or 'none'))
        for attribute in sorted(_required_attributes(element.tag, kind)):
            if element.get(attribute) is None:
                return dict(fields, attribute=attribute, message='required attribute missing on %s' % at)
        for attribute, value in element.attrib.items():
            attributes = dict((name, _FILLERS[name]) for name in _required_attributes(element.tag, kind))
            attributes[attribute] = value
            if not schema.validate(_probe_document(kind, element, attributes)):
                return dict(fields, attribute=attribute, value=value, message='invalid value on %s' % at)
        if element.tag in ('uuid', 'name'):
            if not schema.validate(_probe_document(kind, element, {})):
                return dict(fields, value=element.text,
                            message='invalid %s %s' % ('UUID' if element.tag == 'uuid' else 'name', at))
        text = (element.text or '').strip()
        if text and element.tag not in ('uuid', 'name'):
            return dict(fields, value=text, message='unexpected text in %s' % at)
    return None


def _validate(tree, source, kind):
    if not HAS_LXML:
        raise FilterError('the lxml Python library is required to validate nwfilter XML', source=source)
    root = tree.getroot() if hasattr(tree, 'getroot') else tree
    schema = _schema('filter' if kind == 'filter' else 'filterbinding')
    if schema.validate(root):
        return
    detail = _diagnose(root, source, kind)
    if detail is None:
        errors = schema.error_log.filter_from_errors()
        if errors:
            detail = dict(message='line %s: %s' % (errors[0].line, errors[0].message))
        else:
            detail = dict(message='document does not match the %s schema' % kind)
    message = detail.pop('message')
    raise FilterError('schema violation: ' + message, source=source, **detail)


def validate_filter_tree(tree, source='<filter>'):
    """Validate a parsed ``<filter>`` document (ElementTree or root element) against
    the strict schema; on failure raise FilterError naming the source, filter,
    rule (position, priority, line), element, attribute and value."""
    _validate(tree, source, 'filter')


def validate_binding_tree(tree, source='<filterbinding>'):
    """Validate a parsed ``<filterbinding>`` document against the strict schema."""
    _validate(tree, source, 'binding')


def ignored_items(root):
    """What libvirt (and our libvirt-compatible mode) silently ignores in a
    ``<filter>`` element: unknown elements, unknown attributes, and elements of a
    second protocol inside a rule.  Returns human-readable descriptions, in
    document order, for warnings."""
    if not HAS_LXML:
        return []
    found = []

    def visit(element):
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag not in _allowed_children(element):
                found.append('element <%s> (line %s) inside <%s>' % (child.tag, child.sourceline, element.tag))
                continue
            if element.tag == 'rule':
                first = next(c.tag for c in element if isinstance(c.tag, str) and c.tag in PROTOCOL_ELEMENTS)
                if child.tag != first:
                    found.append('element <%s> (line %s) in a rule whose protocol is <%s>'
                                 % (child.tag, child.sourceline, first))
                    continue
            check_attributes(child)
            visit(child)

    def check_attributes(element):
        allowed = element_attributes(element.tag, 'filter')
        for attribute in element.attrib:
            if attribute not in allowed:
                found.append("attribute %s='%s' of <%s> (line %s)"
                             % (attribute, element.get(attribute), element.tag, element.sourceline))

    if root.tag == 'filter':
        check_attributes(root)
        visit(root)
    return found
