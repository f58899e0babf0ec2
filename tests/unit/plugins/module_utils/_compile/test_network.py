# -*- coding: utf-8 -*-
"""Compilers of the virtual network rules (iptables and nftables layouts)."""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.tests.lib import libvirt_commands as network_commands
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import network_iptables as ipt
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import network_nftables as nft
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import spec_from_options


def _spec(name='a', bridge='br-a', mode='nat', **kwargs):
    params = dict(name=name, bridge=bridge, forward_mode=mode, forward_dev=None, ipv4=None, ipv6=None,
                  ipv6_no_gateway=None, nat=None, dns=None, zone=None)
    params.update(kwargs)
    return spec_from_options(params)


def test_render_argv_follows_libvirts_line_breaks_and_quoting():
    text = network_commands.render_argv(('iptables', '-w', '--table', 'nat', '--insert', 'X', '--source', 'N',
                                         '!', '--destination', 'N', '--jump', 'RETURN'))
    assert text == ("iptables \\\n-w \\\n--table nat \\\n--insert X \\\n--source N '!' \\\n"
                    "--destination N \\\n--jump RETURN\n")
    assert network_commands.render_argv(('nft', '-ae', 'insert', 'rule', 'ip')) == \
        'nft \\\n-ae insert \\\nrule \\\nip\n'
    assert network_commands.quote_word('') == "''"
    assert network_commands.quote_word("it's") == "'it'\\''s'"


def test_ruleset_is_the_reverse_of_libvirts_inserts():
    spec = _spec(ipv4={'address': '10.1.0.1/24', 'dhcp': True})
    ruleset = ipt.compile_ruleset([spec])
    fwo = ruleset.table('ip', 'filter').chain('LIBVIRT_FWO')
    assert fwo.rules == (('--source', '10.1.0.0/24', '--in-interface', 'br-a', '--jump', 'ACCEPT'),
                         ('--in-interface', 'br-a', '--jump', 'REJECT'))
    prt = ruleset.table('ip', 'nat').chain('LIBVIRT_PRT')
    assert [r[-1] for r in prt.rules] == ['RETURN', 'RETURN', '1024-65535', '1024-65535', 'MASQUERADE']
    mangle = ruleset.table('ip', 'mangle').chain('LIBVIRT_PRT')
    assert mangle.rules[0][-2:] == ('CHECKSUM', '--checksum-fill')
    # IPv4-only network: ip6tables still gets the (empty) private chains, as libvirt makes them
    assert [c.rules for c in ruleset.table('ip6', 'filter').chains] == [()] * 5


def test_forward_hooks_end_in_libvirts_order():
    text = ipt.compile_ruleset([_spec(ipv4={'address': '10.1.0.1/24'})]).render('ip')
    hooks = [line for line in text.splitlines() if line.startswith('-I FORWARD')]
    assert hooks == ['-I FORWARD 1 --jump LIBVIRT_FWX', '-I FORWARD 2 --jump LIBVIRT_FWI',
                     '-I FORWARD 3 --jump LIBVIRT_FWO']


def test_later_networks_sit_above_earlier_ones():
    first = _spec('a', 'br-a', ipv4={'address': '10.1.0.1/24'})
    second = _spec('b', 'br-b', ipv4={'address': '10.2.0.1/24'})
    fwx = ipt.compile_ruleset([first, second]).table('ip', 'filter').chain('LIBVIRT_FWX').rules
    assert [r[1] for r in fwx] == ['br-b', 'br-a']
    nft_cross = nft.compile_ruleset([first, second]).table('ip').chain('guest_cross').rules
    assert [r[1] for r in nft_cross] == ['br-b', 'br-a']


def test_open_networks_have_no_rules_and_isolated_only_general_ones():
    assert ipt.compile_ruleset([_spec(mode='open', ipv4={'address': '10.1.0.1/24'})]).tables == ()
    assert nft.compile_ruleset([_spec(mode='open', ipv4={'address': '10.1.0.1/24'})]).tables == ()
    isolated = ipt.compile_ruleset([_spec(mode='isolated', ipv4={'address': '10.1.0.1/24'})])
    assert isolated.table('ip', 'nat').chain('LIBVIRT_PRT').rules == ()
    assert len(isolated.table('ip', 'filter').chain('LIBVIRT_FWO').rules) == 1


def test_snat_range_targets_and_forward_dev():
    spec = _spec(forward_dev='eth9', ipv4={'address': '10.1.0.1/24'},
                 nat={'addresses': {'start': '198.51.100.5', 'end': '198.51.100.5'},
                      'ports': {'start': 2000, 'end': 3000}, 'ipv6': False})
    rules = ipt.compile_ruleset([spec]).table('ip', 'nat').chain('LIBVIRT_PRT').rules
    assert rules[0][:2] == ('--out-interface', 'eth9')  # don't-masquerade: DEV first
    assert rules[2][-6:-2] == ('--out-interface', 'eth9', '--jump', 'SNAT')
    assert rules[2][-2:] == ('--to-source', '198.51.100.5-198.51.100.5:2000-3000')
    assert rules[4][-6:] == ('--out-interface', 'eth9', '--jump', 'SNAT', '--to-source',
                             '198.51.100.5-198.51.100.5')
    nat_rules = nft.compile_ruleset([spec]).table('ip').chain('guest_nat').rules
    assert nat_rules[2][-3:] == ('snat', 'to', '198.51.100.5-198.51.100.5:2000-3000')
    assert nat_rules[0][:2] == ('oifname', 'eth9')


def test_ipv6_in_nat_mode_is_routed_unless_nat_ipv6():
    routed = _spec(ipv6={'address': 'fd00:1::1'})
    fwi = ipt.compile_ruleset([routed]).table('ip6', 'filter').chain('LIBVIRT_FWI').rules
    assert fwi[0] == ('--destination', 'fd00:1::/64', '--out-interface', 'br-a', '--jump', 'ACCEPT')
    masq = _spec(ipv6={'address': 'fd00:1::1'}, nat={'ipv6': True, 'addresses': None, 'ports': None})
    prt = ipt.compile_ruleset([masq]).table('ip6', 'nat').chain('LIBVIRT_PRT').rules
    assert prt[0] == ('--source', 'fd00:1::/64', '--destination', 'ff02::/16', '--jump', 'RETURN')
    assert len(prt) == 4


def test_nft_script_shape():
    script = nft.compile_ruleset([_spec(ipv4={'address': '10.1.0.1/24'})]).render()
    assert script.startswith('table ip libvirt_network {\n\tchain forward {\n'
                             '\t\ttype filter hook forward priority 0; policy accept;\n'
                             '\t\tcounter jump guest_cross\n\t\tcounter jump guest_input\n'
                             '\t\tcounter jump guest_output\n\t}\n')
    assert '\t\tiif "br-a" oif "br-a" counter accept\n' in script
    assert '\t\tip saddr 10.1.0.0/24 ip daddr != 10.1.0.0/24 counter masquerade\n' in script
    assert 'table ip6 libvirt_network {' in script
