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
      - Required for O(state=absent). With O(xml) or O(src) it is optional and must match the
        document's C(name) attribute when given. With O(state=gathered) it limits the result to
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
  state:
    description:
      - V(present) defines (or redefines) the filter given by O(xml) or O(src).
      - V(absent) removes the definition of O(name). It is refused, naming them, while other filters
        reference the filter or stored guest NIC bindings use it. Removing a redefined standard
        filter brings back the standard definition; a standard filter itself always stays.
      - V(gathered) changes nothing and returns every filter in RV(filters).
    type: str
    choices: [present, absent, gathered]
    default: present
  state_dir:
    description:
      - Directory where defined filters (C(filters/NAME.xml)) and guest NIC bindings are kept.
    type: path
    default: /etc/hypervisor-netfilter
  strict:
    description:
      - V(true) rejects elements and attributes the nwfilter format does not know (for example the
        misspelt C(srcporttend)), and filter parameters that are not valid.
      - V(false) accepts and ignores them, exactly as libvirt does, and reports each ignored item as
        a warning. Illegal values of known attributes are errors in both modes.
    type: bool
    default: true
  backend:
    description:
      - iptables/ip6tables backend used when bindings are rebuilt. V(auto) follows where the host's
        C(iptables) command points (C(iptables-nft) or C(iptables-legacy)).
    type: str
    choices: [auto, nft, legacy]
    default: auto
  ebtables_backend:
    description:
      - ebtables backend used when bindings are rebuilt. V(auto) follows the host's C(ebtables)
        command.
    type: str
    choices: [auto, nft, legacy]
    default: auto
  lock_timeout:
    description:
      - Seconds to wait for another run holding the O(state_dir) lock.
    type: int
    default: 60
notes:
  - When a rebuild of the bindings fails, the previous definition of the filter is restored and the
    task fails with the tool's message.
  - Check mode and diff mode are fully supported; in check mode nothing is written and no lock file
    is created.
  - Requires the C(lxml) Python library on the managed host.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
  diff_mode:
    description: Returns the canonical XML of the filter before and after the change.
    support: full
seealso:
  - name: libvirt network filter XML format
    description: The C(<filter>) document accepted by O(xml) and O(src).
    link: https://libvirt.org/formatnwfilter.html
requirements:
  - lxml
'''

EXAMPLES = r'''
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
'''

RETURN = r'''
filter:
  description: The filter after the run (V(present)), or the definition that was removed (V(absent)).
  returned: state is present or absent and the filter exists
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
ignored:
  description: Elements and attributes that were ignored because O(strict=false) (also reported as
    warnings).
  returned: state is present
  type: list
  elements: str
  sample: ["attribute srcporttend='24' of <tcp> (line 9)"]
