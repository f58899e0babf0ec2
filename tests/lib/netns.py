# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throwaway network namespaces for kernel tests and the demo.

Nothing here ever touches the namespace the caller runs in: every command that
changes kernel state goes through ``ip netns exec NAME`` / ``ip -n NAME`` into a
namespace this module created under a unique name, and that namespace is
deleted again on exit, also after a failure.

    with Netns() as ns:                      # empty namespace, lo up
        ns.run(['iptables', '-S'])

    with ThrowawayHypervisor(guests=2) as hv:
        hv.host.run(['ebtables', '-t', 'nat', '-L'])      # where the bridge lives
        hv.guests[0].ns.run(['ping', '-c1', hv.guests[1].ip])

Import it as ``ansible_collections.hypervisor.netfilter.tests.lib.netns``
(tests/conftest.py puts the collection on ``sys.path``); pytest fixtures are
in ``tests/lib/fixtures.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import uuid

# Documentation ranges (RFC 5737 / RFC 3849): never routed anywhere, and all
# traffic stays between namespaces we made anyway.
DEFAULT_SUBNET4 = '192.0.2'
DEFAULT_SUBNET6 = '2001:db8:4e7::'
HOST_IP = DEFAULT_SUBNET4 + '.1'
HOST_IP6 = DEFAULT_SUBNET6 + '1'

NAME_PREFIX = 'hnf'
_NS_DIR = '/var/run/netns'
_VALID_NS_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$')
_VALID_IFNAME = re.compile(r'^[A-Za-z0-9_.-]{1,15}$')

# br_netfilter switches: per network namespace on the kernels we run on (measured
# on 6.x: setting one inside a namespace leaves the caller's value alone).
BRIDGE_NF_SYSCTLS = ('net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables')


class NetnsError(Exception):
    """A namespace could not be created, used or removed as asked."""


class UnsafeNamespace(NetnsError):
    """Refused: the namespace is not one of ours, or holds interfaces we did not make."""


def unique_name(tag='t'):
    """A namespace name no other test (or process) uses: prefix, our pid, random."""
    return '%s-%d-%s-%s' % (NAME_PREFIX, os.getpid(), tag, uuid.uuid4().hex[:6])


def missing_tools(*tools):
    """The subset of ``tools`` that is not on PATH (for skip messages)."""
    return [tool for tool in tools if shutil.which(tool) is None]


def can_create_namespaces():
    """(True, '') when this process may create namespaces, else (False, reason)."""
    if os.geteuid() != 0:
        return False, 'network namespaces need root (euid %d)' % os.geteuid()
    missing = missing_tools('ip')
    if missing:
        return False, 'missing tools: %s (apt-get install iproute2)' % ', '.join(missing)
    return True, ''


def _check_argv(argv):
    if not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv):
        raise TypeError('argv must be a list of str (no shell strings), got %r' % (argv,))
    return list(argv)


def _run(argv, check=True, input_text=None, timeout=120, env=None):
    _check_argv(argv)
    result = subprocess.run(list(argv), input=input_text, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=timeout, env=env, check=False)
    if check and result.returncode != 0:
        raise NetnsError('command %r failed with exit code %d: %s'
                         % (list(argv), result.returncode, (result.stderr or result.stdout).strip()))
    return result


def list_namespaces():
    """Names of the named network namespaces (``ip netns list``)."""
    out = _run(['ip', '-j', 'netns', 'list']).stdout.strip()
    if not out:
        return []
    return [entry['name'] for entry in json.loads(out)]


def _own_netns_inode():
    return os.stat('/proc/self/ns/net').st_ino


