# -*- coding: utf-8 -*-
"""Where strict validation and libvirt differ, each case against a real libvirt.

* Parameters libvirt drops (name or value outside its character set, e.g.
  OpenStack nova's ``RASERVER=ADDRESS/128``): accepted with a warning when no
  rule uses them, so the rules equal libvirt's; refused, naming the parameter,
  its value, the filter and the rule, when a rule uses them (libvirt then
  refuses too, or silently uses something else: a filterref default, the rest
  of a list).
* Input libvirt reads by *ignoring* part of it (unknown attributes and
  elements, a second protocol, out-of-range rule priority, ``statematch='no'``,
  text after a MAC or a variable reference, a variable in ``state``, ...):
  strict mode refuses it naming the attribute; ``strict: false`` gives exactly
  libvirt's rules.
* Input libvirt *uses* in a form one might think odd (`` +80``): accepted in
  both modes with libvirt's rules.

All accepted cases run in one oracle call, one NIC each.
"""

from __future__ import annotations

import pytest

import oracle as harness
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError, NetfilterError

pytestmark = [pytest.mark.libvirt_oracle]

MAC = '52:54:00:fa:10:%02x'


def _one(name, rule, head=''):
    return {name: "<filter name='%s'%s>\n  %s\n</filter>\n" % (name, head, rule)}


def _drop_x(name):
    return "<filter name='%s'><rule action='drop' direction='out'><all dstipaddr='$X'/></rule></filter>" % name


TCP80 = "<rule action='drop' direction='out'><tcp dstportstart='80'/></rule>"

