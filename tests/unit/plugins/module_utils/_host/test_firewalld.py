# -*- coding: utf-8 -*-
"""firewalld zone planning against a fake firewall-cmd."""
from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host import firewalld as network_firewalld
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import NetworkSpecError
from ansible_collections.hypervisor.netfilter.tests.lib.network_spec import network_spec as _spec


class FakeFirewalld(network_firewalld.Firewalld):
    """Answers firewall-cmd reads from a dict; records writes."""

    def __init__(self, running=True, version='1.3.3', zones=('public',), policies=(), bound=None):
        self._running = running
        self._version = version
        self.zones = set(zones)
        self.policies = set(policies)
        self.bound = dict(bound or {})  # (interface, permanent) -> zone
        self.tool = 'firewall-cmd'
        self.busctl = None  # the firewall-cmd path; the busctl path: test_busctl_*
        self.writes = []

    def running(self):
        return self._running

    def cmd(self, *args, **kwargs):
        if kwargs.get('write'):
            self.writes.append(args)
            return 0, '', ''
        permanent = args[0] == '--permanent'
        last = args[-1]
        if last == '--version':
            return 0, self._version, ''
        if last == '--get-zones':
            return 0, ' '.join(sorted(self.zones)), ''
        if last == '--get-policies':
            return 0, ' '.join(sorted(self.policies)), ''
        if last.startswith('--get-zone-of-interface='):
            zone = self.bound.get((last.split('=', 1)[1], permanent))
            return (0, zone, '') if zone else (2, 'no zone', '')
        raise AssertionError('unexpected firewall-cmd %r' % (args,))


def test_no_firewalld_means_nothing_unless_a_zone_is_asked_for():
    assert network_firewalld.plan(_spec(), 'present', fw=FakeFirewalld(running=False)) is None
    with pytest.raises(NetworkSpecError, match='zone z requested for network a but firewalld is not active'):
        network_firewalld.plan(_spec(zone='z'), 'present', fw=FakeFirewalld(running=False))


def test_missing_libvirt_zone_is_defined_then_bound():
    fw = FakeFirewalld()
    plan = network_firewalld.plan(_spec(), 'present', fw=fw)
    assert plan.zone == 'libvirt'
    assert plan.commands[0] == ('--permanent', '--new-zone=libvirt')
    assert ('--permanent', '--zone=libvirt', '--set-target=ACCEPT') in plan.commands
    assert ('--reload',) in plan.commands and plan.reloads
    assert plan.commands[-2:] == (('--zone=libvirt', '--change-interface=br-a'),
                                  ('--permanent', '--zone=libvirt', '--change-interface=br-a'))
    assert fw.writes == []  # planning never writes


def test_bound_already_means_no_change():
    fw = FakeFirewalld(zones=('public', 'libvirt'),
                       bound={('br-a', False): 'libvirt', ('br-a', True): 'libvirt'})
    plan = network_firewalld.plan(_spec(), 'present', fw=fw)
    assert plan.zone == 'libvirt' and not plan.changed


def test_routed_zone_needs_policies_and_new_enough_firewalld():
    fw = FakeFirewalld(zones=('public', 'libvirt', 'libvirt-routed'), policies=('libvirt-routed-in',))
    plan = network_firewalld.plan(_spec(mode='route'), 'present', fw=fw)
    assert plan.zone == 'libvirt-routed'
    assert ('--permanent', '--new-policy=libvirt-routed-out') in plan.commands
    assert ('--permanent', '--new-policy=libvirt-routed-in') not in plan.commands
    old = FakeFirewalld(version='0.8.2', zones=('public', 'libvirt'))
    assert network_firewalld.plan(_spec(mode='route'), 'present', fw=old).zone == 'libvirt'
    too_old = FakeFirewalld(version='0.6.3')
    with pytest.raises(NetworkSpecError, match='firewalld 0.6.3 is too old'):
        network_firewalld.plan(_spec(), 'present', fw=too_old)