class Netns:
    """A network namespace that exists exactly as long as the ``with`` block.

    ``run(argv)`` executes an argument list inside it; nothing is ever passed
    through a shell.
    """

    def __init__(self, name=None, tag='t'):
        self.name = name or unique_name(tag)
        if not _VALID_NS_NAME.match(self.name):
            raise ValueError('invalid namespace name %r' % self.name)
        self.created = False
        # Interfaces this object created in the namespace (besides lo).
        self.own_interfaces = set()

    # -- life cycle -------------------------------------------------------
    def create(self):
        if self.name in list_namespaces():
            raise UnsafeNamespace('namespace %r exists already; refusing to adopt it' % self.name)
        _run(['ip', 'netns', 'add', self.name])
        self.created = True
        self.assert_isolated()
        _run(['ip', '-n', self.name, 'link', 'set', 'lo', 'up'])
        return self

    def delete(self):
        """Delete the namespace (idempotent). Its interfaces go with it; veth
        peers in other namespaces vanish too."""
        if not self.created:
            return
        if self.name in list_namespaces():
            _run(['ip', 'netns', 'delete', self.name])
        self.created = False

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.delete()
        return False

    # -- running things ---------------------------------------------------
    def exec_argv(self, argv):
        """The argv that runs ``argv`` inside this namespace."""
        return ['ip', 'netns', 'exec', self.name] + _check_argv(argv)

    def run(self, argv, check=True, input_text=None, timeout=120, env=None):
        """Run ``argv`` (list of str) inside the namespace; CompletedProcess
        with text stdout/stderr. ``check`` raises NetnsError on non-zero exit."""
        self._require_created()
        return _run(self.exec_argv(argv), check=check, input_text=input_text, timeout=timeout, env=env)

    def popen(self, argv, **kwargs):
        """Start ``argv`` inside the namespace in the background (e.g. tcpdump)."""
        self._require_created()
        return subprocess.Popen(self.exec_argv(argv), **kwargs)  # pylint: disable=consider-using-with

    def ip(self, *args, check=True):
        """``ip -n NAME ARGS...``"""
        self._require_created()
        return _run(['ip', '-n', self.name] + list(args), check=check)

    def sysctl(self, key, value=None):
        """Read (value None) or set a sysctl inside the namespace; returns its value."""
        self._require_created()
        if value is not None:
            self.run(['sysctl', '-q', '-w', '%s=%s' % (key, value)])
        return self.run(['sysctl', '-n', key]).stdout.strip()

    # -- guards -----------------------------------------------------------
    def interfaces(self):
        """Interface names in the namespace (``lo`` included)."""
        self._require_created()
        out = self.ip('-j', 'link', 'show').stdout.strip()
        return [link['ifname'] for link in json.loads(out or '[]')]

    def assert_isolated(self, allowed=()):
        """Refuse (UnsafeNamespace) unless this is a namespace of its own,
        different from the caller's, holding only ``lo``, our interfaces and
        ``allowed``. Call it before anything destructive."""
        self._require_created()
        inode = self.run(['stat', '-L', '-c', '%i', '/proc/self/ns/net']).stdout.strip()
        if inode == str(_own_netns_inode()):
            raise UnsafeNamespace('namespace %r is the caller\'s own network namespace' % self.name)
        expected = {'lo'} | self.own_interfaces | set(allowed)
        unexpected = sorted(set(self.interfaces()) - expected)
        if unexpected:
            raise UnsafeNamespace('namespace %r holds interfaces this test did not create: %s'
                                  % (self.name, ', '.join(unexpected)))

    def _require_created(self):
        if not self.created:
            raise NetnsError('namespace %r is not created (use it as a context manager)' % self.name)


@dataclasses.dataclass(frozen=True)
class Guest:
    """One guest: its namespace, the bridge port on the host (``port``, e.g.
    vnet0) and the guest-side NIC with its MAC and addresses."""

    ns: Netns
    port: str
    nic: str
    mac: str
    ip: str
    ip6: str