# name -> (filters, top filter, binding parameters, attribute strict mode names or None if strict accepts it)
IGNORED = {
    'unknown-attribute': (_one('lv-ua', "<rule action='drop' direction='out'>"
                                        "<tcp srcporttend='22' dstportstart='80'/></rule>"), 'lv-ua', {}, 'srcporttend'),
    'unknown-element-in-rule': (_one('lv-ue', "<rule action='drop' direction='out'><tcp dstportstart='80'/>"
                                              "<bogus/></rule>"), 'lv-ue', {}, '<bogus>'),
    'unknown-element-in-filter': (_one('lv-uf', '<bogus/>' + TCP80), 'lv-uf', {}, '<bogus>'),
    'second-protocol-in-rule': (_one('lv-tp', "<rule action='drop' direction='out'><tcp dstportstart='80'/>"
                                              "<udp dstportstart='53'/></rule>"), 'lv-tp', {}, '<udp>'),
    'unknown-attribute-on-rule': (_one('lv-ur', "<rule action='drop' direction='out' bogus='1'>"
                                                "<tcp dstportstart='80'/></rule>"), 'lv-ur', {}, 'bogus'),
    'unknown-attribute-on-filterref': ({'lv-fa': "<filter name='lv-fa'><filterref filter='lv-fa2' bogus='1'/></filter>",
                                        'lv-fa2': "<filter name='lv-fa2'>%s</filter>" % TCP80}, 'lv-fa', {}, 'bogus'),
    'rule-priority-out-of-range': (_one('lv-rp', "<rule action='drop' direction='out' priority='2000'>"
                                                 "<tcp dstportstart='80'/></rule>\n"
                                                 "<rule action='drop' direction='out' priority='600'>"
                                                 "<tcp dstportstart='81'/></rule>"), 'lv-rp', {}, 'priority'),
    'rule-priority-not-a-number': (_one('lv-pn', "<rule action='drop' direction='out' priority='400'>"
                                                 "<tcp dstportstart='81'/></rule>\n"
                                                 "<rule action='drop' direction='out' priority='0x10'>"
                                                 "<tcp dstportstart='80'/></rule>"), 'lv-pn', {}, 'priority'),
    'rule-priority-with-leading-blank': (_one('lv-pb', "<rule action='drop' direction='out' priority='300'>"
                                                       "<tcp dstportstart='81'/></rule>\n"
                                                       "<rule action='drop' direction='out' priority=' 100'>"
                                                       "<tcp dstportstart='80'/></rule>"), 'lv-pb', {}, None),
    'statematch-no-means-on': (_one('lv-sm', "<rule action='accept' direction='out' statematch='no'>"
                                             "<tcp dstportstart='80'/></rule>"), 'lv-sm', {}, 'statematch'),
    'gratuitous-other-text-means-false': (_one('lv-gr', "<rule action='drop' direction='out'>"
                                                        "<arp gratuitous='TRUE'/></rule>"), 'lv-gr', {}, 'gratuitous'),
    'comment-over-256-characters': (_one('lv-cm', "<rule action='drop' direction='out'><tcp dstportstart='80' "
                                                  "comment='%s'/></rule>" % ('c' * 300)), 'lv-cm', {}, 'comment'),
    'text-after-mac': (_one('lv-mj', "<rule action='drop' direction='out'><mac srcmacaddr='52:54:00:00:00:01 junk'/>"
                                     "</rule>"), 'lv-mj', {}, 'srcmacaddr'),
    'text-after-variable': (_one('lv-vj', "<rule action='drop' direction='out'><all dstipaddr='$X[0]junk'/></rule>"),
                            'lv-vj', {'X': ['1.1.1.1', '2.2.2.2']}, 'dstipaddr'),
    'variable-in-state': (_one('lv-sv', "<rule action='accept' direction='out'><tcp dstportstart='22' state='$S'/>"
                                        "</rule>"), 'lv-sv', {'S': 'NEW'}, 'state'),
    'variable-in-gratuitous': (_one('lv-gv', "<rule action='drop' direction='out'><arp gratuitous='$B'/></rule>"),
                               'lv-gv', {'B': 'true'}, 'gratuitous'),
    'attribute-in-two-elements': (_one('lv-a2', "<rule action='drop' direction='out'><tcp dstportstart='80'/>"
                                                "<tcp dstportstart='81'/></rule>"), 'lv-a2', {}, 'dstportstart'),
    'priority-without-chain': ({'lv-pc': "<filter name='lv-pc'><filterref filter='lv-pc2'/><rule action='drop' "
                                         "direction='out' priority='-600'><mac protocolid='0x1234'/></rule></filter>",
                                'lv-pc2': "<filter name='lv-pc2' priority='-700'><rule action='drop' direction='out'>"
                                          "<mac protocolid='0x4321'/></rule></filter>"}, 'lv-pc', {}, 'priority'),
    'match-other-than-no': (_one('lv-mm', "<rule action='drop' direction='out'><tcp match='maybe' "
                                          "dstportstart='80'/></rule>"), 'lv-mm', {}, 'match'),
    'two-uuids': (_one('lv-u2', '<uuid>11111111-2222-3333-4444-555555555555</uuid>'
                                '<uuid>11111111-2222-3333-4444-666666666666</uuid>' + TCP80), 'lv-u2', {}, 'uuid'),
    # used by libvirt as written: accepted in both modes
    'number-with-blank-and-sign': (_one('lv-nb', "<rule action='drop' direction='out'><tcp dstportstart=' +80'/>"
                                                 "</rule>"), 'lv-nb', {}, None),
    'filter-priority-with-blank-and-sign': ({'lv-fb': "<filter name='lv-fb'><filterref filter='lv-fb2'/>"
                                                      "<filterref filter='lv-fb3'/></filter>",
                                             'lv-fb2': "<filter name='lv-fb2' chain='mac-b' priority=' -790'>"
                                                       "<rule action='drop' direction='out'><mac protocolid='0x1234'/>"
                                                       "</rule></filter>",
                                             'lv-fb3': "<filter name='lv-fb3' chain='mac-c' priority='+5'>"
                                                       "<rule action='drop' direction='out'><mac protocolid='0x4321'/>"
                                                       "</rule></filter>"}, 'lv-fb', {}, None),
    'parameter-name-with-leading-digit': (_one('lv-ld', "<rule action='drop' direction='out'>"
                                                        "<all dstipaddr='$1X'/></rule>"), 'lv-ld', {'1X': '10.0.0.1'},
                                          None),
    # parameters libvirt drops and no rule uses (nova): accepted in both modes, with a warning
    'nova-raserver-unused': ({}, 'clean-traffic', {'IP': '10.0.0.9', 'RASERVER': '2001:db8:0:1::1/128'}, None),
    'empty-parameter-unused': (_one('lv-ep', TCP80), 'lv-ep', {'Z': ''}, None),
    'bad-parameter-name-unused': (_one('lv-bn', TCP80), 'lv-bn', {'a-b': '1'}, None),
    'filterref-parameter-unused': ({'lv-fp': "<filter name='lv-fp'><filterref filter='lv-fp2'>"
                                             "<parameter name='RASERVER' value='fd00::1/128'/></filterref></filter>",
                                    'lv-fp2': "<filter name='lv-fp2'>%s</filter>" % TCP80}, 'lv-fp', {}, None),
}
INTERFACES = dict((name, 'lv%d' % index) for index, name in enumerate(sorted(IGNORED)))


