# -*- coding: utf-8 -*-
"""Compiler expectations written by us from the behaviour libvirt documents."""
import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError, ResolveError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter

MAC = '52:54:00:00:00:01'


def compile_one(body, attrs="name='f'", params=None, extra=()):
    docs = ["<filter %s>%s</filter>" % (attrs, body)] + list(extra)
    parsed = [parse_filter(d, strict=False) for d in docs]
    return compile_binding('vnet3', MAC, parsed[0].name, params or {}, dict((f.name, f) for f in parsed))


def chain(ruleset, family, name):
    table = ruleset.table(family, 'nat' if family == 'eb' else 'filter')
    found = table.chain(name) if table else None
    return [' '.join(r) for r in found.rules] if found else None


def test_out_tcp_accept_gets_conntrack_in_all_three_copies():
    rs = compile_one("<rule action='accept' direction='out'><tcp dstportstart='80'/></rule>")
    assert chain(rs, 'ip', 'FI-vnet3') == [
        '-p tcp --dport 80 -m conntrack --ctstate NEW,ESTABLISHED -m conntrack --ctdir Original -j RETURN']
    assert chain(rs, 'ip', 'FO-vnet3') == [
        '-p tcp --sport 80 -m conntrack --ctstate ESTABLISHED -m conntrack --ctdir Reply -j ACCEPT']
    assert chain(rs, 'ip', 'HI-vnet3') == chain(rs, 'ip', 'FI-vnet3')
    assert chain(rs, 'ip', 'libvirt-in') == ['-m physdev --physdev-in vnet3 -g FI-vnet3']
    assert chain(rs, 'ip', 'libvirt-out') == ['-m physdev --physdev-is-bridged --physdev-out vnet3 -g FO-vnet3']
    assert [(h.chain, h.args, h.position) for h in rs.table('ip', 'filter').hooks] == [
        ('FORWARD', ('-j', 'libvirt-in'), 1), ('FORWARD', ('-j', 'libvirt-out'), 2),
        ('FORWARD', ('-j', 'libvirt-in-post'), 3), ('INPUT', ('-j', 'libvirt-host-in'), 1)]
    assert rs.table('eb', 'nat') is None and rs.table('ip6', 'filter') is None


def test_explicit_state_keeps_only_matching_copies_even_for_drop():
    rs = compile_one("<rule action='drop' direction='in'><udp state='ESTABLISHED'/></rule>")
    assert chain(rs, 'ip', 'FI-vnet3') == [] and chain(rs, 'ip', 'HI-vnet3') == []
    assert chain(rs, 'ip', 'FO-vnet3') == ['-p udp -m conntrack --ctstate ESTABLISHED -j DROP']


def test_typed_icmp_inout_makes_no_rule_and_negation_goes_first():
    rs = compile_one("<rule action='accept' direction='inout'><icmp type='8'/></rule>"
                     "<rule action='drop' direction='out'><udp match='no' srcipaddr='10.0.0.1'/></rule>")
    assert chain(rs, 'ip', 'FI-vnet3') == ['-p udp ! --source 10.0.0.1 -j DROP']
    assert chain(rs, 'ip', 'FO-vnet3') == ['-p udp ! --destination 10.0.0.1 -j DROP']


def test_ipv6_rules_go_to_ip6tables():
    rs = compile_one("<rule action='accept' direction='in'><icmpv6 type='128'/></rule>")
    assert chain(rs, 'ip6', 'FO-vnet3') == ['-p icmpv6 --icmpv6-type 128 -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT']
    assert rs.table('ip', 'filter') is None


def test_ebtables_layout_with_subchains_interleaved_by_priority():
    rs = compile_one(
        "<filterref filter='spoof'/>"
        "<rule action='accept' direction='out' priority='-650'><mac protocolid='ipv4'/></rule>"
        "<rule action='accept' direction='inout' priority='-500'><mac protocolid='arp'/></rule>"
        "<rule action='drop' direction='inout' priority='1000'/>",
        extra=["<filter name='spoof' chain='ipv4-ip' priority='-710'>"
               "<rule action='return' direction='out'><ip srcipaddr='$IP'/></rule>"
               "<rule action='drop' direction='out' priority='1000'/></filter>"],
        params={'IP': ['10.0.0.7', '10.0.0.8']})
    assert chain(rs, 'eb', 'libvirt-I-vnet3') == [
        '-p 0x0800 -j I-vnet3-ipv4-ip', '-p 0x800 -j ACCEPT', '-p 0x806 -j ACCEPT', '-j DROP']
    assert chain(rs, 'eb', 'libvirt-O-vnet3') == ['-p 0x806 -j ACCEPT', '-j DROP']
    assert chain(rs, 'eb', 'I-vnet3-ipv4-ip') == [
        '-p ipv4 --ip-source 10.0.0.7 -j RETURN', '-p ipv4 --ip-source 10.0.0.8 -j RETURN', '-j DROP']
    hooks = rs.table('eb', 'nat').hooks
    assert [(h.chain, h.args) for h in hooks] == [
        ('PREROUTING', ('-i', 'vnet3', '-j', 'libvirt-I-vnet3')), ('POSTROUTING', ('-o', 'vnet3', '-j', 'libvirt-O-vnet3'))]


