# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The running agent against a real firewalld (both backends) in a throwaway
namespace on a private D-Bus (tests/lib/firewalld.py).

firewalld 1.3 flushes the iptables and ebtables tables when it starts,
restarts and reloads, with either backend. The agent (``watch``, periodic
reconcile set to 10 minutes so only the D-Bus signals can explain a repair)
puts every rule back after ``firewall-cmd --reload``, after a restart and
after a start; the time from the reload to the last rule restored is printed
(100 guest NICs: 1 running guest, 99 stopped ones whose rules are in force
too). Not a timed test: benchmarks/bench_restore.py measures.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import (
    AGENT, agent_python, dump_host, ours, require_agent_kernel, rule_count, run_agent, store_bindings)
from ansible_collections.hypervisor.netfilter.tests.lib import firewalld as fwtest
from ansible_collections.hypervisor.netfilter.tests.lib.network_support import run_module
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor, missing_tools

NICS = 100


def _require():
    require_agent_kernel()
    missing = missing_tools('firewalld', 'firewall-cmd', 'dbus-daemon')
    if missing:
        pytest.skip('firewalld tests need %s (apt-get install firewalld)' % ', '.join(missing))
    probe = subprocess.run([agent_python(), '-c', 'import jeepney'], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
    if probe.returncode != 0:
        pytest.skip('%s cannot import jeepney (apt-get install python3-jeepney)' % agent_python())


def _start_daemon(fw):
    """(Re)start only the firewalld process on the running private bus."""
    etc = os.path.join(fw.dir, 'etc')
    fw.daemon = fw.ns.popen(['firewalld', '--nofork', '--nopid', '--system-config', etc, '--log-target', 'file',
                             '--log-file', os.path.join(fw.dir, 'firewalld.log')],
                            env=dict(os.environ, **fw.env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while fw.cmd('--state', check=False).stdout.strip() != 'running':
        if fw.daemon.poll() is not None or time.time() > deadline:
            raise AssertionError('firewalld did not start')
        time.sleep(0.1)


def _stop_daemon(fw):
    fw.daemon.terminate()
    fw.daemon.wait(timeout=30)


def _wait_restored(hv, wanted, since, timeout=60):
    """Seconds from ``since`` until our part of the dumps equals ``wanted`` again (polled)."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        if ours(dump_host(hv.host)) == wanted:
            return time.monotonic() - since
        time.sleep(0.05)
    return None


def _difference(hv, wanted):
    import difflib
    now = ours(dump_host(hv.host))
    lines = []
    for key in wanted:
        if now[key] != wanted[key]:
            lines.extend(difflib.unified_diff([str(x) for x in wanted[key]], [str(x) for x in now[key]], key, 'now',
                                              lineterm='', n=1))
    return '\n'.join(lines[:60])


def _log(path):
    with open(path) as handle:
        return handle.read()


@pytest.mark.parametrize('backend', ('nftables', 'iptables'))
def test_firewalld_reload_restart_and_start_are_repaired(tmp_path, monkeypatch, backend):
    _require()
    monkeypatch.setattr(fwtest, 'FIREWALLD_CONF', fwtest.FIREWALLD_CONF.replace(
        'FirewallBackend=nftables', 'FirewallBackend=%s' % backend))
    state_dir = str(tmp_path / 'state')
    log_path = str(tmp_path / 'agent.log')
    with ThrowawayHypervisor(guests=1) as hv:
        fw = fwtest.PrivateFirewalld(hv.host, str(tmp_path / 'fw'))
        os.makedirs(fw.dir)
        agent = None
        try:
            fw.start()
            guest = hv.guests[0]
            nics = [(guest.port, guest.mac, 'clean-traffic', {'IP': guest.ip})]
            nics += [('vm%d-eth0' % n, '52:54:00:4f:%02x:%02x' % (n // 256, n % 256), 'clean-traffic',
                      {'IP': '10.80.%d.%d' % (n // 200, n % 200 + 2)}) for n in range(1, NICS)]
            store_bindings(state_dir, nics)
            # A network in libvirt's iptables layout, in firewalld's libvirt zone.
            result = run_module(hv.host, env=fw.env, state_dir=state_dir, name='fwnet', bridge='virbr-fw',
                                forward_mode='nat', firewall_backend='iptables', ipv4={'address': '10.79.0.1/24'})
            assert result['zone'] == 'libvirt'
            applied = run_agent(['apply', '--state-dir', state_dir], ns=hv.host, env=fw.env)
            assert applied.returncode == 0, applied.stdout + applied.stderr
            wanted = ours(dump_host(hv.host))
            assert rule_count(wanted) > 20 * NICS

            log = open(log_path, 'w')
            agent = hv.host.popen([agent_python(), AGENT, 'watch', '-v', '--state-dir', state_dir, '--interval', '600'],
                                  stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **fw.env))
            log.close()
            deadline = time.monotonic() + 30
            while 'listening for firewalld' not in _log(log_path) or not (
                    'reconciled (start)' in _log(log_path) or 'reconcile (start) repaired' in _log(log_path)):
                assert time.monotonic() < deadline and agent.poll() is None, _log(log_path)
                time.sleep(0.05)
            assert _wait_restored(hv, wanted, time.monotonic(), 10) is not None

            times = {}
            # reload
            started = time.monotonic()
            fw.cmd('--reload')
            returned = time.monotonic()
            took = _wait_restored(hv, wanted, returned)
            assert took is not None, _difference(hv, wanted)
            times['reload'] = (returned - started, took)
            # restart: the process goes (CleanupOnExit flushes) and comes back (its start flushes)
            started = time.monotonic()
            _stop_daemon(fw)
            _start_daemon(fw)
            returned = time.monotonic()
            took = _wait_restored(hv, wanted, returned)
            assert took is not None, _difference(hv, wanted)
            times['restart'] = (returned - started, took)
            # stopped, then started while the agent runs
            _stop_daemon(fw)
            assert _wait_restored(hv, wanted, time.monotonic()) is not None, _difference(hv, wanted)
            started = time.monotonic()
            _start_daemon(fw)
            returned = time.monotonic()
            took = _wait_restored(hv, wanted, returned)
            assert took is not None, _difference(hv, wanted)
            times['start'] = (returned - started, took)
        finally:
            if agent is not None and agent.poll() is None:
                agent.terminate()
                agent.wait(timeout=20)
            fw.stop()
    text = _log(log_path)
    assert 'reconciling: firewalld reloaded' in text
    # a restart is two signals (the name goes, the name comes back after firewalld's start)
    assert 'reconciling: firewalld stopped' in text
    assert 'reconciling: firewalld started' in text
    assert 'repaired binding vnet0 (firewalld reloaded)' in text
    assert 'repaired network fwnet (firewalld reloaded)' in text
    # After the start, the repair is the start signal's, or the settle check's (1 s and 5 s after the stop) when
    # that check runs while firewalld is starting, after its flush: either way, by no periodic run.
    after_stop = text[text.index('reconciling: firewalld stopped'):]
    assert ('repaired binding vnet0 (firewalld started)' in after_stop
            or 'repaired binding vnet0 (check after firewalld)' in after_stop), text
    assert '(periodic)' not in text  # every repair came from a signal
    for event, (firewalld_took, restored) in times.items():
        print('firewalld %s (%s backend, %d NICs): firewalld took %.3f s; every rule back %.3f s after it '
              'finished' % (event, backend, NICS, firewalld_took, restored))


def test_boot_restore_waits_for_firewalld_start(tmp_path, monkeypatch):
    """apply asks firewalld (when it owns its bus name) for its state first: firewalld answers
    only once its start, which flushes the xtables tables, is over."""
    _require()
    from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import load_agent_module
    from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns
    agent_module = load_agent_module()
    with Netns(tag='fwwait') as ns:
        fw = fwtest.PrivateFirewalld(ns, str(tmp_path / 'fw'))
        os.makedirs(fw.dir)
        monkeypatch.setenv('DBUS_SYSTEM_BUS_ADDRESS', fw.env['DBUS_SYSTEM_BUS_ADDRESS'])
        assert agent_module.wait_for_firewalld(5) is None  # no bus yet
        try:
            fw.start()
            assert agent_module.wait_for_firewalld(5) == 'RUNNING'
            _stop_daemon(fw)
            assert agent_module.wait_for_firewalld(5) is None  # bus, no firewalld
        finally:
            fw.stop()
