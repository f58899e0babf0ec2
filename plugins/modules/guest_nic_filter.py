#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: guest_nic_filter
short_description: Bind libvirt nwfilter filters to guest NICs on a host, without libvirtd
version_added: 0.1.0
description:
  - Binds a network filter (a libvirt nwfilter, built-in like C(clean-traffic) or defined with
    M(hypervisor.netfilter.nwfilter)) to the host side of a guest NIC (a tap or veth that is a port
    of a bridge) and installs the ebtables, iptables and ip6tables rules libvirt would install for
    it, with libvirt's chain names (C(libvirt-I-vnet0), C(I-vnet0-mac), C(FI-vnet0), C(libvirt-in),
    ...), rules and order.
  - Bindings are stored in O(state_dir); the desired rules of the host are those of all stored
    bindings, so binding or unbinding one NIC never disturbs the others.
  - One call handles one NIC or thousands (O(nics)) with one read of the live rules
    (C(ebtables-save), C(iptables-save), C(ip6tables-save)) and at most one
    C(*-restore --noflush) transaction per family. Only chains whose rules differ are rewritten;
    a NIC's chains are replaced inside one transaction, so it is never unfiltered.
  - Drift-aware - if someone flushed or edited our chains (C(iptables -F), a firewall restart), the
    next run reports C(changed) (also in check mode, with the lines in C(--diff)) and repairs it.
    Rules and chains that are not ours stay byte-identical, their order included.
  - Runs of this module on one host are serialised by a lock in O(state_dir) and the xtables lock.
  - All bindings of a host are stored in one file, C(bindings.json) in O(state_dir), keyed by the
    host-side interface name.