def _bindings():
    return [harness.Binding.make(INTERFACES[name], MAC % index, IGNORED[name][1], IGNORED[name][2])
            for index, name in enumerate(sorted(IGNORED))]


def _all_filters():
    filters = {}
    for name in sorted(IGNORED):
        filters.update(IGNORED[name][0])
    return filters


@pytest.fixture(scope='module')
def comparison(libvirt_oracle):
    return harness.compare(libvirt_oracle, _all_filters(), _bindings(), strict=False)


@pytest.mark.parametrize('name', sorted(IGNORED))
def test_lenient_rules_equal_libvirt(comparison, name):
    interface = INTERFACES[name]
    parts = harness.split_by_interface(comparison.libvirt, comparison.interfaces)
    assert '-A ' in parts[interface], 'libvirt made no rule for %s' % name
    diffs = comparison.interface_diffs()
    assert interface not in diffs, '%s (%s) differs from libvirt:\n%s' % (name, interface, diffs[interface])


@pytest.mark.parametrize('name', sorted(IGNORED))
def test_strict_refuses_what_libvirt_ignores_naming_the_attribute(name):
    filters, _top, _params, attribute = IGNORED[name]
    if attribute is None:
        harness.parse_all(filters, strict=True)  # accepted as libvirt accepts it
        return
    with pytest.raises(FilterError) as refused:
        harness.parse_all(filters, strict=True)
    assert attribute in str(refused.value), str(refused.value)


def test_strict_accepted_cases_compile_as_in_lenient_mode():
    names = [n for n in sorted(IGNORED) if IGNORED[n][3] is None]
    bindings = [b for b in _bindings() if b.interface in set(INTERFACES[n] for n in names)]
    filters = {}
    for name in names:
        filters.update(IGNORED[name][0])
    assert harness.compile_all(filters, bindings, strict=True) == harness.compile_all(filters, bindings, strict=False)