def test_open_network_and_absent():
    assert network_firewalld.plan(_spec(mode='open'), 'present', fw=FakeFirewalld()).zone is None
    fw = FakeFirewalld(zones=('public', 'libvirt'), bound={('br-a', False): 'libvirt', ('br-a', True): 'libvirt'})
    plan = network_firewalld.plan(_spec(), 'absent', previous_zone='libvirt', fw=fw)
    assert plan.commands == (('--zone=libvirt', '--remove-interface=br-a'),
                             ('--permanent', '--zone=libvirt', '--remove-interface=br-a'))
    assert not network_firewalld.plan(_spec(), 'absent', previous_zone=None, fw=fw).changed


class BusRunner:
    """A Runner that answers busctl like firewalld 1.3 does, and firewall-cmd from a table."""

    def __init__(self, answers, firewall_cmd=None):
        self.answers = answers  # (busctl args after --auto-start=no) -> (rc, stdout)
        self.firewall_cmd = firewall_cmd or {}
        self.calls = []

    def run(self, argv, kind='read', **_kwargs):
        self.calls.append((kind, tuple(argv)))
        if argv[0] == 'busctl':
            assert argv[1:3] == ['--system', '--auto-start=no']
            rc, out = self.answers.get(tuple(argv[3:]), (1, ''))
            return rc, out, '' if rc == 0 else 'Failed: no such thing'
        return self.firewall_cmd.get(tuple(argv[1:]), (1, '', 'unexpected'))


_FW = ('org.fedoraproject.FirewallD1', '/org/fedoraproject/FirewallD1')
_CONFIG = ('org.fedoraproject.FirewallD1', '/org/fedoraproject/FirewallD1/config',
           'org.fedoraproject.FirewallD1.config')


def _bus_fw(runner):
    fw = network_firewalld.Firewalld(runner)
    fw.tool, fw.busctl = 'firewall-cmd', 'busctl'
    return fw


def test_busctl_answers_every_question_of_an_in_sync_plan_without_firewall_cmd():
    runner = BusRunner({
        ('get-property',) + _FW + ('org.fedoraproject.FirewallD1', 'state', 'version'):
            (0, 's "RUNNING"\ns "1.3.3"\n'),
        ('call',) + _FW + ('org.fedoraproject.FirewallD1.zone', 'getZoneOfInterface', 's', 'br-a'):
            (0, 's "libvirt"\n'),
        ('call',) + _CONFIG + ('getZoneOfInterface', 's', 'br-a'): (0, 's "libvirt"\n'),
        ('call',) + _CONFIG + ('getZoneNames',): (0, 'as 3 "libvirt" "public" "we\\"ird"\n'),
    })
    fw = _bus_fw(runner)
    fw_plan = network_firewalld.plan(_spec(), 'present', fw=fw)
    assert fw_plan.zone == 'libvirt' and not fw_plan.changed
    assert fw.names('zones', permanent=True) == {'libvirt', 'public', 'we"ird'}
    assert all(argv[0] == 'busctl' for _kind, argv in runner.calls)
    assert fw.version() == (1, 3, 3)


def test_busctl_no_zone_not_running_and_errors_fall_back_to_firewall_cmd():
    runner = BusRunner({
        ('call',) + _FW + ('org.fedoraproject.FirewallD1.zone', 'getZoneOfInterface', 's', 'br-a'): (0, 's ""\n'),
    }, firewall_cmd={('--state',): (252, 'not running\n', ''),
                     ('--permanent', '--get-zone-of-interface=br-a'): (0, 'trusted\n', '')})
    fw = _bus_fw(runner)
    assert fw.zone_of('br-a') is None
    assert fw.zone_of('br-a', permanent=True) == 'trusted'  # busctl failed: firewall-cmd asked
    assert fw.running() is False  # busctl failed (no such name): firewall-cmd --state decides
    assert [argv[0] for _kind, argv in runner.calls] == ['busctl', 'busctl', 'firewall-cmd', 'busctl', 'firewall-cmd']
    starting = _bus_fw(BusRunner({('get-property',) + _FW + ('org.fedoraproject.FirewallD1', 'state', 'version'):
                                  (0, 's "INIT"\ns "1.3.3"\n')}))
    assert starting.running() is False
    no_tool = _bus_fw(BusRunner({}))
    no_tool.tool = None
    assert no_tool.running() is False and no_tool.runner.calls == []