options:
  state:
    description:
      - V(present) stores the binding(s) and applies the rules of all stored bindings.
      - V(absent) removes the binding(s) and their rules.
      - V(rendered) returns the restore text of the given binding(s) only and touches nothing.
    type: str
    choices: [present, absent, rendered]
    default: present
  interface:
    description:
      - Host-side device of the guest NIC (libvirt's C(portdev), e.g. C(vnet0)).
      - 1-15 characters of letters, digits, C(_ . @ -); no C(/), C(:), blanks or trailing C(+).
    type: str
  mac:
    description:
      - The guest's MAC address (the C($MAC) variable of the filter). Required with O(interface) for
        O(state=present) and O(state=rendered).
    type: str
  filter:
    description:
      - Name of the filter to bind. Required with O(interface) for O(state=present) and O(state=rendered).
    type: str
  parameters:
    description:
      - Filter parameters (variables) such as C(IP) or C(DHCPSERVER). A list gives a variable several
        values, like libvirt's repeated C(<parameter>) elements.
      - libvirt silently drops a parameter whose value is not made of C([A-Za-z0-9_.:]) (for example
        OpenStack nova's C(RASERVER) with a C(/128) prefix length). Such a parameter is accepted with a
        warning when no rule of the filter tree uses it, and refused, naming the parameter, its value,
        the filter and the rule, when one does. The same holds in O(binding_xml) and O(nics).
    type: dict
    default: {}
  binding_xml:
    description:
      - A libvirt C(<filterbinding>) document (as written by C(virsh nwfilter-binding-dumpxml)) instead
        of O(interface), O(mac), O(filter) and O(parameters).
    type: str
  nics:
    description:
      - Several bindings at once; one read of the live state and one transaction per family for all.
    type: list
    elements: dict
    suboptions:
      interface:
        description: Host-side device of the guest NIC.
        type: str
        required: true
      mac:
        description: The guest's MAC address (not needed for O(state=absent)).
        type: str
      filter:
        description: Name of the filter to bind (not needed for O(state=absent)).
        type: str
      parameters:
        description: Filter parameters; a list gives a variable several values.
        type: dict
        default: {}
  exclusive:
    description:
      - With O(state=present), unbind every stored binding that is not listed in this call.
      - O(nics=[]) with O(exclusive=true) unbinds everything.
    type: bool
    default: false
  xtables_backend:
    aliases: [backend]
  skip_missing_interfaces:
    description:
      - Do not apply (but keep storing) bindings whose interface does not exist on the host; a warning
        names them. With V(false) their rules are installed anyway (xtables accepts absent interfaces).
    type: bool
    default: true
  libvirt_binding_dir:
    description:
      - Where libvirt's nwfilter driver keeps its bindings (one C(IF.xml) per interface). An interface
        that is not bound here yet and has a binding file there is refused, with a message that explains
        how to hand it over (libvirt and this collection use the same chain names and would overwrite each
        other's rules). An empty string turns the check off.
    type: path
    default: /run/libvirt/nwfilter-binding
  takeover:
    description:
      - Bind interfaces that are new to O(state_dir) even when the kernel has chains for them this
        collection did not make (left by libvirt's nwfilter driver after it was stopped and its binding
        file removed); they are replaced in one atomic transaction. Without it such an interface is refused.
      - A binding file in O(libvirt_binding_dir) is refused whatever this option says.
    type: bool
    default: false
  firewall_backend:
    description:
      - Layout of the guest NIC filters on this host, stored as a host setting (the host agent and the
        rebuilds M(hypervisor.netfilter.nwfilter) triggers use it too). Same name and values as
        M(hypervisor.netfilter.virt_network)'s option.
      - V(iptables) is libvirt's ebtables/iptables layout. V(nftables) is this collection's own nftables
        table C(bridge hnf_nic), whose per-frame cost does not grow with the number of guests (one chain per
        filter, dispatch by interface name, per-NIC values in sets). NICs whose rules need what the bridge family
        cannot do on the host (connection state without C(nf_conntrack_bridge), connlimit, ipset) keep those
        rules on the iptables chains, with a warning. See C(docs/nft-nic-backend.md).
      - Changing it moves every stored binding to the other layout in one run.
      - When not given, the stored setting is used (V(iptables) on a new host).
    type: str
    choices: [iptables, nftables]
extends_documentation_fragment:
  - hypervisor.netfilter.common
  - hypervisor.netfilter.common.xtables
  - hypervisor.netfilter.common.ebtables
notes:
  - Check mode is supported and reports exactly what a real run would change. Diff mode shows the
    rule lines of each changed chain before and after, per family.
  - Needs C(ebtables), C(iptables) and C(ip6tables) (nft or legacy variants) and root.
  - "To compare the desired rules with the live ones, the module loads the desired chains once into a
    private throwaway network namespace and reads back how the tools spell them; the result is cached
    in O(state_dir), so repeated runs only read the live state."
seealso:
  - module: hypervisor.netfilter.nwfilter
  - name: libvirt nwfilter bindings
    description: libvirt's documentation of network filters.
    link: https://libvirt.org/formatnwfilter.html
attributes:
  check_mode:
    description: Reads the live rules and the stored bindings and reports exactly what a real run would change;
      writes nothing (no rules, no binding file, no cache, no lock file).
    support: full
  diff_mode:
    description: Shows, per family, the rules of each changed chain and the hook rules before and after, and the
      stored interfaces before and after.
    support: full
author:
  - hypervisor.netfilter contributors (@hypervisor-netfilter)
'''

EXAMPLES = r'''
- name: Apply clean-traffic to a guest NIC
  hypervisor.netfilter.guest_nic_filter:
    interface: vnet0
    mac: "52:54:00:12:34:56"
    filter: clean-traffic
    parameters:
      IP: 192.0.2.10

- name: Bind many NICs in one transaction and drop bindings not listed
  hypervisor.netfilter.guest_nic_filter:
    nics:
      - interface: vnet0
        mac: "52:54:00:00:00:01"
        filter: clean-traffic
        parameters:
          IP: [192.0.2.10, 192.0.2.11]
      - interface: vnet1
        mac: "52:54:00:00:00:02"
        filter: clean-traffic
        parameters:
          IP: 192.0.2.12
    exclusive: true

- name: Bind from a libvirt filterbinding document
  hypervisor.netfilter.guest_nic_filter:
    binding_xml: "{{ lookup('ansible.builtin.file', 'vnet7-binding.xml') }}"

- name: Show the rules a binding would get, without touching the host
  hypervisor.netfilter.guest_nic_filter:
    state: rendered
    interface: vnet0
    mac: "52:54:00:12:34:56"
    filter: clean-traffic
    parameters:
      IP: 192.0.2.10
  register: rules

- name: Unbind a NIC (removes its chains and its stored binding)
  hypervisor.netfilter.guest_nic_filter:
    state: absent
    interface: vnet0
'''

RETURN = r'''
bindings:
  description: The stored bindings after the run (what a real run stores, in check mode), in stored order.
  returned: state is present or absent
  type: list
  elements: dict
  contains:
    interface:
      description: Host-side device.
      type: str
      sample: vnet0
    mac:
      description: Guest MAC address, lower case.
      type: str
      sample: "52:54:00:12:34:56"
    filter:
      description: Bound filter.
      type: str
      sample: clean-traffic
    parameters:
      description: Filter parameters (a string for one value, a list for several).
      type: dict
      sample: {IP: 192.0.2.10}
added:
  description: Interfaces newly bound.
  returned: state is present or absent
  type: list
  elements: str
  sample: [vnet0]
updated:
  description: Interfaces rebound with another MAC, filter or parameters.
  returned: state is present or absent
  type: list
  elements: str
  sample: []
removed:
  description: Interfaces unbound.
  returned: state is present or absent
  type: list
  elements: str
  sample: []
missing_interfaces:
  description: Stored interfaces that do not exist on the host; their rules were not applied.
  returned: state is present or absent
  type: list
  elements: str
  sample: []
interfaces_changed:
  description: Interfaces whose own chains were (or in check mode would be) created, rewritten or removed.
  returned: state is present or absent
  type: list
  elements: str
  sample: [vnet0]
kernel_changed:
  description: Whether the live rules were (or would be) changed, as opposed to only the stored bindings.
  returned: state is present or absent
  type: bool
  sample: true
firewall_backend:
  description: The NIC filter layout used (the option, else the stored host setting).
  returned: state is present or absent
  type: str
  sample: nftables
families:
  description:
    - Per family (ebtables, iptables, ip6tables) the backend and the number of chains and hooks changed.
    - With the nftables layout, key C(nftables) counts chains and set/map elements added and deleted.
  returned: state is present or absent
  type: dict
  sample:
    ebtables: {backend: nft, chains_created: 9, chains_replaced: 0, chains_deleted: 0, hooks_added: 2, hooks_deleted: 0}
rendered:
  description: The restore text (C(*-restore --noflush) input) of the given binding(s) alone, per family.
  returned: state is rendered
  type: dict
  contains:
    ebtables:
      description: ebtables-restore text ('' if none).
      type: str
    iptables:
      description: iptables-restore text ('' if none).
      type: str
    ip6tables:
      description: ip6tables-restore text ('' if none).
      type: str
timings:
  description: Seconds the module spent reading, diffing and applying (C(total)).
  returned: state is present or absent
  type: dict
  sample: {total: 0.07}
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host import libvirt_nwfilter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._modules import options
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import (
    NWFILTER_OWNERSHIP, XtablesEngine)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_tools import CommandError

FAMILY_LABELS = (('eb', 'ebtables'), ('ip', 'iptables'), ('ip6', 'ip6tables'))


def argument_spec():
    spec = dict(
        state=dict(type='str', choices=['present', 'absent', 'rendered'], default='present'),
        interface=dict(type='str'),
        mac=dict(type='str'),
        filter=dict(type='str'),
        parameters=dict(type='dict', default={}),
        binding_xml=dict(type='str'),
        nics=dict(type='list', elements='dict', options=dict(
            interface=dict(type='str', required=True),
            mac=dict(type='str'),
            filter=dict(type='str'),
            parameters=dict(type='dict', default={}),
        )),
        exclusive=dict(type='bool', default=False),
        skip_missing_interfaces=dict(type='bool', default=True),
        libvirt_binding_dir=dict(type='path', default=libvirt_nwfilter.DEFAULT_BINDING_DIR),
        takeover=dict(type='bool', default=False),
        firewall_backend=dict(type='str', choices=['iptables', 'nftables']),
    )
    spec.update(options.common_options())
    spec.update(options.xtables_options(aliases=['backend']))
    spec.update(options.ebtables_options())
    return spec


def requested_nics(params):
    """``[(interface, mac, filter, parameters, where)]`` from whichever input form was used."""
    if params['binding_xml'] is not None:
        parsed = parse_binding(params['binding_xml'], source='binding_xml')
        return [(parsed.portdev, parsed.mac, parsed.filter, tuple(parsed.parameters), 'binding_xml')]
    if params['interface'] is not None:
        return [(params['interface'], params['mac'], params['filter'], params['parameters'], 'interface')]
    if params['nics'] is not None:
        return [(n['interface'], n['mac'], n['filter'], n['parameters'], 'nics[%d]' % i)
                for i, n in enumerate(params['nics'])]
    return []


def make_bindings(nics):
    bindings = []
    for interface, mac, filter_name, parameters, where in nics:
        for name, value in (('mac', mac), ('filter', filter_name)):
            if value is None:
                raise binding_store.BindingError('%s: %s is required to bind interface %s' % (where, name, interface))
        bindings.append(binding_store.make_binding(interface, mac, filter_name, parameters, where=where))
    return bindings


def binding_output(binding):
    return dict(interface=binding.interface, mac=binding.mac, filter=binding.filter,
                parameters=binding.parameters_dict())


def run_rendered(module, nics):
    bindings = make_bindings(nics)
    filters = nic_sync.load_host_filters(module.params['state_dir'])
    for warning in nic_sync.upsert_warnings(bindings, filters):
        module.warn(warning)
    ruleset = merge_rulesets([r for _b, r in nic_sync.compile_bindings(bindings, filters)])
    module.exit_json(changed=False, rendered=dict((label, ruleset.render(family)) for family, label in FAMILY_LABELS))


def run_sync(module, nics):
    params = module.params
    state = params['state']
    if state == 'present':
        upserts = make_bindings(nics)
        removals = ()
    else:
        upserts = ()
        removals = tuple(binding_store.validate_interface(n[0], where=n[4]) for n in nics)
    start = time.monotonic()
    backend = nics_nftables.effective_backend(params['state_dir'], params['firewall_backend'])
    common = dict(upserts=upserts, removals=removals, exclusive=params['exclusive'] and state == 'present',
                  check_mode=module.check_mode, skip_missing_interfaces=params['skip_missing_interfaces'],
                  lock_timeout=params['lock_timeout'],
                  coexistence=libvirt_nwfilter.Coexistence(params['libvirt_binding_dir'], params['takeover']))
    left = None
    if backend == 'nftables':
        result = nics_nftables.sync_host(params['state_dir'], xtables_backend=params['xtables_backend'],
                                         ebtables_backend=params['ebtables_backend'], **common)
    else:
        engine = XtablesEngine(NWFILTER_OWNERSHIP, backend=params['xtables_backend'],
                               ebtables_backend=params['ebtables_backend'], state_dir=params['state_dir'],
                               lock_timeout=params['lock_timeout'])
        result = nic_sync.sync_host(params['state_dir'], engine, **common)
        left = nics_nftables.leave_nftables(check_mode=module.check_mode)
    if params['firewall_backend'] and not module.check_mode:
        settings = host_settings.load_host_settings(params['state_dir'])
        host_settings.save_host_settings(params['state_dir'], settings.replace(firewall_backend=backend))
    for warning in result.warnings:
        module.warn(warning)
    output = dict(
        changed=result.changed or left is not None,
        kernel_changed=result.kernel_changed or left is not None,
        firewall_backend=backend,
        bindings=[binding_output(b) for b in result.bindings],
        added=list(result.added), updated=list(result.updated), removed=list(result.removed),
        missing_interfaces=list(result.skipped), interfaces_changed=list(result.interfaces_changed),
        families=result.sync.summary(),
        timings=dict(total=round(time.monotonic() - start, 4)),
    )
    if module._diff:
        diffs = list(result.sync.diff) + ([left] if left else [])
        if result.added or result.updated or result.removed:
            diffs.append(dict(before_header='stored bindings', after_header='stored bindings',
                              before=''.join(b.describe() + '\n' for b in result.previous),
                              after=''.join(b.describe() + '\n' for b in result.bindings)))
        output['diff'] = diffs
    module.exit_json(**output)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('interface', 'binding_xml', 'nics')],
        required_by={'mac': 'interface', 'filter': 'interface'},
        supports_check_mode=True,
    )
    options.require_lxml(module)
    params = module.params
    try:
        nics = requested_nics(params)
        if params['state'] == 'rendered':
            if not nics:
                module.fail_json(msg='state=rendered needs interface, binding_xml or nics')
            run_rendered(module, nics)
        if not nics and not (params['state'] == 'present' and params['exclusive'] and params['nics'] is not None):
            module.fail_json(msg='state=%s needs interface, binding_xml or nics' % params['state'])
        run_sync(module, nics)
    except CommandError as exc:
        module.fail_json(msg=str(exc), stderr=exc.stderr or '', cmd=list(exc.argv), rc=exc.rc)
    except NetfilterError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (getattr(exc, 'filename', None) or 'state_dir', exc))


if __name__ == '__main__':
    main()