def test_inout_ethernet_rule_reverses_the_from_guest_copy():
    rs = compile_one("<rule action='reject' direction='inout'><arp arpsrcipaddr='10.0.0.1' arpdstmacaddr='1:2:3:4:5:6'/></rule>")
    assert chain(rs, 'eb', 'libvirt-I-vnet3') == ['-p 0x806 --arp-ip-dst 10.0.0.1/32 --arp-mac-src 01:02:03:04:05:06 -j DROP']
    assert chain(rs, 'eb', 'libvirt-O-vnet3') == ['-p 0x806 --arp-ip-src 10.0.0.1/32 --arp-mac-dst 01:02:03:04:05:06 -j DROP']


def test_mac_variable_defaults_to_binding_mac_and_user_value_wins():
    body = "<rule action='return' direction='out'><mac srcmacaddr='$MAC'/></rule>"
    assert chain(compile_one(body), 'eb', 'libvirt-I-vnet3') == ['-s 52:54:00:00:00:01 -j RETURN']
    assert chain(compile_one(body, params={'MAC': '1:2:3:4:5:6'}), 'eb', 'libvirt-I-vnet3') == ['-s 1:2:3:4:5:6 -j RETURN']


def test_render_is_restore_input():
    rs = compile_one("<rule action='accept' direction='out' statematch='false'><all comment='two words'/></rule>")
    text = rs.render('ip')
    assert text.startswith('*filter\n:libvirt-in - [0:0]\n')
    assert '-A FI-vnet3 -p all -m comment --comment "two words" -j RETURN\n' in text
    assert text.endswith('-I INPUT 1 -j libvirt-host-in\nCOMMIT\n')
    assert rs.render('eb') == '' and rs.render('ip6') == ''


@pytest.mark.parametrize('interface', ['', 'vnet0;reboot', 'a b', '$(id)', 'x' * 16, 'vnet+', '../etc'])
def test_hostile_interface_names_rejected(interface):
    flt = parse_filter("<filter name='f'/>")
    with pytest.raises(BindingError):
        compile_binding(interface, MAC, 'f', {}, {'f': flt})


def test_bad_mac_and_continue_on_iptables_rejected():
    flt = parse_filter("<filter name='f'><rule action='continue' direction='out'><udp/></rule></filter>")
    with pytest.raises(BindingError):
        compile_binding('vnet0', '52:54:00:zz:00:01', 'f', {}, {'f': flt})
    with pytest.raises(ResolveError, match='continue'):
        compile_binding('vnet0', MAC, 'f', {}, {'f': flt})


def test_fingerprint_tracks_every_input():
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import binding_fingerprint
    docs = ["<filter name='top'><filterref filter='leaf'/></filter>",
            "<filter name='leaf'><rule action='accept' direction='out'><tcp srcipaddr='$IP'/></rule></filter>",
            "<filter name='other'/>"]
    flts = dict((f.name, f) for f in (parse_filter(d) for d in docs))
    base = binding_fingerprint('vnet0', MAC, 'top', {'IP': '10.0.0.1'}, flts)
    assert base == binding_fingerprint('vnet0', MAC, 'top', {'IP': '10.0.0.1'}, dict(flts))
    assert base != binding_fingerprint('vnet1', MAC, 'top', {'IP': '10.0.0.1'}, flts)
    assert base != binding_fingerprint('vnet0', MAC, 'top', {'IP': '10.0.0.2'}, flts)
    changed = dict(flts, leaf=parse_filter(docs[1].replace('accept', 'drop')))
    assert base != binding_fingerprint('vnet0', MAC, 'top', {'IP': '10.0.0.1'}, changed)
    unrelated = dict(flts, other=parse_filter("<filter name='other' chain='arp'/>"))
    assert base == binding_fingerprint('vnet0', MAC, 'top', {'IP': '10.0.0.1'}, unrelated)