class ThrowawayHypervisor:
    """A host namespace with a bridge and ``guests`` guest namespaces, each
    wired by a veth whose host end (vnetN) is a port of the bridge, the way
    libvirt wires a VM's tap device.

    Host: bridge ``br0`` (192.0.2.1/24, 2001:db8:4e7::1/64), br_netfilter
    sysctls set to 1 when the kernel offers them. Guest N: ``eth0`` with MAC
    52:54:00:4e:00:(N+1), 192.0.2.(10+N)/24 and 2001:db8:4e7::(10+N)/64.
    Everything is removed on exit.
    """

    def __init__(self, guests=2, bridge='br0', port_prefix='vnet', bridge_nf=True, ipv6=True, tag=None):
        if not 0 <= guests <= 200:
            raise ValueError('guests must be between 0 and 200, got %r' % guests)
        for ifname in (bridge, '%s%d' % (port_prefix, max(guests - 1, 0))):
            if not _VALID_IFNAME.match(ifname):
                raise ValueError('invalid interface name %r' % ifname)
        base = tag or unique_name('hv')
        self.host = Netns(name=base + '-host')
        self.bridge = bridge
        self.host_ip = HOST_IP
        self.host_ip6 = HOST_IP6
        self.guests = []
        self.bridge_nf = {}
        self._wanted_guests = guests
        self._port_prefix = port_prefix
        self._bridge_nf_wanted = bridge_nf
        self._ipv6 = ipv6
        self._base = base
        self._namespaces = []

    @property
    def namespaces(self):
        return list(self._namespaces)

    def __enter__(self):
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()
        return False

    def build(self):
        host = self.host.create()
        self._namespaces.append(host)
        host.ip('link', 'add', self.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0')
        host.own_interfaces.add(self.bridge)
        if self._ipv6:
            # No DAD: addresses are usable at once, tests need not wait.
            host.sysctl('net.ipv6.conf.all.accept_dad', '0')
            host.sysctl('net.ipv6.conf.default.accept_dad', '0')
        host.ip('addr', 'add', self.host_ip + '/24', 'dev', self.bridge)
        if self._ipv6:
            host.ip('addr', 'add', self.host_ip6 + '/64', 'dev', self.bridge, 'nodad')
        host.ip('link', 'set', self.bridge, 'up')
        if self._bridge_nf_wanted:
            self.bridge_nf = self._enable_bridge_nf()
        for index in range(self._wanted_guests):
            self.guests.append(self._add_guest(index))
        host.assert_isolated()
        return self

    def _enable_bridge_nf(self):
        values = {}
        for key in BRIDGE_NF_SYSCTLS:
            path = '/proc/sys/' + key.replace('.', '/')
            probe = self.host.run(['test', '-e', path], check=False)
            if probe.returncode != 0:
                values[key] = None  # br_netfilter not available here
                continue
            values[key] = self.host.sysctl(key, '1')
        return values

    def _add_guest(self, index):
        guest_ns = Netns(name='%s-g%d' % (self._base, index)).create()
        self._namespaces.append(guest_ns)
        port = '%s%d' % (self._port_prefix, index)
        nic = 'eth0'
        mac = '52:54:00:4e:00:%02x' % (index + 1)
        ip4 = '%s.%d' % (DEFAULT_SUBNET4, 10 + index)
        ip6 = '%s%x' % (DEFAULT_SUBNET6, 0x10 + index)
        self.host.ip('link', 'add', port, 'type', 'veth', 'peer', 'name', nic, 'netns', guest_ns.name)
        self.host.own_interfaces.add(port)
        guest_ns.own_interfaces.add(nic)
        # Host end: like a tap of a libvirt guest (fe:54:00... MAC), a bridge port.
        self.host.ip('link', 'set', port, 'address', 'fe:54:00:4e:00:%02x' % (index + 1))
        self.host.ip('link', 'set', port, 'master', self.bridge)
        self.host.ip('link', 'set', port, 'up')
        if self._ipv6:
            guest_ns.sysctl('net.ipv6.conf.all.accept_dad', '0')
            guest_ns.sysctl('net.ipv6.conf.default.accept_dad', '0')
        guest_ns.ip('link', 'set', nic, 'address', mac)
        guest_ns.ip('addr', 'add', ip4 + '/24', 'dev', nic)
        if self._ipv6:
            guest_ns.ip('addr', 'add', ip6 + '/64', 'dev', nic, 'nodad')
        guest_ns.ip('link', 'set', nic, 'up')
        guest_ns.assert_isolated()
        return Guest(ns=guest_ns, port=port, nic=nic, mac=mac, ip=ip4, ip6=ip6)

    def teardown(self):
        """Delete every namespace made so far (guests first); collects errors
        so that one failure does not leave the others behind."""
        errors = []
        for ns in reversed(self._namespaces):
            try:
                ns.delete()
            except NetnsError as exc:
                errors.append(str(exc))
        self._namespaces = []
        self.guests = []
        if errors:
            raise NetnsError('teardown left namespaces behind: ' + '; '.join(errors))


def cleanup_stale(prefix=NAME_PREFIX):
    """Delete namespaces ``PREFIX-PID-...`` whose creating process is gone
    (left by a killed run). Returns the names deleted."""
    deleted = []
    pattern = re.compile(r'^%s-(\d+)-' % re.escape(prefix))
    for name in list_namespaces():
        match = pattern.match(name)
        if not match or os.path.exists('/proc/%s' % match.group(1)):
            continue
        _run(['ip', 'netns', 'delete', name], check=False)
        deleted.append(name)
    return deleted
