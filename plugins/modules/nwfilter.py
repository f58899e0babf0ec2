#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nwfilter
short_description: Define, remove and list libvirt-style network filters, without libvirtd
version_added: 0.1.0
description:
  - Manages the network filters (libvirt C(<filter>) documents) a hypervisor host knows, like
    C(virsh nwfilter-define), C(virsh nwfilter-undefine), C(virsh nwfilter-list) and
    C(virsh nwfilter-dumpxml) do for libvirt.
  - The host always knows the 24 standard filters libvirt ships (C(clean-traffic),
    C(no-ip-spoofing), C(allow-dhcp), ...), in definitions written for this collection. Filters
    defined with this module are kept as canonical XML in O(state_dir) and may replace a standard
    filter of the same name, as with libvirt.
  - A filter may reference (C(<filterref>)) filters that are not defined yet, so filters can be
    defined in any order; a definition that would close a reference loop is refused and nothing is
    written.
  - A filter is given as XML (O(xml) or O(src)) or as YAML (O(rules) and O(filterrefs), with O(name),
    O(chain), O(priority) and O(uuid)). Both forms define the same stored filter; O(state=gathered)
    returns every filter in both forms.
  - The document is validated against the collection's RelaxNG schema and every value is checked
    as libvirt checks it. Errors name the filter, the rule (position, priority and line), the
    attribute and the value.
  - The result is C(changed) only when the canonical form of the filter changes; attribute order,
    the spelling of MAC and IP addresses and masks, XML comments and white space do not matter
    (numbers written in hexadecimal stay hexadecimal, as with libvirt).
  - When a filter changes, the guest NIC bindings stored in O(state_dir) whose filter tree contains
    it are rebuilt (their rules are re-applied) and listed in RV(rebuilt).
author:
  - hypervisor.netfilter contributors (@hypervisor-netfilter)