def test_arp_dst_reuses_src_mask_only_with_a_src_address():
    # Found by the differential suite against libvirt 9.0 (tests/differential/FINDINGS.md F1).
    alone = compile_one("<rule action='drop' direction='out'><arp arpsrcipmask='21' arpdstipaddr='10.1.2.3'/></rule>")
    assert chain(alone, 'eb', 'libvirt-I-vnet3') == ['-p 0x806 --arp-ip-dst 10.1.2.3/32 -j DROP']
    both = compile_one("<rule action='drop' direction='out'>"
                       "<arp arpsrcipaddr='10.0.0.1' arpsrcipmask='24' arpdstipaddr='10.0.0.2'/></rule>")
    assert chain(both, 'eb', 'libvirt-I-vnet3') == ['-p 0x806 --arp-ip-src 10.0.0.1/24 --arp-ip-dst 10.0.0.2/24 -j DROP']


def test_overwritten_variable_still_iterates_and_is_required():
    # libvirt keeps every variable access it parsed (differential FINDINGS F2/F3).
    body = "<rule action='drop' direction='out'><all dstipaddr='$V'/><all dstipaddr='10.0.0.1'/></rule>"
    rs = compile_one(body, params={'V': ['1.1.1.1', '2.2.2.2', '3.3.3.3']})
    assert chain(rs, 'ip', 'FI-vnet3') == ['-p all --destination 10.0.0.1 -j DROP'] * 3
    with pytest.raises(ResolveError, match='V'):
        compile_one(body)


def test_missing_ip_explains_that_addresses_are_not_learned():
    body = "<rule action='return' direction='out'><ip srcipaddr='$IP'/></rule>"
    with pytest.raises(ResolveError, match='does not learn addresses: pass the IP parameter'):
        compile_one(body)
    with pytest.raises(ResolveError, match="learning value 'invalid' of CTRL_IP_LEARNING"):
        compile_one(body, params={'CTRL_IP_LEARNING': 'invalid'})


def test_vlan_id_4095_refused_at_compile_time():
    rs = compile_one("<rule action='accept' direction='out'><vlan vlanid='4094'/></rule>")
    assert chain(rs, 'eb', 'libvirt-I-vnet3') == ['-p 0x8100 --vlan-id 4094 -j ACCEPT']
    with pytest.raises(ResolveError, match='vlanid'):
        compile_one("<rule action='accept' direction='out'><vlan vlanid='0xfff'/></rule>")


def test_too_long_ebtables_subchain_name_refused():
    # differential FINDINGS F4: ebtables-nft allows 28 characters.
    docs = ["<filter name='t'><filterref filter='long'/></filter>",
            "<filter name='long' chain='ipv4-abcdefg'><rule action='drop' direction='out'><ip/></rule></filter>"]
    flts = dict((f.name, f) for f in (parse_filter(d) for d in docs))
    with pytest.raises(ResolveError, match='at most 10 characters'):
        compile_binding('edgeinterface06', MAC, 't', {}, flts)
    assert compile_binding('edgeinterfac', MAC, 't', {}, flts).table('eb', 'nat').chain('I-edgeinterfac-ipv4-abcdefg')


def test_empty_ipset_refused_empty_state_means_no_state():
    assert chain(compile_one("<rule action='drop' direction='in'><udp state=''/></rule>"),
                 'ip', 'FO-vnet3') == ['-p udp -j DROP']
    with pytest.raises(ResolveError, match='empty ipset'):
        compile_one("<rule action='accept' direction='in'><all ipset='' ipsetflags='src'/></rule>")


def test_ip_mac_mask_keeps_its_own_negation():
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter as pf
    rule = pf("<filter name='f'><rule action='drop' direction='out'><ip dstmacaddr='1:2:3:4:5:6'/>"
              "<ip match='no' dstmacmask='ff:ff:ff:ff:ff:ff'/></rule></filter>").rules[0]
    assert rule.get('dstmacmask').negated and not rule.get('dstmacaddr').negated