# Parameters libvirt drops that a rule uses: libvirt refuses, or silently uses something else; we refuse and say
# which parameter, value, filter and rule.  name -> (filters, top, parameters, what libvirt does, expected text)
USED = {
    'nova-raserver-used': (_one('lu-ra', "<rule action='accept' direction='in'><icmpv6 srcipaddr='$RASERVER'/></rule>"),
                           'lu-ra', {'RASERVER': 'fd00::1/128'}, 'refuses', "filter 'lu-ra', rule #1"),
    'filterref-parameter-used': ({'lu-fr': "<filter name='lu-fr'><filterref filter='lu-fr2'>"
                                           "<parameter name='X' value='1.2.3.4/8'/></filterref></filter>",
                                  'lu-fr2': _drop_x('lu-fr2')}, 'lu-fr', {}, 'refuses', "filter 'lu-fr2', rule #1"),
    'used-falls-back-to-filterref-default': ({'lu-dw': "<filter name='lu-dw'><filterref filter='lu-dw2'>"
                                                       "<parameter name='X' value='10.0.0.1'/></filterref></filter>",
                                              'lu-dw2': _drop_x('lu-dw2')}, 'lu-dw', {'X': '1.2.3.4/8'},
                                             '-d 10.0.0.1/32 -j DROP', "filter 'lu-dw2', rule #1"),
    'used-list-loses-an-element': (_one('lu-lp', "<rule action='drop' direction='out'><all dstipaddr='$X'/></rule>"),
                                   'lu-lp', {'X': ['1.1.1.1', '2.2.2.2/8', '3.3.3.3']}, '-d 3.3.3.3/32 -j DROP',
                                   "filter 'lu-lp', rule #1"),
}


@pytest.mark.parametrize('name', sorted(USED))
def test_used_invalid_parameter_refused_naming_it(libvirt_oracle, name):
    filters, top, params, libvirt_does, where = USED[name]
    binding = harness.Binding.make('lu0', '52:54:00:fa:11:01', top, params)
    if libvirt_does == 'refuses':
        with pytest.raises(harness.LibvirtRejected, match='unresolvable variables'):
            libvirt_oracle.dump(filters, [binding])
    else:
        # libvirt silently uses something else than what was asked
        assert libvirt_does in libvirt_oracle.dump(filters, [binding])
    with pytest.raises(NetfilterError) as refused:
        harness.compile_all(filters, [binding])
    text = str(refused.value)
    bad = [v for v in harness.Binding.make('x', 'x', 'x', params).parameter_dict().get('X', ['?'])
           if '/' in v] if 'X' in params else []
    for part in [where, 'interface lu0', 'libvirt drops such a parameter'] + ["'%s'" % v for v in bad]:
        assert part in text, (part, text)


def test_no_ip_learning_libvirt_leaves_the_nic_unfiltered_we_refuse(libvirt_oracle):
    """clean-traffic without IP: libvirt accepts the binding and starts learning the address from the
    guest's traffic; until then (as measured here) it installs no rule at all for the NIC. We do not
    learn addresses and refuse, asking for IP: fail closed (docs/nwfilter-engine.md, No IP learning)."""
    binding = harness.Binding.make('lnip0', '52:54:00:fa:12:01', 'clean-traffic', {})
    dump = libvirt_oracle.dump({}, [binding])
    assert 'lnip0' not in dump
    with pytest.raises(NetfilterError, match='does not learn addresses: pass the IP parameter'):
        harness.compile_all({}, [binding])


def test_comment_with_line_break_libvirt_accepts_we_refuse(libvirt_oracle):
    """F13: libvirt hands an IP-layer rule's comment to iptables as one argument, so a comment with
    '&#10;' loads there; *-restore input has one rule per line and cannot carry it. We refuse it in
    both modes, naming the comment (docs/nwfilter-engine.md); an Ethernet rule's comment is never
    emitted and stays accepted."""
    filters = _one('lc-nl', "<rule action='drop' direction='out'><tcp dstportstart='22' comment='a&#10;b'/></rule>"
                            "<rule action='drop' direction='out'><mac comment='c&#10;d'/></rule>")
    binding = harness.Binding.make('lcnl0', '52:54:00:fa:13:01', 'lc-nl', {})
    assert '--comment "a' in libvirt_oracle.dump(filters, [binding])
    for strict in (True, False):
        with pytest.raises(FilterError, match='comment with a line break') as refused:
            harness.compile_all(filters, [binding], strict=strict)
        assert "filter 'lc-nl'" in str(refused.value) and 'rule #1' in str(refused.value)
    harness.parse_all(_one('lc-eb', "<rule action='drop' direction='out'><mac comment='c&#10;d'/></rule>"))
