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
    host-side interface name. Guests therefore need stable tap names - libvirt reuses C(vnetN) names
    for whatever guest starts next, so give each guest NIC its own name (libvirt's
    C(<target dev='...'/>) in the domain's C(<interface>)) and bind that name.
  - Fail closed - the rules of a binding are installed whether or not its tap exists (ebtables and
    iptables match interface names), so a guest that starts later is filtered from its first frame,
    and no run removes a stored binding's rules because its tap is absent (a stopped guest stays
    filtered when it comes back).
  - Every run ends by reconciling the whole host state stored in O(state_dir) (virtual networks first,
    then all bindings), in the same lock as its own change; RV(objects) says what was in sync and
    what was repaired.
options:
  state:
    description:
      - V(present) stores the binding(s) and applies the rules of all stored bindings. Without
        O(interface), O(binding_xml) and O(nics) it applies the stored bindings again (for example after
        a reboot or a firewall flush) without restating them.
      - V(absent) removes the binding(s) and their rules.
      - V(rendered) returns the restore text of the given binding(s) only (of every stored binding when
        none is given) and touches nothing.
      - V(gathered) changes nothing and returns every stored binding (or the one O(interface) names) in
        RV(bindings), whether its rules are in force in RV(objects) and RV(in_sync).
    type: str
    choices: [present, absent, rendered, gathered]
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
      - V(false) (fail closed, the default on a new host) - the rules of bindings whose interface does not
        exist (yet) are installed anyway; they take effect with the tap's first frame.
      - V(true) - the old behaviour - such bindings are stored but not applied, and a warning names them;
        their rules appear only when a later run finds the tap.
      - A host setting, kept in O(state_dir) (C(host.json)) and used by every module and the host agent -
        when not given, the stored setting applies; when given, it is stored once the run succeeded.
    type: bool
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
  drop_unbound_interfaces:
    description:
      - Fail closed for taps without a binding, with O(firewall_backend=nftables) - frames from and to an
        interface whose name matches one of these patterns and that has no binding are dropped (a name, or a
        prefix ending in C(*), for example C(vnet*)). Bound interfaces are not affected.
      - Stored as a host setting; when not given, the stored value is used (none on a new host). V([])
        removes the rule.
    type: list
    elements: str
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
  description:
    - The stored bindings after the run (what a real run stores, in check mode), in stored order.
    - With O(state=gathered) the stored bindings (or the one O(interface) names); with O(state=rendered) the
      bindings rendered.
  returned: always
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
    owner:
      description: The C(<owner>) of a binding given as O(binding_xml) (libvirt's guest name and UUID), kept as given.
      returned: when the binding has one
      type: dict
      sample: {name: vm1, uuid: d217f2d7-5a04-4a35-a6ba-5b9f0e1f0a01}
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
  description:
    - Stored interfaces that do not exist on the host now. Their rules are installed all the same (fail closed)
      unless O(skip_missing_interfaces=true), which leaves them out and warns.
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
  description:
    - The rules of the given binding(s) alone in the host's NIC layout (O(firewall_backend), else the stored
      setting) - the restore text (C(*-restore --noflush) input) per family; with the nftables layout also
      C(nftables), and the per-family texts hold only the rules that stay on xtables.
  returned: state is rendered
  type: dict
  contains:
    nftables:
      description: With the nftables layout, an C(nft -f) script creating C(table bridge hnf_nic) for these bindings.
      type: str
      returned: when the layout is nftables
    ebtables:
      description: ebtables-restore text ('' if none).
      type: str
    iptables:
      description: iptables-restore text ('' if none).
      type: str
    ip6tables:
      description: ip6tables-restore text ('' if none).
      type: str
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
  description: Whether the rules of every binding listed in RV(objects) are in force (O(state=gathered)).
  returned: state is gathered
  type: bool
  sample: true
timings:
  description: Seconds the module spent reading, diffing and applying (C(total)).
  returned: state is present or absent
  type: dict
  sample: {total: 0.07}
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import CommandError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host import libvirt_nwfilter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._modules import options, results
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import bindings as bind_service
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import module_run
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store


def argument_spec():
    spec = dict(
        state=dict(type='str', choices=['present', 'absent', 'rendered', 'gathered'], default='present'),
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
        skip_missing_interfaces=dict(type='bool'),
        libvirt_binding_dir=dict(type='path', default=libvirt_nwfilter.DEFAULT_BINDING_DIR),
        takeover=dict(type='bool', default=False),
        firewall_backend=dict(type='str', choices=['iptables', 'nftables']),
        drop_unbound_interfaces=dict(type='list', elements='str'),
    )
    spec.update(options.common_options())
    spec.update(options.xtables_options(aliases=['backend']))
    spec.update(options.ebtables_options())
    return spec


def requested_nics(params):
    """``[(interface, mac, filter, parameters, where)]`` from whichever input form was used
    (binding_xml: a StoredBinding, which keeps the document's owner)."""
    if params['binding_xml'] is not None:
        # the <owner> (guest name and UUID) is stored with the binding (see make_bindings)
        return [binding_store.from_filterbinding(parse_binding(params['binding_xml'], source='binding_xml'))]
    if params['interface'] is not None:
        return [(params['interface'], params['mac'], params['filter'], params['parameters'], 'interface')]
    if params['nics'] is not None:
        return [(n['interface'], n['mac'], n['filter'], n['parameters'], 'nics[%d]' % i)
                for i, n in enumerate(params['nics'])]
    return []


