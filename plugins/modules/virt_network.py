#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: virt_network
short_description: Host firewall of a libvirt-style virtual network, without libvirtd
version_added: 0.1.0
description:
  - Gives a bridge the host firewall rules libvirt's virtual network driver would install for it
    (libvirt 11.3), for the C(isolated), C(nat), C(route) and C(open) forward modes, with either of
    libvirt's layouts - the iptables private chains C(LIBVIRT_INP), C(LIBVIRT_OUT), C(LIBVIRT_FWO),
    C(LIBVIRT_FWI), C(LIBVIRT_FWX) and C(LIBVIRT_PRT) with their jumps from the built-in chains, or
    the nftables tables C(ip libvirt_network) and C(ip6 libvirt_network).
  - Same rules, same order and same arguments as libvirt. Several networks live side by side; the
    desired state of the host is the union of all networks stored in O(state_dir), so
    O(state=absent) removes exactly one network's rules.
  - Changes are atomic; one C(iptables-restore --noflush) per address family through the
    collection's xtables engine, or one C(nft -f) transaction for both families. Only what differs
    from the live state is written, so a second identical run changes nothing, and rules flushed by
    someone else are put back (drift repair). Rules and chains that are not ours are never touched.
  - Optionally creates the bridge with its gateway addresses, turns on IP forwarding when the mode
    needs it (never turns it off), and puts the bridge into libvirt's firewalld zone when firewalld
    is running.
  - Every run ends by reconciling the whole host state stored in O(state_dir) (all networks, then all
    guest NIC bindings) in the same lock as its own change. A firewalld reload this module causes (when
    it defines libvirt's zones) flushes other rules, the guest NIC filters among them; the closing
    reconcile puts them back and lists them in RV(objects) as V(repaired).
author:
  - hypervisor.netfilter contributors (@hypervisor-netfilter)
options:
  name:
    description:
      - Name of the network (key of its state file in O(state_dir)).
      - Required unless O(xml) is given or O(state=gathered) (where it limits the result to that network);
        with O(xml) it must match the document's C(<name>) if set.
      - Given alone (no O(xml), no O(bridge) or other option of the model, no O(zone)) with
        O(state=present) or O(state=rendered), the network stored under this name is applied (rendered)
        again as it was defined, for example after a reboot; its layout is kept unless
        O(firewall_backend) asks for another one.
    type: str
  state:
    description:
      - V(present) installs the network's rules (and bridge, zone, forwarding).
      - V(absent) removes the network's rules, its firewalld zone binding and, if this module
        created it, its bridge. Rules of other networks stay.
      - V(rendered) changes nothing and returns the rules in RV(rendered).
      - V(gathered) changes nothing and returns every stored network (or the one O(name) names) in
        RV(networks), whether the host has all of it in RV(objects) and RV(in_sync).
    type: str
    choices: [present, absent, rendered, gathered]
    default: present
  xml:
    description:
      - A whole libvirt C(<network>) document, as an alternative to O(bridge), O(forward_mode),
        O(forward_dev), O(ipv4), O(ipv6), O(ipv6_no_gateway), O(nat) and O(dns) (mutually exclusive
        with them). Both ways give the same model.
      - C(<forward mode='none'>) or no C(<forward>) is V(isolated); C(<forward/>) without a mode is
        V(nat). Modes libvirt does not firewall (C(bridge), C(private), C(vepa), C(passthrough),
        C(hostdev)) are rejected.
    type: str
  bridge:
    description:
      - Name of the bridge device (at most 15 letters, digits, C(_), C(.) or C(-)).
      - Required for O(state=present) and O(state=rendered) unless O(xml) is given or the stored network
        O(name) is re-applied.
    type: str
  forward_mode:
    description:
      - V(isolated) (libvirt's no C(<forward>)), V(nat), V(route) or V(open) (no rules at all).
      - Defaults to V(isolated) when O(xml) is not given.
    type: str
    choices: [isolated, nat, route, open]
  forward_dev:
    description:
      - Uplink device that restricts forwarding and masquerading (libvirt's C(<forward dev=...>)).
      - Must exist on the host for O(state=present). Only with V(nat) and V(route).
    type: str
  ipv4:
    description:
      - The network's IPv4 gateway addresses, a dictionary or a list of dictionaries (libvirt allows
        several C(<ip>) elements). Keys - C(address) (may carry C(/prefix)), C(prefix) (0-32, or
        C(netmask)), C(dhcp) (bool; the address serves DHCP, which adds libvirt's DHCP checksum
        rule), C(dhcp_range) (dictionary with C(start) and C(end) inside the subnet; implies
        C(dhcp)), C(tftp) (bool; opens TFTP to the host).
      - The address must be a host address inside its subnet.
    type: raw
  ipv6:
    description:
      - The network's IPv6 gateway addresses, same form as O(ipv4) (C(prefix) 0-128, default 64).
    type: raw
  ipv6_no_gateway:
    description:
      - libvirt's C(<network ipv6='yes'>) - IPv6 traffic between guests is allowed even without an
        IPv6 address on the bridge. Defaults to V(false).
    type: bool
  nat:
    description:
      - Masquerading settings for O(forward_mode=nat) (libvirt's C(<forward><nat>)).
    type: dict
    suboptions:
      addresses:
        description:
          - IPv4 source address range for SNAT instead of MASQUERADE.
        type: dict
        suboptions:
          start:
            description: First address.
            type: str
            required: true
          end:
            description: Last address.
            type: str
            required: true
      ports:
        description:
          - Source port range used for TCP and UDP (default 1024-65535; start must be below end).
        type: dict
        suboptions:
          start:
            description: First port.
            type: int
            required: true
          end:
            description: Last port.
            type: int
            required: true
      ipv6:
        description:
          - Masquerade IPv6 too (libvirt's C(<nat ipv6='yes'/>)); otherwise IPv6 is routed.
        type: bool
        default: false
  dns:
    description:
      - libvirt's C(<dns enable='no'/>) when V(false). Stored with the network; libvirt 11.3 installs
        the same firewall rules either way. Defaults to V(true).
    type: bool
  firewall_backend:
    description:
      - Which of libvirt's layouts to use. V(auto) picks as libvirt does - nftables when the C(nft)
        command exists, else iptables.
    type: str
    choices: [auto, iptables, nftables]
    default: auto
  xtables_backend:
    description:
      - For the iptables layout - V(nft) (iptables-nft) or V(legacy) (iptables-legacy) tools;
        V(auto) follows the host's C(iptables) command, or the variant stored networks were applied with.
      - All networks of a host share one variant; asking for another one than a stored network uses
        is an error.
  zone:
    description:
      - firewalld zone for the bridge. Default as libvirt - C(libvirt), or C(libvirt-routed) for
        routed networks; none for V(open) networks. When the default zones or the routed policies
        are missing, this module defines them (its own definitions) and reloads firewalld once.
      - Only used when firewalld is running; giving a zone while firewalld is not running is an
        error.
    type: str
  create_bridge:
    description:
      - Create the bridge if missing, add the gateway addresses and bring it up. V(false) only
        manages rules (the nftables layout then needs an existing bridge).
      - On a bridge that existed before (not created by this network), the addresses the network added are
        removed again when the network goes, moves or changes them; the bridge's other addresses and the
        bridge stay.
    type: bool
    default: true
extends_documentation_fragment:
  - hypervisor.netfilter.common
  - hypervisor.netfilter.common.xtables
requirements:
  - iptables (iptables-save, iptables-restore, ip6tables-save, ip6tables-restore) or nft
  - iproute2 (ip, and tc for the nftables layout's DHCP checksum filter)
  - lxml (for O(xml))
  - firewall-cmd, when firewalld runs on the host
notes:
  - Check mode and diff mode are supported; check mode reads the live state and reports exactly the
    changes a real run would make, including rules removed by someone else.
  - Rules of several networks are ordered as libvirt orders them (networks started later sit
    above earlier ones); subnets of different networks must not overlap.
  - With the nftables layout libvirt adds a C(tc) checksum filter on the bridge; when the kernel
    lacks the C(act_csum) action the filter is skipped with a warning.
  - The private iptables chains are shared by all networks and removed with the last network.
attributes:
  check_mode:
    description: Reads the live state and reports exactly what a real run would change; changes nothing.
    support: full
  diff_mode:
    description: Shows the changed chains' rules (iptables), the libvirt_network tables (nftables) and the
      bridge/firewalld changes before and after.
    support: full
seealso:
  - name: libvirt network XML format
    description: The C(<network>) document accepted by O(xml).
    link: https://libvirt.org/formatnetwork.html
  - name: libvirt firewall
    description: How libvirt firewalls virtual networks.
    link: https://libvirt.org/firewall.html
'''

EXAMPLES = r'''
- name: The classic default NAT network
  hypervisor.netfilter.virt_network:
    name: default
    bridge: virbr0
    forward_mode: nat
    ipv4:
      address: 192.168.122.1
      prefix: 24
      dhcp_range:
        start: 192.168.122.2
        end: 192.168.122.254

- name: Same network from libvirt XML
  hypervisor.netfilter.virt_network:
    xml: "{{ lookup('ansible.builtin.file', 'default-network.xml') }}"

- name: Routed network with IPv4 and IPv6, forwarding only via eth1
  hypervisor.netfilter.virt_network:
    name: lab
    bridge: virbr2
    forward_mode: route
    forward_dev: eth1
    ipv4:
      - address: 10.20.0.1/24
    ipv6:
      - address: fd00:20::1
        prefix: 64

- name: Isolated network on the iptables layout, SNAT not needed
  hypervisor.netfilter.virt_network:
    name: backend
    bridge: virbr3
    forward_mode: isolated
    firewall_backend: iptables
    ipv4:
      address: 10.30.0.1/24
      dhcp: true

- name: NAT through a fixed address range and ports
  hypervisor.netfilter.virt_network:
    name: snat
    bridge: virbr4
    forward_mode: nat
    ipv4:
      address: 10.40.0.1/24
    nat:
      addresses:
        start: 203.0.113.10
        end: 203.0.113.20
      ports:
        start: 20000
        end: 30000

- name: Show the rules without touching the host
  hypervisor.netfilter.virt_network:
    name: default
    bridge: virbr0
    forward_mode: nat
    ipv4:
      address: 192.168.122.1/24
    firewall_backend: nftables
    state: rendered
  register: preview

- name: Apply the stored network again, as it was defined (e.g. after a reboot)
  hypervisor.netfilter.virt_network:
    name: default

- name: Remove one network (others keep their rules)
  hypervisor.netfilter.virt_network:
    name: lab
    state: absent
'''

RETURN = r'''
network:
  description: The network's model as stored (present) or as it was stored (absent).
  returned: when O(state=present) or O(state=rendered), or O(state=absent) for a stored network
  type: dict
  sample:
    name: default
    bridge: virbr0
    forward_mode: nat
    forward_dev: null
    ips:
      - family: ipv4
        address: 192.168.122.1
        prefix: 24
        network: 192.168.122.0/24
        dhcp: true
        tftp: false
    nat_ipv6: false
    nat_addresses: null
    nat_ports: null
    dns: true
    zone: null
    ipv6_no_gateway: false
backend:
  description: The firewall layout used for this network.
  returned: state is present, absent or rendered
  type: str
  sample: nftables
rendered:
  description:
    - The rules for a host that has none of our rules yet, for the chosen backend - restore-format
      text for C(iptables) and C(ip6tables), an C(nft -f) script for C(nftables); an empty string
      for what the backend does not use.
    - The nftables script refers to the bridge by device (C(iif)/C(oif)), so the bridge must exist
      where it is loaded.
  returned: when O(state=rendered)
  type: dict
  contains:
    iptables:
      description: C(iptables-restore --noflush) input.
      type: str
    ip6tables:
      description: C(ip6tables-restore --noflush) input.
      type: str
    nftables:
      description: C(nft -f) script.
      type: str
zone:
  description: firewalld zone of the bridge, when firewalld runs and the network has one.
  returned: when firewalld is running
  type: str
  sample: libvirt
changes:
  description: What was (or in check mode would be) changed, one line per item.
  returned: state is present, absent or rendered
  type: list
  elements: str
  sample: ["create bridge virbr0", "iptables rules of the LIBVIRT_* chains"]
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
networks:
  description: The stored networks (their models, as RV(network), and the layout in C(backend)).
  returned: state is gathered
  type: list
  elements: dict
in_sync:
  description: Whether the host has everything of the networks listed in RV(objects) (O(state=gathered)).
  returned: state is gathered
  type: bool
  sample: true
forwarding:
  description: Sysctls (path below C(/proc/sys)) turned on by this run.
  returned: state is present, absent or rendered
  type: dict
  sample: {"net/ipv4/ip_forward": "1"}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._modules import options, results
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network import parse as network_parse
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import host
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import module_run
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import networks as network_engine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import networks as network_store

MODEL_OPTIONS = ('bridge', 'forward_mode', 'forward_dev', 'ipv4', 'ipv6', 'ipv6_no_gateway', 'nat', 'dns')


def argument_spec():
    range_ip = dict(start=dict(type='str', required=True), end=dict(type='str', required=True))
    range_port = dict(start=dict(type='int', required=True), end=dict(type='int', required=True))
    spec = dict(
        name=dict(type='str'),
        state=dict(type='str', choices=['present', 'absent', 'rendered', 'gathered'], default='present'),
        xml=dict(type='str'),
        bridge=dict(type='str'),
        forward_mode=dict(type='str', choices=list(network_parse.FORWARD_MODES)),
        forward_dev=dict(type='str'),
        ipv4=dict(type='raw'),
        ipv6=dict(type='raw'),
        ipv6_no_gateway=dict(type='bool'),
        nat=dict(type='dict', options=dict(
            addresses=dict(type='dict', options=range_ip),
            ports=dict(type='dict', options=range_port),
            ipv6=dict(type='bool', default=False),
        )),
        dns=dict(type='bool'),
        firewall_backend=dict(type='str', choices=['auto', 'iptables', 'nftables'], default='auto'),
        zone=dict(type='str'),
        create_bridge=dict(type='bool', default=True),
    )
    spec.update(options.common_options())
    spec.update(options.xtables_options())
    return spec


def build_spec(params):
    """The network model from the options (or the XML); raises NetworkSpecError."""
    if params['xml'] is not None:
        spec = network_parse.spec_from_xml(params['xml'], zone=params['zone'])
        if params['name'] and params['name'] != spec.name:
            raise network_parse.NetworkSpecError('name %r disagrees with the XML network name %r'
                                                 % (params['name'], spec.name))
        return spec
    return network_parse.spec_from_options(params)


def reapplies_stored(params):
    """``name`` alone (no model option, no xml, no zone): the stored network again."""
    return params['xml'] is None and params['zone'] is None and all(params[o] is None for o in MODEL_OPTIONS)


def make_request(module):
    """The engine request for the options (gathered needs none)."""
    params = module.params
    state = params['state']
    spec = None
    name = params['name']
    if state != 'gathered' and (params['xml'] is not None or (state != 'absent' and not reapplies_stored(params))):
        spec = build_spec(params)
        name = spec.name
    return network_engine.Request(
        state=state, name=name, spec=spec, firewall_backend=params['firewall_backend'],
        xtables_backend=params['xtables_backend'] or 'auto', create_bridge=params['create_bridge'],
        state_dir=params['state_dir'], check_mode=module.check_mode, lock_timeout=params['lock_timeout'])


def run(module, request):
    """``(Outcome, HostReport)``: rendered touches nothing; gathered is a check-mode reconcile;
    present and absent end with the whole-host reconcile in the same lock."""
    if request.state == 'rendered':
        return network_engine.run(request), None
    if request.state == 'gathered':
        return None, host.reconcile_host(request.state_dir, check_mode=True, lock_timeout=request.lock_timeout)
    return module_run.change_and_reconcile(
        request.state_dir, lambda: (network_engine.run_locked(request), {}), check_mode=request.check_mode,
        lock_timeout=request.lock_timeout, firewalld=request.firewalld,
        settings=module_run.given_settings(xtables_backend=module.params['xtables_backend']))


def gathered_result(module):
    """Every stored network (or the one O(name) names) and whether the host has all of it."""
    wanted = module.params['name']
    _outcome, report = run(module, make_request(module))
    report_objects = [o for o in results.objects(report, ('network',)) if wanted in (None, o['name'])]
    networks = [dict(n.spec.to_dict(), backend=n.backend) for n in network_store.load_all(module.params['state_dir'])
                if wanted in (None, n.spec.name)]
    for warning in report.warnings:
        module.warn(warning)
    return dict(changed=False, networks=networks, objects=report_objects,
                in_sync=all(o['status'] in results.IN_SYNC for o in report_objects))


def make_result(module, spec, outcome, report):
    """The module result for ``outcome`` and the closing reconcile's ``report`` (keys documented in RETURN)."""
    result = dict(changed=outcome.changed, backend=outcome.backend, changes=outcome.changes,
                  forwarding=outcome.forwarding)
    if spec is not None:
        result['network'] = spec.to_dict()
    elif outcome.stored is not None:
        result['network'] = outcome.stored
    if outcome.rendered is not None:
        result['rendered'] = outcome.rendered
    if outcome.zone is not None:
        result['zone'] = outcome.zone
    if report is not None:
        result['changed'] = outcome.changed or report.changed
        result['objects'] = results.objects(report)
    if module._diff and result['changed']:
        own = outcome.diff or None
        result['diff'] = own if report is None else results.diff(own, report)
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('xml', option) for option in MODEL_OPTIONS],
        supports_check_mode=True,
    )
    params = module.params
    if params['state'] != 'gathered' and params['name'] is None and params['xml'] is None:
        module.fail_json(msg='one of the following is required: name, xml')  # gathered lists them all
    if params['xml'] is not None:
        options.require_lxml(module, reason='to read the xml option')
    try:
        if params['state'] == 'gathered':
            module.exit_json(**gathered_result(module))
        request = make_request(module)
        outcome, report = run(module, request)
    except NetfilterError as exc:
        module.fail_json(msg=str(exc), stderr=getattr(exc, 'stderr', None) or '')
    for warning in list(outcome.warnings) + list(report.warnings if report is not None else ()):
        module.warn(warning)
    result = make_result(module, request.spec, outcome, report)
    if report is not None:
        results.fail_if_failed(module, report, result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