def test_state_from_several_elements_is_the_union_and_variable_state_is_ignored():
    # differential FINDINGS F8 and F5
    rs = compile_one("<rule action='drop' direction='out'><tcp state='NEW'/><tcp state='ESTABLISHED'/></rule>")
    assert chain(rs, 'ip', 'FI-vnet3') == ['-p tcp -m conntrack --ctstate NEW,ESTABLISHED -j DROP']
    rs = compile_one("<rule action='drop' direction='out'><tcp state='NEW'/><tcp match='no' state='NONE'/></rule>")
    assert chain(rs, 'ip', 'FI-vnet3') == ['-p tcp -j DROP'] and chain(rs, 'ip', 'FO-vnet3') == []
    rs = compile_one("<rule action='accept' direction='out'><tcp dstportstart='22' state='$S'/></rule>",
                     params={'S': ['NEW', 'ESTABLISHED']})
    assert chain(rs, 'ip', 'FO-vnet3') == ['-p tcp --sport 22 -m conntrack --ctstate ESTABLISHED '
                                           '-m conntrack --ctdir Reply -j ACCEPT'] * 2


@pytest.mark.parametrize('body', [
    "<rule action='drop' direction='out'><tcp comment='$D'/></rule>",
    "<rule action='return' direction='out'><tcp flags='$D'/></rule>",
])
def test_variables_libvirt_cannot_instantiate_are_refused(body):
    with pytest.raises(ResolveError, match='variable cannot be used'):
        compile_one(body, params={'D': '5'})


@pytest.mark.parametrize('params', [{'X': '1.2.3.4/8'}, {'X': ''}, {'X': ['1.1.1.1', 'a b']}])
def test_invalid_parameter_value_used_by_a_rule_is_refused(params):
    # libvirt drops the value silently (X undefined, or one list element fewer): we say which rule needs it
    with pytest.raises(ResolveError) as refused:
        compile_one("<rule action='accept' direction='out' priority='100'><tcp dstportstart='22'/></rule>"
                    "<rule action='drop' direction='out' priority='200'><all dstipaddr='$X'/></rule>", params=params)
    text = str(refused.value)
    bad = [v for v in (params['X'] if isinstance(params['X'], list) else [params['X']]) if v != '1.1.1.1'][0]
    for part in ("interface vnet3", "filter 'f'", 'rule #2 (priority 200', 'parameter X', repr(bad), '$X'):
        assert part in text, (part, text)
    assert 'parameter names must' not in text


def test_invalid_parameter_used_through_a_filterref_default_is_refused():
    # libvirt would silently use the filterref's default 10.0.0.1 instead of the user's value
    child = "<filter name='c'><rule action='drop' direction='out'><all dstipaddr='$X'/></rule></filter>"
    with pytest.raises(ResolveError, match="filter 'c', rule #1.*parameter X: value '1.2.3.4/8'"):
        compile_one("<filterref filter='c'><parameter name='X' value='10.0.0.1'/></filterref>",
                    params={'X': '1.2.3.4/8'}, extra=[child])


@pytest.mark.parametrize('params', [{'RASERVER': 'fd00::1/128'}, {'Z': ''}, {'bad-name': '1'}])
def test_invalid_parameter_nobody_uses_is_ignored_with_a_warning(params):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import parameter_warnings
    body = "<rule action='drop' direction='out'><all dstipaddr='$X'/></rule>"
    with_bad = compile_one(body, params=dict(params, X='10.0.0.1'))
    assert with_bad == compile_one(body, params={'X': '10.0.0.1'})
    filters = {'f': parse_filter("<filter name='f'>%s</filter>" % body)}
    (warning,) = parameter_warnings('vnet3', 'f', filters, dict(params, X='10.0.0.1'))
    name, value = list(params.items())[0]
    assert 'interface vnet3: parameter %s=%r is ignored' % (name, value) in warning
    assert "filter 'f'" in warning


def test_nova_raserver_with_prefix_length_on_clean_traffic():
    # OpenStack nova passes RASERVER=<address>/128; clean-traffic never uses it (libvirt accepts the binding)
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import parameter_warnings
    filters = builtin_filters()
    params = {'IP': '10.0.0.5', 'RASERVER': '2001:db8:0:1::1/128'}
    assert compile_binding('vnet3', MAC, 'clean-traffic', params, filters) == \
        compile_binding('vnet3', MAC, 'clean-traffic', {'IP': '10.0.0.5'}, filters)
    (warning,) = parameter_warnings('vnet3', 'clean-traffic', filters, params)
    assert "RASERVER='2001:db8:0:1::1/128' is ignored" in warning and "'/'" in warning
