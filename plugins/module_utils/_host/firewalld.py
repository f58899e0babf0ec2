# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewalld integration of a virtual network, as libvirt does it.

When firewalld runs, libvirt puts a network's bridge into a zone before it
adds any rule: the ``zone`` given, else ``libvirt-routed`` for routed networks
(when that zone and its policies exist), else ``libvirt``. ``open`` networks
get a zone only when one is given. Without firewalld nothing is touched (an
explicit zone is then an error, as in libvirt).

libvirt ships the zone/policy files with its package; this module, running on
hosts without libvirt, defines equivalent ones itself through firewalld's own
interface (``firewall-cmd --permanent`` followed by one ``--reload``) when they
are missing. The definitions below are ours:

* zone ``libvirt``: target ACCEPT (forwarded guest traffic is not firewalld's
  business: libvirt's own rules decide), host services dhcp, dhcpv6, dns, ssh,
  tftp and the icmp/ipv6-icmp protocols allowed, and a lowest-priority reject
  rule for all other traffic to the host (rich-rule priorities: firewalld 0.7+);
* zone ``libvirt-routed``: no settings; routed networks get their behaviour
  from three policies (firewalld 0.9+): ``libvirt-routed-in`` (ANY ->
  libvirt-routed, accept), ``libvirt-routed-out`` (libvirt-routed -> ANY,
  accept) and ``libvirt-to-host`` (libvirt-routed -> HOST, reject except the
  same services and protocols).

The bridge is bound to its zone both at runtime and permanently (so a
firewalld restart keeps it). ``state: absent`` removes the binding.
"""

from __future__ import annotations

import dataclasses
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import HostError, Runner, find_tool
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import NetworkSpecError

HOST_SERVICES = ('dhcp', 'dhcpv6', 'dns', 'ssh', 'tftp')
HOST_PROTOCOLS = ('icmp', 'ipv6-icmp')
LIBVIRT_ZONE = 'libvirt'
ROUTED_ZONE = 'libvirt-routed'
ROUTED_POLICIES = ('libvirt-routed-in', 'libvirt-routed-out', 'libvirt-to-host')
MIN_ZONE_VERSION = (0, 7, 0)
MIN_POLICY_VERSION = (0, 9, 0)


class FirewalldError(NetworkSpecError):
    """firewalld cannot give the network its zone (not running, too old, zone missing)."""


def _zone_definition(name):
    """firewall-cmd argument lists that create our definition of ``name``
    (firewall-cmd takes one kind of option per call; repeats are fine)."""
    perm = ('--permanent',)
    services = tuple('--add-service=' + s for s in HOST_SERVICES)
    protocols = tuple('--add-protocol=' + p for p in HOST_PROTOCOLS)
    if name == LIBVIRT_ZONE:
        zone = perm + ('--zone=' + name,)
        return (
            perm + ('--new-zone=' + name,),
            zone + ('--set-target=ACCEPT',),
            zone + ('--set-short=libvirt guests',),
            zone + ('--set-description=Bridges of libvirt-style virtual networks: forwarding is '
                    'decided by the network rules; to the host only DHCP, DNS, TFTP, SSH and ICMP.',),
            zone + services,
            zone + protocols,
            zone + ('--add-rich-rule=rule priority="32767" reject',),
        )
    if name == ROUTED_ZONE:
        return (perm + ('--new-zone=' + name,),
                perm + ('--zone=' + name, '--set-short=libvirt routed guests'))
    policy = perm + ('--policy=' + name,)
    if name == 'libvirt-routed-in':
        return (perm + ('--new-policy=' + name,),
                policy + ('--add-ingress-zone=ANY',),
                policy + ('--add-egress-zone=' + ROUTED_ZONE,),
                policy + ('--set-target=ACCEPT',))
    if name == 'libvirt-routed-out':
        return (perm + ('--new-policy=' + name,),
                policy + ('--add-ingress-zone=' + ROUTED_ZONE,),
                policy + ('--add-egress-zone=ANY',),
                policy + ('--set-target=ACCEPT',))
    if name == 'libvirt-to-host':
        return (perm + ('--new-policy=' + name,),
                policy + ('--add-ingress-zone=' + ROUTED_ZONE,),
                policy + ('--add-egress-zone=HOST',),
                policy + ('--set-target=REJECT',),
                policy + services,
                policy + protocols)
    raise FirewalldError('no built-in definition for firewalld object %r' % name)


@dataclasses.dataclass(frozen=True)
class FirewalldPlan:
    zone: str | None  # the zone the bridge ends up in (None: none of ours)
    commands: tuple = ()  # firewall-cmd argument tuples, in order
    messages: tuple = ()
    before: tuple = ()
    after: tuple = ()

    @property
    def changed(self):
        return bool(self.commands)

    @property
    def reloads(self):
        return ('--reload',) in self.commands


_BUS_NAME = 'org.fedoraproject.FirewallD1'
_BUS_PATH = '/org/fedoraproject/FirewallD1'
_CONFIG_PATH = _BUS_PATH + '/config'
_BUS_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _bus_strings(out):
    """The strings of ``busctl`` output (``s "x"`` lines, ``as 2 "x" "y"``)."""
    return [re.sub(r'\\(.)', r'\1', m) for m in _BUS_STRING.findall(out)]


class Firewalld:
    """Asks firewalld through ``busctl`` (one short C process per question,
    about 5 ms) when it is installed, else ``firewall-cmd`` (a Python start,
    0.15-0.3 s each); the questions are the same D-Bus calls firewall-cmd
    makes. Writes always go through ``firewall-cmd`` (recorded as writes):
    they are rare and it knows each change's details (``--permanent
    --change-interface`` moves the interface out of its other zones).
    ``busctl --system`` honours ``DBUS_SYSTEM_BUS_ADDRESS`` (private test
    buses); ``--auto-start=no`` never starts a stopped firewalld through
    D-Bus activation."""

    def __init__(self, runner=None):
        self.runner = runner or Runner()
        self.tool = find_tool('firewall-cmd')
        self.busctl = find_tool('busctl')
        self._version = None

    def _bus(self, signature, *args):
        """The strings busctl answers, or None (no busctl, an error, an answer
        of another type): the caller then asks firewall-cmd, whose answer or
        error is the one users know."""
        if not self.busctl:
            return None
        rc, out, _err = self.runner.run([self.busctl, '--system', '--auto-start=no'] + list(args))
        if rc != 0 or not all(line.startswith(signature + ' ') for line in out.splitlines()) or not out:
            return None
        return _bus_strings(out)

    def running(self):
        if self.tool is None:
            return False  # writes need it
        # state and version in one call; firewall-cmd --state: running when RUNNING
        values = self._bus('s', 'get-property', _BUS_NAME, _BUS_PATH, _BUS_NAME, 'state', 'version')
        if values is not None and len(values) == 2:
            self._version = values[1]
            return values[0] == 'RUNNING'
        rc, out, _err = self.runner.run([self.tool, '--state'])
        return rc == 0 and out.strip() == 'running'

    def cmd(self, *args, **kwargs):
        kind = 'write' if kwargs.get('write') else 'read'
        rc, out, err = self.runner.run([self.tool] + list(args), kind=kind)
        return rc, out.strip(), err.strip()

    def version(self):
        out = self._version
        if out is None:
            _rc, out, _err = self.cmd('--version')
        match = re.match(r'(\d+)\.(\d+)(?:\.(\d+))?', out)
        if not match:
            raise FirewalldError('cannot read the firewalld version from %r' % out)
        return tuple(int(x or 0) for x in match.groups())

    def names(self, what, permanent=False):
        if permanent and what in ('zones', 'policies'):
            values = self._bus('as', 'call', _BUS_NAME, _CONFIG_PATH, _BUS_NAME + '.config',
                               'getZoneNames' if what == 'zones' else 'getPolicyNames')
            if values is not None:
                return set(values)
        args = (('--permanent',) if permanent else ()) + ('--get-' + what,)
        rc, out, err = self.cmd(*args)
        if rc != 0:
            raise FirewalldError('firewall-cmd %s failed: %s' % (' '.join(args), err or out))
        return set(out.split())

    def zone_of(self, interface, permanent=False):
        path, methods = (_CONFIG_PATH, _BUS_NAME + '.config') if permanent else (_BUS_PATH, _BUS_NAME + '.zone')
        values = self._bus('s', 'call', _BUS_NAME, path, methods, 'getZoneOfInterface', 's', interface)
        if values is not None and len(values) == 1:
            return values[0] or None
        args = (('--permanent',) if permanent else ()) + ('--get-zone-of-interface=' + interface,)
        rc, out, _err = self.cmd(*args)
        return out if rc == 0 and out and out != 'no zone' else None


def wanted_zone(spec, fw):
    """The zone libvirt would use for ``spec`` (None for open networks without one)."""
    if spec.zone:
        return spec.zone
    if spec.forward_mode == 'open':
        return None
    if spec.forward_mode == 'route':
        return ROUTED_ZONE
    return LIBVIRT_ZONE


def plan(spec, state, previous_zone=None, fw=None):
    """None when firewalld is not running (and no zone was asked for)."""
    if spec is None:
        return None
    fw = fw or Firewalld()
    if not fw.running():
        if state == 'present' and spec.zone:
            raise FirewalldError('zone %s requested for network %s but firewalld is not active'
                                 % (spec.zone, spec.name))
        return None
    bridge = spec.bridge
    runtime_zone = fw.zone_of(bridge)
    permanent_zone = fw.zone_of(bridge, permanent=True)
    before = ('runtime zone of %s: %s' % (bridge, runtime_zone or 'none'),
              'permanent zone of %s: %s' % (bridge, permanent_zone or 'none'))
    commands = []
    messages = []
    if state == 'absent':
        zone = previous_zone
        if zone is None:
            return FirewalldPlan(None)
        if runtime_zone == zone:
            commands.append(('--zone=' + zone, '--remove-interface=' + bridge))
        if permanent_zone == zone:
            commands.append(('--permanent', '--zone=' + zone, '--remove-interface=' + bridge))
        if commands:
            messages.append('firewalld: take %s out of zone %s' % (bridge, zone))
        after = ('runtime zone of %s: none' % bridge, 'permanent zone of %s: none' % bridge)
        return FirewalldPlan(None, tuple(commands), tuple(messages), before, after if commands else before)
    zone = wanted_zone(spec, fw)
    if zone is None:
        return FirewalldPlan(None)
    version = fw.version()
    zones = fw.names('zones', permanent=True)
    policies = set()
    needs = []
    if zone in (LIBVIRT_ZONE, ROUTED_ZONE):
        if version < MIN_ZONE_VERSION:
            raise FirewalldError('firewalld %s is too old for the libvirt zone (needs 0.7.0 or later for '
                                 'rich-rule priorities)' % '.'.join(map(str, version)))
        if zone == ROUTED_ZONE and version < MIN_POLICY_VERSION:
            # as libvirt: without policies a routed network uses the libvirt zone
            zone = LIBVIRT_ZONE
        if zone == ROUTED_ZONE:
            policies = fw.names('policies', permanent=True)
            needs.extend(p for p in ROUTED_POLICIES if p not in policies)
        if zone not in zones:
            needs.insert(0, zone)
    elif zone not in zones:
        raise FirewalldError('firewalld zone %s (requested for network %s) does not exist'
                             % (zone, spec.name))
    for name in needs:
        commands.extend(_zone_definition(name))
        messages.append('firewalld: define %s' % name)
    if needs:
        commands.append(('--reload',))
    if runtime_zone != zone:
        commands.append(('--zone=' + zone, '--change-interface=' + bridge))
    if permanent_zone != zone:
        commands.append(('--permanent', '--zone=' + zone, '--change-interface=' + bridge))
    if runtime_zone != zone or permanent_zone != zone:
        messages.append('firewalld: put %s into zone %s' % (bridge, zone))
    after = ('runtime zone of %s: %s' % (bridge, zone), 'permanent zone of %s: %s' % (bridge, zone))
    return FirewalldPlan(zone, tuple(commands), tuple(messages), before, after)


def apply(fw_plan, fw=None):
    fw = fw or Firewalld()
    for args in fw_plan.commands:
        rc, out, err = fw.cmd(*args, write=True)
        if rc != 0:
            raise HostError('firewall-cmd %s failed (exit %d): %s' % (' '.join(args), rc, err or out))
