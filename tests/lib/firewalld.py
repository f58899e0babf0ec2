# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real firewalld inside a test namespace, on a private D-Bus system bus.

:class:`PrivateFirewalld` starts its own dbus-daemon (socket in the test's temp
dir) and a firewalld in the given namespace with its own configuration
directory (``--system-config``), so neither the host's firewalld (if any) nor
its configuration is ever reached. Clients (``firewall-cmd``, the modules)
reach it with ``DBUS_SYSTEM_BUS_ADDRESS`` from :attr:`PrivateFirewalld.env`.
:meth:`PrivateFirewalld.stop` ends both processes by their pids.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import missing_tools

FIREWALLD_CONF = ('DefaultZone=public\nCleanupOnExit=yes\nCleanupModulesOnExit=no\nLockdown=no\n'
                  'IPv6_rpfilter=yes\nIndividualCalls=no\nLogDenied=off\nFirewallBackend=nftables\n'
                  'FlushAllOnReload=yes\n')
BUS_CONF = '''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
'''


class PrivateFirewalld:
    def __init__(self, ns, directory):
        self.ns = ns
        self.dir = directory
        self.socket = os.path.join(directory, 'bus.sock')
        self.env = {'DBUS_SYSTEM_BUS_ADDRESS': 'unix:path=' + self.socket}
        self.bus = None
        self.daemon = None

    def start(self):
        etc = os.path.join(self.dir, 'etc')
        for sub in ('zones', 'policies', 'services', 'icmptypes', 'ipsets', 'helpers'):
            os.makedirs(os.path.join(etc, sub), exist_ok=True)  # zones/policies may be preloaded
        with open(os.path.join(etc, 'firewalld.conf'), 'w') as handle:
            handle.write(FIREWALLD_CONF)
        conf = os.path.join(self.dir, 'bus.conf')
        with open(conf, 'w') as handle:
            handle.write(BUS_CONF % self.socket)
        self.bus = subprocess.Popen(['dbus-daemon', '--config-file=' + conf, '--nofork', '--nosyslog'],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not os.path.exists(self.socket):
            if time.time() > deadline:
                raise AssertionError('private dbus-daemon did not come up')
            time.sleep(0.05)
        env = dict(os.environ, **self.env)
        self.daemon = self.ns.popen(['firewalld', '--nofork', '--nopid', '--system-config', etc,
                                     '--log-target', 'file', '--log-file', os.path.join(self.dir, 'firewalld.log')],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while self.cmd('--state', check=False).stdout.strip() != 'running':
            if self.daemon.poll() is not None or time.time() > deadline:
                raise AssertionError('firewalld did not start')
            time.sleep(0.3)
        return self

    def cmd(self, *args, check=True):
        proc = subprocess.run(['firewall-cmd'] + list(args), env=dict(os.environ, **self.env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError('firewall-cmd %s: %s' % (' '.join(args), proc.stderr))
        return proc

    def zone_of(self, interface, permanent=False):
        args = (['--permanent'] if permanent else []) + ['--get-zone-of-interface=' + interface]
        out = self.cmd(*args, check=False).stdout.strip()
        return None if out in ('', 'no zone') else out

    def stop(self):
        for proc in (self.daemon, self.bus):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def require_firewalld():
    """Skip the calling test unless firewalld, firewall-cmd and dbus-daemon are installed."""
    missing = missing_tools('firewalld', 'firewall-cmd', 'dbus-daemon')
    if missing:
        pytest.skip('firewalld tests need %s (apt-get install firewalld)' % ', '.join(missing))