'''

import os
import uuid

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import parse as nwfilter_parse
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import schema as nwfilter_schema
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import filters as store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock


def argument_spec():
    return dict(
        name=dict(type='str'),
        xml=dict(type='str'),
        src=dict(type='path'),
        state=dict(type='str', choices=['present', 'absent', 'gathered'], default='present'),
        state_dir=dict(type='path', default=store.DEFAULT_STATE_DIR),
        strict=dict(type='bool', default=True),
        backend=dict(type='str', choices=['auto', 'nft', 'legacy'], default='auto'),
        ebtables_backend=dict(type='str', choices=['auto', 'nft', 'legacy'], default='auto'),
        lock_timeout=dict(type='int', default=60),
    )


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


def rebuild_bindings(module, name, filters):
    """Re-apply the stored bindings after filter ``name`` changed; ``filters``
    holds every filter as it is after the change.  Returns the interfaces
    whose filter tree contains ``name`` (rebuilt, or to rebuild in check mode)."""
    # Imported here: only a change that affects bindings needs the xtables engine.
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import (
        NWFILTER_OWNERSHIP, XtablesEngine)
    params = module.params
    engine = XtablesEngine(NWFILTER_OWNERSHIP, backend=params['backend'], ebtables_backend=params['ebtables_backend'],
                           state_dir=params['state_dir'], lock_timeout=params['lock_timeout'])
    rebuilt, result = binding_store.rebuild_filter_users(
        params['state_dir'], name, engine, filters=filters, check_mode=module.check_mode,
        lock_timeout=params['lock_timeout'])
    for warning in result.warnings:
        module.warn(warning)
    return list(rebuilt)


def _restore(state_dir, name, previous):
    """Put back the stored definition of ``name`` as it was (None: there was none)."""
    if previous is None:
        store.remove_filter(state_dir, name)
    else:
        store.save_filter(state_dir, previous)


def _write(module, change):
    if change.write and not module.check_mode:
        if change.remove:
            store.remove_filter(module.params['state_dir'], change.name)
        else:
            store.save_filter(module.params['state_dir'], change.filter)


def rebuild_or_restore(module, change, filters, defined, bindings):
    """Rebuild the bindings ``change`` affects; if that fails, restore the
    previous definition of the filter and re-raise."""
    if not change.changed or not store.affected_bindings(change.name, filters, bindings):
        return []
    try:
        return rebuild_bindings(module, change.name, filters)
    except NetfilterError:
        if change.write and not module.check_mode:
            with state_lock(module.params['state_dir'], module.params['lock_timeout']):
                _restore(module.params['state_dir'], change.name, defined.get(change.name))
        raise


def _lock(module):
    check = module.check_mode
    return state_lock(module.params['state_dir'], module.params['lock_timeout'], exclusive=not check, create=not check)


def define(module, params):
    text, source = read_document(params)
    nwfilter = nwfilter_parse.parse_filter(text, source=source, strict=params['strict'])
    ignored = []
    if not params['strict']:
        root = nwfilter_parse.parse_xml_document(text, source, 'filter')
        ignored = nwfilter_schema.ignored_items(root)
        for item in ignored:
            module.warn("filter '%s': ignored %s (strict=false)" % (nwfilter.name, item))
    if params['name'] is not None and params['name'] != nwfilter.name:
        raise NetfilterError("name '%s' differs from the document's filter name '%s'" % (params['name'], nwfilter.name))
    store.validate_filter_name(nwfilter.name)
    state_dir = params['state_dir']
    with _lock(module):
        filters = store.load_filters(state_dir)
        defined = store.load_defined(state_dir)
        bindings = store.stored_bindings(state_dir)
        change = store.plan_define(nwfilter, filters, defined, str(uuid.uuid4()))
        _write(module, change)
    after = dict(filters)
    after[change.name] = change.filter
    # outside our lock: the binding store takes it itself
    rebuilt = rebuild_or_restore(module, change, after, defined, bindings)
    defined_names = set(defined) | ({change.name} if change.write or change.name in defined else set())
    result = dict(changed=change.changed or change.write, filter=store.describe_filter(change.filter, defined_names),
                  rebuilt=rebuilt, ignored=ignored)
    return change, result


def undefine(module, params):
    name = params['name']
    state_dir = params['state_dir']
    with _lock(module):
        filters = store.load_filters(state_dir)
        defined = store.load_defined(state_dir)
        bindings = store.stored_bindings(state_dir)
        change = store.plan_undefine(name, filters, defined, bindings)
        _write(module, change)
    after = dict(filters)
    if change.remove:
        if store.is_builtin(name):
            after[name] = store.builtin_filters()[name]
        else:
            del after[name]
    rebuilt = rebuild_or_restore(module, change, after, defined, bindings)
    for note in change.notes:
        module.warn(note)
    result = dict(changed=change.write, rebuilt=rebuilt)
    if name in defined:
        result['filter'] = store.describe_filter(defined[name], set(defined) - {name})
    return change, result


def gather(params):
    state_dir = params['state_dir']
    filters = store.load_filters(state_dir)
    defined_names = set(store.load_defined(state_dir))
    if params['name'] is not None:
        if params['name'] not in filters:
            raise NetfilterError("no filter named '%s' (defined or built-in)" % params['name'])
        filters = {params['name']: filters[params['name']]}
    return dict(changed=False, filters=[store.describe_filter(filters[n], defined_names) for n in sorted(filters)])


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('xml', 'src')],
        required_if=[('state', 'present', ('xml', 'src'), True), ('state', 'absent', ('name',))],
        supports_check_mode=True,
    )
    params = module.params
    if not nwfilter_parse.HAS_LXML:
        module.fail_json(msg=missing_required_lib('lxml'), exception=str(nwfilter_parse.LXML_IMPORT_ERROR))
    try:
        if params['state'] == 'gathered':
            module.exit_json(**gather(params))
        if params['state'] == 'present':
            change, result = define(module, params)
        else:
            change, result = undefine(module, params)
    except NetfilterError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='cannot access state_dir %s: %s' % (params['state_dir'], exc))
    if module._diff and (change.changed or change.write):
        path = os.path.join(store.filters_dir(params['state_dir']), change.name + store.SUFFIX)
        result['diff'] = dict(before=change.before, after=change.after,
                              before_header='%s (before)' % path, after_header='%s (after)' % path)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