def make_bindings(nics):
    bindings = []
    for nic in nics:
        if isinstance(nic, binding_store.StoredBinding):  # from binding_xml, already validated
            bindings.append(nic)
            continue
        interface, mac, filter_name, parameters, where = nic
        for name, value in (('mac', mac), ('filter', filter_name)):
            if value is None:
                raise binding_store.BindingError('%s: %s is required to bind interface %s' % (where, name, interface))
        bindings.append(binding_store.make_binding(interface, mac, filter_name, parameters, where=where))
    return bindings


def binding_output(binding):
    output = dict(interface=binding.interface, mac=binding.mac, filter=binding.filter,
                  parameters=binding.parameters_dict())
    if binding.owner:
        output['owner'] = dict(name=binding.owner[0], uuid=binding.owner[1])
    return output


def make_request(module):
    """The engine request for the options."""
    params = module.params
    state = params['state']
    nics = requested_nics(params)
    if state == 'absent' and not nics:
        raise NetfilterError('state=absent needs interface, binding_xml or nics')
    if state == 'present' and params['exclusive'] and not nics and params['nics'] is None:
        raise NetfilterError('exclusive=true needs the complete list in nics (nics: [] unbinds every NIC)')
    upserts = tuple(make_bindings(nics)) if state in ('present', 'rendered') else ()
    removals = tuple(n.interface if isinstance(n, binding_store.StoredBinding) else
                     binding_store.validate_interface(n[0], where=n[4]) for n in nics) if state == 'absent' else ()
    return bind_service.BindRequest(
        state=state, state_dir=params['state_dir'], upserts=upserts, removals=removals,
        exclusive=params['exclusive'] and state == 'present', check_mode=module.check_mode,
        lock_timeout=params['lock_timeout'],
        coexistence=libvirt_nwfilter.Coexistence(params['libvirt_binding_dir'], params['takeover']),
        settings=module_run.given_settings(xtables_backend=params['xtables_backend'],
                                           ebtables_backend=params['ebtables_backend'],
                                           skip_missing_interfaces=params['skip_missing_interfaces'],
                                           firewall_backend=params['firewall_backend'],
                                           drop_unbound_interfaces=params['drop_unbound_interfaces']))


def gathered_result(module, outcome):
    """Every stored binding (or the one O(interface) names) and whether its rules are in force."""
    wanted = module.params['interface']
    report_objects = [o for o in results.objects(outcome.report, ('binding',)) if wanted in (None, o['name'])]
    return dict(changed=False, objects=report_objects,
                bindings=[binding_output(b) for b in outcome.bindings if wanted in (None, b.interface)],
                in_sync=all(o['status'] in results.IN_SYNC for o in report_objects))


def make_result(module, outcome, started):
    """The module result for ``outcome`` (keys documented in RETURN)."""
    nics = outcome.nics
    report = outcome.report
    output = dict(
        changed=nics.changed or report.changed,
        kernel_changed=nics.kernel_changed or any(o['status'] == 'repaired' for o in results.objects(report)),
        firewall_backend=nics_nftables.effective_backend(module.params['state_dir'],
                                                         module.params['firewall_backend']),
        bindings=[binding_output(b) for b in nics.bindings],
        added=list(nics.added), updated=list(nics.updated), removed=list(nics.removed),
        missing_interfaces=list(nics.absent), interfaces_changed=list(nics.interfaces_changed),
        families=nics.sync.summary(), objects=results.objects(report),
        timings=dict(total=round(time.monotonic() - started, 4)),
    )
    if module._diff:
        diffs = list(report.diff)
        if nics.added or nics.updated or nics.removed:
            diffs.append(dict(before_header='stored bindings', after_header='stored bindings',
                              before=''.join(b.describe() + '\n' for b in nics.previous),
                              after=''.join(b.describe() + '\n' for b in nics.bindings)))
        output['diff'] = diffs
    return output


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('interface', 'binding_xml', 'nics')],
        required_by={'mac': 'interface', 'filter': 'interface'},
        supports_check_mode=True,
    )
    options.require_lxml(module)
    started = time.monotonic()
    try:
        request = make_request(module)
        outcome = bind_service.run(request)
    except CommandError as exc:
        module.fail_json(msg=str(exc), stderr=exc.stderr or '', cmd=list(exc.argv), rc=exc.rc)
    except NetfilterError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (getattr(exc, 'filename', None) or 'state_dir', exc))
    for warning in outcome.warnings + (outcome.report.warnings if outcome.report is not None else ()):
        module.warn(warning)
    if request.state == 'gathered':
        module.exit_json(**gathered_result(module, outcome))
    if request.state == 'rendered':
        module.exit_json(changed=False, rendered=outcome.rendered,
                         bindings=[binding_output(b) for b in outcome.bindings])
    result = make_result(module, outcome, started)
    results.fail_if_failed(module, outcome.report, result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