options:
  name:
    description:
      - Name of the filter.
      - Required for O(state=absent) and with O(rules) or O(filterrefs). With O(xml) or O(src) it is
        optional and must match the document's C(name) attribute when given. With O(state=gathered) it limits the result to
        that filter.
      - At most 200 letters, digits and the characters C(_), C(.), C(:), C(+), C(-) and C(@), not
        starting with C(.) or C(-); the name becomes a file name in O(state_dir).
    type: str
  xml:
    description:
      - The whole C(<filter>) document. Mutually exclusive with O(src).
      - Without C(<uuid>) the filter keeps the UUID it already has (a redefinition) or gets a new
        random one. A C(<uuid>) different from the one of an already defined filter of that name is
        refused, as libvirt does; remove the filter first to change it.
    type: str
  src:
    description:
      - Path of a file on the managed host that holds the C(<filter>) document. Mutually exclusive
        with O(xml).
    type: path
  chain:
    description:
      - YAML form - the chain of the filter, as the C(chain) attribute of C(<filter>) (C(root), or a name
        starting with C(mac), C(vlan), C(stp), C(arp), C(rarp), C(ipv4) or C(ipv6)). Without it the
        filter is a root filter.
      - Only with O(rules) or O(filterrefs).
    type: str
  priority:
    description:
      - YAML form - the chain priority (-1000 to 1000), as the C(priority) attribute of C(<filter>); needs
        O(chain). Defaults to the chain's standard priority.
    type: int
  uuid:
    description:
      - YAML form - the UUID of the filter, as C(<uuid>). Without it the filter keeps the UUID it has or
        gets a new random one.
    type: str
  filterrefs:
    description:
      - YAML form - filters this filter references (C(<filterref>)), placed before the rules. A reference
        among the rules goes into O(rules) as an entry with O(rules[].filter).
    type: list
    elements: dict
    suboptions:
      filter:
        description:
          - Name of the referenced filter.
        type: str
        required: true
      parameters:
        description:
          - Parameters passed to the referenced filter (defaults for its variables); a list gives a
            variable several values.
        type: dict
        default: {}
  rules:
    description:
      - YAML form - the rules of the filter, in order (C(<rule>) elements), each with at most one
        protocol key (the element name with C(_) for C(-), for example C(tcp_ipv6) for C(<tcp-ipv6>));
        or a filter reference at that place (O(rules[].filter), O(rules[].parameters)).
      - Values are strings, numbers or booleans; variables are written C($NAME), C($NAME[2]) or
        C($NAME[@1]). Attribute names are the XML ones (C(connlimit-above)); C(_) may replace C(-).
      - Errors name the entry (C(rules[3] (priority 100))), the key (C(tcp.dstportstart)) and the value.
    type: list
    elements: dict
    suboptions:
      action:
        description:
          - What a matching packet gets. Required in a rule.
        type: str
        choices: [drop, accept, reject, return, continue]
      direction:
        description:
          - V(in) (to the guest), V(out) (from the guest) or V(inout). Required in a rule.
        type: str
        choices: [in, out, inout]
      priority:
        description:
          - Rule priority, -1000 to 1000; rules are ordered by it. Default 500.
        type: int
      statematch:
        description:
          - V(false) turns off the connection tracking the rule would otherwise get.
        type: bool
      filter:
        description:
          - Makes the entry a filter reference (C(<filterref>)) to this filter, at this place among the rules.
        type: str
      parameters:
        description:
          - Parameters of the filter reference of O(rules[].filter).
        type: dict
      ah:
        description:
          - The rule matches C(<ah>) (iptables). A dict of the element's attributes (a list of dicts
            for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      ah_ipv6:
        description:
          - The rule matches C(<ah-ipv6>) (ip6tables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      all:
        description:
          - The rule matches C(<all>) (iptables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      all_ipv6:
        description:
          - The rule matches C(<all-ipv6>) (ip6tables). A dict of the element's attributes (a list
            of dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      arp:
        description:
          - The rule matches C(<arp>) (ebtables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcmacmask), C(dstmacaddr), C(dstmacmask), C(hwtype),
            C(protocoltype), C(opcode), C(arpsrcmacaddr), C(arpdstmacaddr), C(arpsrcipaddr),
            C(arpsrcipmask), C(arpdstipaddr), C(arpdstipmask), C(gratuitous), C(comment).
        type: raw
      esp:
        description:
          - The rule matches C(<esp>) (iptables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      esp_ipv6:
        description:
          - The rule matches C(<esp-ipv6>) (ip6tables). A dict of the element's attributes (a list
            of dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      icmp:
        description:
          - The rule matches C(<icmp>) (iptables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(type), C(code), C(comment).
        type: raw
      icmpv6:
        description:
          - The rule matches C(<icmpv6>) (ip6tables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(type), C(code), C(comment).
        type: raw
      igmp:
        description:
          - The rule matches C(<igmp>) (iptables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      ip:
        description:
          - The rule matches C(<ip>) (ebtables). A dict of the element's attributes (a list of dicts
            for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcmacmask), C(dstmacaddr), C(dstmacmask), C(srcipaddr),
            C(srcipmask), C(dstipaddr), C(dstipmask), C(protocol), C(srcportstart), C(srcportend),
            C(dstportstart), C(dstportend), C(dscp), C(comment).
        type: raw
      ipv6:
        description:
          - The rule matches C(<ipv6>) (ebtables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcmacmask), C(dstmacaddr), C(dstmacmask), C(srcipaddr),
            C(srcipmask), C(dstipaddr), C(dstipmask), C(protocol), C(srcportstart), C(srcportend),
            C(dstportstart), C(dstportend), C(type), C(typeend), C(code), C(codeend), C(comment).
        type: raw
      mac:
        description:
          - The rule matches C(<mac>) (ebtables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcmacmask), C(dstmacaddr), C(dstmacmask), C(protocolid),
            C(comment).
        type: raw
      rarp:
        description:
          - The rule matches C(<rarp>) (ebtables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcmacmask), C(dstmacaddr), C(dstmacmask), C(hwtype),
            C(protocoltype), C(opcode), C(arpsrcmacaddr), C(arpdstmacaddr), C(arpsrcipaddr),
            C(arpsrcipmask), C(arpdstipaddr), C(arpdstipmask), C(gratuitous), C(comment).
        type: raw
      sctp:
        description:
          - The rule matches C(<sctp>) (iptables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(srcportstart), C(srcportend), C(dstportstart),
            C(dstportend), C(comment).
        type: raw
      sctp_ipv6:
        description:
          - The rule matches C(<sctp-ipv6>) (ip6tables). A dict of the element's attributes (a list
            of dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(srcportstart), C(srcportend), C(dstportstart),
            C(dstportend), C(comment).
        type: raw
      stp:
        description:
          - The rule matches C(<stp>) (ebtables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcmacmask), C(type), C(flags), C(root-priority), C(root-
            priority-hi), C(root-address), C(root-address-mask), C(root-cost), C(root-cost-hi),
            C(sender-priority), C(sender-priority-hi), C(sender-address), C(sender-address-mask),
            C(port), C(port-hi), C(age), C(age-hi), C(max-age), C(max-age-hi), C(hello-time),
            C(hello-time-hi), C(forward-delay), C(forward-delay-hi), C(comment).
        type: raw
      tcp:
        description:
          - The rule matches C(<tcp>) (iptables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(srcportstart), C(srcportend), C(dstportstart),
            C(dstportend), C(option), C(flags), C(comment).
        type: raw
      tcp_ipv6:
        description:
          - The rule matches C(<tcp-ipv6>) (ip6tables). A dict of the element's attributes (a list
            of dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(srcportstart), C(srcportend), C(dstportstart),
            C(dstportend), C(option), C(comment).
        type: raw
      udp:
        description:
          - The rule matches C(<udp>) (iptables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(srcportstart), C(srcportend), C(dstportstart),
            C(dstportend), C(comment).
        type: raw
      udp_ipv6:
        description:
          - The rule matches C(<udp-ipv6>) (ip6tables). A dict of the element's attributes (a list
            of dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(srcportstart), C(srcportend), C(dstportstart),
            C(dstportend), C(comment).
        type: raw
      udplite:
        description:
          - The rule matches C(<udplite>) (iptables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      udplite_ipv6:
        description:
          - The rule matches C(<udplite-ipv6>) (ip6tables). A dict of the element's attributes (a
            list of dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcipaddr), C(srcipmask), C(dstipaddr), C(dstipmask),
            C(srcipfrom), C(srcipto), C(dstipfrom), C(dstipto), C(dscp), C(connlimit-above),
            C(state), C(ipset), C(ipsetflags), C(comment).
        type: raw
      vlan:
        description:
          - The rule matches C(<vlan>) (ebtables). A dict of the element's attributes (a list of
            dicts for several elements), plus C(match) (V(false) for C(match='no')).
          - Its attributes are C(srcmacaddr), C(srcmacmask), C(dstmacaddr), C(dstmacmask), C(vlanid),
            C(encap-protocol), C(comment).
        type: raw
  state:
    description:
      - V(present) defines (or redefines) the filter given by O(xml), O(src) or O(rules)/O(filterrefs).
      - V(absent) removes the definition of O(name). It is refused, naming them, while other filters
        reference the filter or stored guest NIC bindings use it. Removing a redefined standard
        filter brings back the standard definition; a standard filter itself always stays.
      - V(rendered) changes nothing (not even O(state_dir)) and returns the filter given by O(xml) or O(src)
        as it would be stored, and the rules the stored guest NIC bindings that use it would get, in
        RV(rendered).
      - V(gathered) changes nothing and returns every filter in RV(filters), and in RV(objects) whether the
        rules of the stored bindings and networks are in force.
    type: str
    choices: [present, absent, rendered, gathered]
    default: present
  xtables_backend:
    aliases: [backend]
  strict:
    description:
      - V(true) rejects elements and attributes the nwfilter format does not know (for example the
        misspelt C(srcporttend)), and values libvirt reads only by ignoring part of them (a rule
        priority that is not an integer in -1000..1000, C(statematch='no'), text after a MAC
        address or a variable, a variable in C(state), an attribute given twice in one rule, a
        filter priority without a chain, a comment over 256 characters); the error names the
        attribute.
      - V(false) accepts and ignores them, exactly as libvirt does, and reports each ignored item as
        a warning. Illegal values of known attributes are errors in both modes.
      - In both modes a C(<filterref>) parameter whose name or value libvirt does not allow (value
        outside C([A-Za-z0-9_.:]), for example OpenStack nova's C(RASERVER) with a C(/128) prefix
        length) is dropped as libvirt drops it, with a warning; a binding whose rules need it is refused.
    type: bool
    default: true
extends_documentation_fragment:
  - hypervisor.netfilter.common
  - hypervisor.netfilter.common.xtables
  - hypervisor.netfilter.common.ebtables
notes:
  - When a rebuild of the bindings fails, the previous definition of the filter is restored and the
    task fails with the tool's message.
  - Every run ends by reconciling the whole host state stored in O(state_dir) (virtual networks, then all guest
    NIC bindings with the filters as they are after the run), in the same lock as the definition; this is what
    rebuilds the bindings that use a changed filter, and RV(objects) says what was in sync and what was repaired.
  - Check mode and diff mode are fully supported; in check mode nothing is written and no lock file
    is created.
  - Requires the C(lxml) Python library on the managed host.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
  diff_mode:
    description: Returns the canonical XML of the filter before and after the change; when the rules of bindings
      change too (or are repaired), a list with the filter first, then the rules per family.
    support: full
seealso:
  - name: libvirt network filter XML format
    description: The C(<filter>) document accepted by O(xml) and O(src).
    link: https://libvirt.org/formatnwfilter.html
requirements:
  - lxml
'''

EXAMPLES = r'''
- name: A web guest's filter written as YAML
  hypervisor.netfilter.nwfilter:
    name: web-guest
    chain: root
    filterrefs:
      - filter: clean-traffic
    rules:
      - {action: accept, direction: in, priority: 100, tcp: {dstportstart: 443}}
      - {action: accept, direction: in, priority: 110, tcp: {dstportstart: 22, srcipaddr: 192.0.2.0, srcipmask: 24}}
      - {action: accept, direction: out, priority: 120, udp: {dstportstart: 53, dstipaddr: $DNS}}
      - {action: drop, direction: in, priority: 1000, all: {}}

- name: Negation, state matching, a reference among the rules, an Ethernet rule
  hypervisor.netfilter.nwfilter:
    name: db-guest
    chain: ipv4-db
    priority: -650
    rules:
      - action: accept
        direction: in
        priority: 100
        tcp: {dstportstart: 5432, state: NEW, comment: postgres from the app subnet}
      - action: drop
        direction: in
        priority: 110
        tcp: {match: false, srcipaddr: 10.0.1.0, srcipmask: 24}
      - filter: allow-dhcp
        parameters: {DHCPSERVER: [10.0.0.1, 10.0.0.2]}
      - {action: accept, direction: out, priority: 200, statematch: false, ip: {protocol: udp, dstportstart: 123}}

- name: Turn every filter into YAML (and XML)
  hypervisor.netfilter.nwfilter:
    state: gathered
  register: gathered

- name: Define a copy of a gathered filter from its YAML form
  vars:
    web: "{{ (gathered.filters | selectattr('name', 'equalto', 'web-guest') | first).yaml }}"
  hypervisor.netfilter.nwfilter:
    name: web-guest-copy
    chain: "{{ web.chain }}"
    priority: "{{ web.priority | default(omit) }}"
    filterrefs: "{{ web.filterrefs | default(omit) }}"
    rules: "{{ web.rules | default([]) }}"

- name: Allow incoming SSH and ping, drop other IPv4 traffic to the guest
  hypervisor.netfilter.nwfilter:
    xml: |
      <filter name='ssh-only' chain='root'>
        <filterref filter='clean-traffic'/>
        <rule action='accept' direction='in' priority='100'>
          <tcp dstportstart='22'/>
        </rule>
        <rule action='accept' direction='in' priority='200'>
          <icmp/>
        </rule>
        <rule action='drop' direction='in' priority='1000'>
          <all/>
        </rule>
      </filter>

- name: Define a filter from a file on the host
  hypervisor.netfilter.nwfilter:
    src: /etc/hypervisor-netfilter/src/web.xml

- name: Accept a filter written for libvirt with attributes it ignores
  hypervisor.netfilter.nwfilter:
    src: /root/legacy-filter.xml
    strict: false

- name: Remove a filter (refused while a binding or another filter uses it)
  hypervisor.netfilter.nwfilter:
    name: ssh-only
    state: absent

- name: List every filter with its canonical XML
  hypervisor.netfilter.nwfilter:
    state: gathered
  register: nwfilters

- name: Show the names
  ansible.builtin.debug:
    msg: "{{ nwfilters.filters | map(attribute='name') | list }}"

- name: Show the canonical form and the rules the NICs using it would get, without touching the host
  hypervisor.netfilter.nwfilter:
    state: rendered
    src: /etc/hypervisor-netfilter/src/web.xml
  register: preview
'''

RETURN = r'''
filter:
  description: The filter after the run (V(present)), as it would be stored (V(rendered)), or the definition that
    was removed (V(absent)).
  returned: state is present or rendered, or absent and the filter was defined
  type: dict
  contains:
    name:
      description: Name of the filter.
      type: str
      sample: ssh-only
    uuid:
      description: UUID of the filter.
      type: str
      sample: 0dcc8d15-2afc-4d3a-9e81-dd82a98a818a
    chain:
      description: The chain the filter's rules go to (C(root) when the document has none).
      type: str
      sample: root
    priority:
      description: Effective chain priority (0 for root filters).
      type: int
      sample: 0
    builtin:
      description: Whether a standard filter of this name exists.
      type: bool
      sample: false
    defined:
      description: Whether a definition of this name is stored in O(state_dir) after the run.
      type: bool
      sample: true
    xml:
      description: Canonical XML of the filter, as C(virsh nwfilter-dumpxml) prints it.
      type: str
      sample: "<filter name='ssh-only' chain='root'>\n  <uuid>...</uuid>\n</filter>\n"
    yaml:
      description:
        - The same filter in the YAML form - a dict of this module's options (C(name), C(chain), C(priority),
          C(uuid), C(filterrefs), C(rules)) that defines the same canonical filter when passed back.
      type: dict
      sample: {"name": "ssh-only", "chain": "root", "uuid": "0dcc8d15-2afc-4d3a-9e81-dd82a98a818a",
               "filterrefs": [{"filter": "clean-traffic"}],
               "rules": [{"action": "accept", "direction": "in", "priority": 100, "tcp": {"dstportstart": 22}}]}
filters:
  description: Every filter the host knows (standard and defined), sorted by name; each entry has
    the same keys as RV(filter).
  returned: state is gathered
  type: list
  elements: dict
  sample: [{"name": "allow-arp", "uuid": "...", "chain": "arp", "priority": -500, "builtin": true,
            "defined": false, "xml": "<filter name='allow-arp' chain='arp' priority='-500'>..."}]
rebuilt:
  description: Interfaces whose stored binding uses the changed filter and whose rules were rebuilt
    (in check mode, would be rebuilt).
  returned: state is present or absent
  type: list
  elements: str
  sample: [vnet0, vnet3]
rendered:
  description: What O(state=rendered) would install; nothing is written or applied.
  returned: state is rendered
  type: dict
  contains:
    xml:
      description: Canonical XML of the filter as it would be stored.
      type: str
    interfaces:
      description: Stored guest NIC bindings whose filter tree contains the filter.
      type: list
      elements: str
      sample: [vnet0]
    ebtables:
      description: ebtables-restore text of the rules of those bindings ('' if none).
      type: str
    iptables:
      description: iptables-restore text of the rules of those bindings ('' if none).
      type: str
    ip6tables:
      description: ip6tables-restore text of the rules of those bindings ('' if none).
      type: str
    nftables:
      description:
        - On a host with the nftables NIC layout (stored C(firewall_backend)), the C(nft -f) script of those
          bindings' C(table bridge hnf_nic); the per-family texts then hold only the rules kept on xtables.
      type: str
      returned: when the host's NIC layout is nftables
objects:
  description:
    - Every object stored in O(state_dir) - virtual networks first, then guest NIC bindings - as the
      whole-host reconcile that ends every run found and left it. O(state=gathered) runs that reconcile
      in check mode; in check mode the objects are those stored before this run's own change.
  returned: state is present, absent or gathered
  type: list
  elements: dict
  contains:
    kind:
      description: V(network) or V(binding).
      type: str
      sample: binding
    name:
      description: Network name, or host-side interface of the binding.
      type: str
      sample: vnet0
    status:
      description:
        - V(in_sync) (nothing to do), V(repaired) (its rules, devices or settings were rewritten by this run),
          V(would_repair) (check mode, O(state=gathered)), V(skipped) (binding of an absent interface with
          skip_missing_interfaces) or V(failed) (see RV(objects[].error); the run fails).
      type: str
      sample: repaired
    missing:
      description: What differed, one line per chain, rule, hook, device or setting.
      type: list
      elements: str
      sample: ["missing chain ebtables nat I-vnet0-mac (2 rules)"]
    summary:
      description: One line about the object.
      type: str
      sample: "1 difference(s): missing chain ebtables nat I-vnet0-mac (2 rules)"
    error:
      description: Why the object could not be reconciled (null unless V(failed)).
      type: str
      sample: null
in_sync:
  description: Whether the rules of every stored binding and network are in force (O(state=gathered)).
  returned: state is gathered
  type: bool
  sample: true
ignored:
  description: Elements and attributes that were ignored because O(strict=false) (also reported as
    warnings).
  returned: state is present or rendered
  type: list
  elements: str
  sample: ["attribute srcporttend='24' of <tcp> (line 9)"]
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._modules import options, results
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import parse as nwfilter_parse
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import schema as nwfilter_schema
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import yaml_form
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import filters as filter_service
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import filters as store


def argument_spec():
    spec = dict(
        name=dict(type='str'),
        xml=dict(type='str'),
        src=dict(type='path'),
        state=dict(type='str', choices=['present', 'absent', 'rendered', 'gathered'], default='present'),
        strict=dict(type='bool', default=True),
    )
    spec.update(yaml_form.argument_spec())
    spec.update(options.common_options())
    spec.update(options.xtables_options(aliases=['backend']))
    spec.update(options.ebtables_options())
    return spec


def read_document(params):
    """(text, source) of the filter document given by xml or src."""
    if params['xml'] is not None:
        return params['xml'], 'xml'
    path = params['src']
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read(), path
    except (OSError, UnicodeDecodeError) as exc:
        raise NetfilterError('cannot read src %s: %s' % (path, exc))


def parse_document(params):
    """``(Filter, ignored items)`` from xml or src; with strict=false unknown items are ignored."""
    text, source = read_document(params)
    nwfilter = nwfilter_parse.parse_filter(text, source=source, strict=params['strict'])
    ignored = ()
    if not params['strict']:
        ignored = tuple(nwfilter_schema.ignored_items(nwfilter_parse.parse_xml_document(text, source, 'filter')))
    if params['name'] is not None and params['name'] != nwfilter.name:
        raise NetfilterError("name '%s' differs from the document's filter name '%s'" % (params['name'], nwfilter.name))
    return nwfilter, ignored


def yaml_document(params):
    """``(Filter, ignored items)`` from the YAML form (rules, filterrefs, chain, priority, uuid)."""
    form = dict((key, params[key]) for key in yaml_form.FILTER_KEYS)
    nwfilter = yaml_form.filter_from_options(form, strict=params['strict'])
    ignored = ()
    if not params['strict']:
        root = nwfilter_parse.parse_xml_document(yaml_form.options_xml(form, strict=False), 'rules', 'filter')
        ignored = tuple(nwfilter_schema.ignored_items(root))
    return nwfilter, ignored


def make_request(module):
    """The engine request for the options, and the items strict=false ignored."""
    params = module.params
    nwfilter, ignored = None, ()
    if params['state'] in ('present', 'rendered'):
        if params['rules'] is not None or params['filterrefs'] is not None:
            nwfilter, ignored = yaml_document(params)
        else:
            for key in ('chain', 'priority', 'uuid'):
                if params[key] is not None:
                    raise NetfilterError('%s belongs to the YAML form: give rules or filterrefs with it '
                                         '(with xml or src it is part of the document)' % key)
            nwfilter, ignored = parse_document(params)
    request = filter_service.FilterRequest(
        state=params['state'], state_dir=params['state_dir'], name=params['name'], nwfilter=nwfilter,
        check_mode=module.check_mode, lock_timeout=params['lock_timeout'],
        xtables_backend=params['xtables_backend'], ebtables_backend=params['ebtables_backend'])
    return request, ignored


def make_result(module, request, outcome, ignored):
    """The module result for ``outcome`` (keys documented in RETURN)."""
    state = request.state
    if state == 'gathered':
        return dict(changed=False, filters=list(outcome.filters), objects=results.objects(outcome.report),
                    in_sync=results.in_sync(outcome.report))
    result = dict(changed=outcome.changed, filter=outcome.filter)
    if state == 'rendered':
        result['rendered'] = outcome.rendered
    else:
        result['rebuilt'] = list(outcome.rebuilt)
        result['objects'] = results.objects(outcome.report)
        result['changed'] = outcome.changed or outcome.report.changed
    if state != 'absent':
        result['ignored'] = list(ignored)
    if result['filter'] is None:
        del result['filter']
    if module._diff and result['changed']:
        own = None
        if outcome.changed:
            path = os.path.join(store.filters_dir(request.state_dir), outcome.change.name + store.SUFFIX)
            own = dict(before=outcome.change.before, after=outcome.change.after,
                       before_header='%s (before)' % path, after_header='%s (after)' % path)
        result['diff'] = own if outcome.report is None else results.diff(own, outcome.report)
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('xml', 'src', 'rules'), ('xml', 'src', 'filterrefs')],
        required_if=[('state', 'present', ('xml', 'src', 'rules', 'filterrefs'), True),
                     ('state', 'rendered', ('xml', 'src', 'rules', 'filterrefs'), True),
                     ('state', 'absent', ('name',))],
        required_by={'rules': 'name', 'filterrefs': 'name', 'priority': 'chain'},
        supports_check_mode=True,
    )
    options.require_lxml(module)
    try:
        request, ignored = make_request(module)
        for item in ignored:
            module.warn("filter '%s': ignored %s (strict=false)" % (request.nwfilter.name, item))
        for note in nwfilter_parse.ignored_parameter_notes(request.nwfilter) if request.nwfilter else ():
            module.warn(note)
        outcome = filter_service.run(request)
    except NetfilterError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='cannot access state_dir %s: %s' % (module.params['state_dir'], exc))
    for warning in outcome.warnings:
        module.warn(warning)
    result = make_result(module, request, outcome, ignored)
    if outcome.report is not None and outcome.report.failed and request.state != 'gathered':
        # the previous definition is back: say what could not be applied
        result['changed'] = False
        results.fail_if_failed(module, outcome.report, result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
