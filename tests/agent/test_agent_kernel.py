# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent against the real kernel, in throwaway namespaces.

- reboot: the state_dir is kept, the host namespace is new (no bridge, no
  rule): ``hypervisor-netfilter apply`` brings back the network's bridge and
  every chain, the dumps equal the ones before, and a guest's spoofed frames
  are dropped from the first frame;
- ``apply --check`` exits 2 and names what is missing, changes nothing;
- the running ``watch`` repairs a flush nobody signals (periodic reconcile)
  and logs what was missing;
- a playbook-style run holding the state_dir lock and the agent never
  interleave;
- a state file group or others can write is refused, by name.
"""

from __future__ import annotations

import os
import subprocess
import time

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import (
    AGENT, agent_python, dump_host, require_agent_kernel, rule_count, run_agent, store_bindings)
from ansible_collections.hypervisor.netfilter.tests.lib.network_support import run_module
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor

NETWORK = dict(name='agentnat', bridge='virbr-ag', forward_mode='nat',
               ipv4={'address': '10.77.0.1/24', 'dhcp_range': {'start': '10.77.0.100', 'end': '10.77.0.200'}},
               ipv6={'address': '2001:db8:77::1/64'})
# and one in libvirt's iptables layout (LIBVIRT_* chains)
NETWORK_XT = dict(name='agentrt', bridge='virbr-rt', forward_mode='route', firewall_backend='iptables',
                  ipv4={'address': '10.78.0.1/24'})


def _bindings(hv):
    guest = hv.guests[0]
    return [(guest.port, guest.mac, 'clean-traffic', {'IP': guest.ip}),
            (hv.guests[1].port, hv.guests[1].mac, 'clean-traffic', {'IP': hv.guests[1].ip}),
            # a guest that is not running (no tap): its rules are installed anyway (fail closed)
            ('vnet-stopped', '52:54:00:4e:00:63', 'clean-traffic', {'IP': '192.0.2.99'})]


def _setup_host(hv, state_dir):
    run_module(hv.host, state_dir=state_dir, **NETWORK)
    run_module(hv.host, state_dir=state_dir, **NETWORK_XT)
    store_bindings(state_dir, _bindings(hv))
    result = run_agent(['apply', '--state-dir', state_dir], ns=hv.host)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _agent_lines(result):
    return result.stdout.splitlines()


def test_reboot_restores_bridges_and_every_chain(tmp_path):
    require_agent_kernel('tcpdump')
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        first = _setup_host(hv, state_dir)
        assert 'binding vnet0: repaired' in _agent_lines(first)
        before = dump_host(hv.host)
        assert rule_count(before) > 50
        assert ('virbr-ag', ['10.77.0.1/24', '2001:db8:77::1/64']) in before['bridges']
        assert ('virbr-rt', ['10.78.0.1/24']) in before['bridges']
        assert any(line.startswith('-A LIBVIRT_FWI') for line in before['iptables-save'])
        assert any('libvirt-I-vnet-stopped' in line for line in before['ebtables-save'])
        again = run_agent(['apply', '--check', '--state-dir', state_dir], ns=hv.host)
        assert again.returncode == 0, again.stdout + again.stderr
        assert 'binding vnet0: in sync' in _agent_lines(again)
        assert 'network agentnat: in sync' in _agent_lines(again)

    # "Reboot": a new host namespace (same names, nothing in the kernel), state_dir kept.
    with ThrowawayHypervisor(guests=2) as hv:
        fresh = dump_host(hv.host)
        assert rule_count(fresh) == 0 and 'virbr-ag' not in [b for b, _a in fresh['bridges']]
        check = run_agent(['apply', '--check', '--state-dir', state_dir], ns=hv.host)
        assert check.returncode == 2, check.stdout + check.stderr
        assert dump_host(hv.host) == fresh  # --check changed nothing
        restore = run_agent(['apply', '--state-dir', state_dir], ns=hv.host)
        assert restore.returncode == 0, restore.stdout + restore.stderr
        assert 'network agentnat: repaired' in _agent_lines(restore)
        assert 'binding vnet0: repaired' in _agent_lines(restore)
        after = dump_host(hv.host)
        assert after == before
        # A guest's spoofed frames are dropped from its first frame.
        from ansible_collections.hypervisor.netfilter.tests.lib import packets
        packets.require_environment()
        specs = packets.frame_specs(hv.guests[0], hv.guests[1])
        counts = packets.send_and_count(hv, specs, str(tmp_path), 'boot')
        spoofed = [name for name, want, _bpf, _spec in specs if want == 0]
        assert len(spoofed) == 5 and all(counts[name] == 0 for name in spoofed), counts
        # (the peer's port is filtered too: only the guest's own unicast IPv4 is sure to reach it)
        assert counts['own IPv4 traffic'] == packets.COPIES, counts


def test_check_exits_2_and_names_what_is_missing(tmp_path):
    require_agent_kernel()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        _setup_host(hv, state_dir)
        hv.host.run(['ebtables', '-t', 'nat', '-F'])
        hv.host.run(['nft', 'flush', 'table', 'ip', 'libvirt_network'])
        hv.host.run(['iptables', '-F', 'LIBVIRT_FWI'])
        flushed = dump_host(hv.host)
        check = run_agent(['apply', '--check', '--state-dir', state_dir], ns=hv.host)
        assert check.returncode == 2, check.stdout + check.stderr
        lines = _agent_lines(check)
        assert 'binding vnet0: would repair' in lines
        assert 'binding vnet1: would repair' in lines
        assert 'network agentnat: would repair' in lines
        assert 'network agentrt: would repair' in lines
        assert any('libvirt-I-vnet0' in line for line in lines), lines
        assert dump_host(hv.host) == flushed
        status = run_agent(['status', '--state-dir', state_dir], ns=hv.host)
        assert status.returncode == 2
        assert '    vnet0 %s clean-traffic IP=%s' % (hv.guests[0].mac, hv.guests[0].ip) in status.stdout
        assert 'agentnat: bridge virbr-ag' in status.stdout
        repaired = run_agent(['apply', '--state-dir', state_dir], ns=hv.host)
        assert repaired.returncode == 0
        assert run_agent(['apply', '--check', '--state-dir', state_dir], ns=hv.host).returncode == 0


def _start_watch(hv, state_dir, log_path, interval='1', env=None):
    log = open(log_path, 'w')
    proc = hv.host.popen([agent_python(), AGENT, 'watch', '--state-dir', state_dir, '--interval', interval],
                         stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
    log.close()
    return proc


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_watch_repairs_unsignalled_flushes(tmp_path):
    require_agent_kernel()
    state_dir = str(tmp_path / 'state')
    log_path = str(tmp_path / 'agent.log')
    with ThrowawayHypervisor(guests=2) as hv:
        _setup_host(hv, state_dir)
        wanted = dump_host(hv.host)
        agent = _start_watch(hv, state_dir, log_path, interval='2',
                             env={'DBUS_SYSTEM_BUS_ADDRESS': 'unix:path=%s' % (tmp_path / 'no-bus')})
        try:
            assert _wait_for(lambda: 'watching' in open(log_path).read(), 20), open(log_path).read()
            for flush in (['ebtables', '-t', 'nat', '-F'], ['iptables', '-F'], ['nft', 'flush', 'ruleset'],
                          ['ebtables', '-t', 'nat', '-F', 'libvirt-I-vnet1'], ['ip', 'link', 'del', 'virbr-rt']):
                hv.host.run(flush)
                assert dump_host(hv.host) != wanted, flush
                assert _wait_for(lambda: dump_host(hv.host) == wanted, 10, 0.2), (flush, open(log_path).read())
        finally:
            _stop(agent)
        log = open(log_path).read()
        assert agent.returncode == 0, log
        assert 'repaired binding vnet0 (periodic)' in log
        assert 'missing chain ebtables nat libvirt-I-vnet0' in log
        assert 'repaired network agentnat (periodic)' in log
        assert 'repaired network agentrt (periodic)' in log


def test_agent_and_module_runs_never_interleave(tmp_path):
    """A run holding the state_dir lock (what every module run does) makes the agent wait;
    it reconciles after the lock is released."""
    require_agent_kernel()
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        _setup_host(hv, state_dir)
        wanted = dump_host(hv.host)
        hv.host.run(['ebtables', '-t', 'nat', '-F'])
        flushed = dump_host(hv.host)
        with state_lock(state_dir, timeout=5):
            agent = hv.host.popen([agent_python(), AGENT, 'apply', '--state-dir', state_dir],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            time.sleep(2.0)
            assert agent.poll() is None  # waiting for the lock
            assert dump_host(hv.host) == flushed  # and nothing touched meanwhile
        out, err = agent.communicate(timeout=60)
        assert agent.returncode == 0, out + err
        assert dump_host(hv.host) == wanted
        # The modules take the same lock: a virt_network run waits while it is held
        # (so a playbook run and the agent's reconcile never interleave, in either order).
        import threading
        outcome = {}
        with state_lock(state_dir, timeout=5):
            module = threading.Thread(target=lambda: outcome.update(
                run_module(hv.host, state_dir=state_dir, name='agentrt', state='absent')))
            module.start()
            module.join(2.0)
            assert module.is_alive()  # waiting for the lock
            assert dump_host(hv.host) == wanted
        module.join(120)
        assert outcome.get('changed') is True
        assert 'virbr-rt' not in [bridge for bridge, _addrs in dump_host(hv.host)['bridges']]
        # A lock held too long: a clear error, exit 1.
        with state_lock(state_dir, timeout=5):
            timed_out = run_agent(['apply', '--state-dir', state_dir, '--lock-timeout', '1'], ns=hv.host)
        assert timed_out.returncode == 1
        assert 'another run holds %s/.lock' % state_dir in timed_out.stderr


def test_refuses_state_others_can_write(tmp_path):
    require_agent_kernel()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=1) as hv:
        store_bindings(state_dir, [(hv.guests[0].port, hv.guests[0].mac, 'clean-traffic', {'IP': hv.guests[0].ip})])
        path = os.path.join(state_dir, 'bindings.json')
        os.chmod(path, 0o664)
        before = dump_host(hv.host)
        result = run_agent(['apply', '--state-dir', state_dir], ns=hv.host)
        assert result.returncode == 1
        assert ('refusing state directory %s: only root may write it: %s is writable by group (mode 0664)'
                % (state_dir, path)) in result.stderr
        assert dump_host(hv.host) == before
        os.chmod(path, 0o600)
        os.chmod(state_dir, 0o777)
        result = run_agent(['status', '--state-dir', state_dir], ns=hv.host)
        assert result.returncode == 1 and '%s is writable by group and others (mode 0777)' % state_dir in result.stderr


def test_runs_from_the_install_layout_without_ansible(tmp_path):
    """The role's layout: engine + agent below <engine_dir>/ansible_collections/hypervisor/netfilter,
    a relative symlink on PATH; a clean environment (no PYTHONPATH, no Ansible) finds the engine."""
    require_agent_kernel()
    import shutil
    from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import REPO
    root = tmp_path / 'root'
    collection = root / 'usr/lib/hypervisor-netfilter/ansible_collections/hypervisor/netfilter'
    shutil.copytree(os.path.join(REPO, 'plugins', 'module_utils'), str(collection / 'plugins' / 'module_utils'),
                    ignore=shutil.ignore_patterns('__pycache__'))
    (collection / 'roles/host/files').mkdir(parents=True)
    shutil.copy2(AGENT, str(collection / 'roles/host/files/hypervisor-netfilter'))
    (root / 'usr/sbin').mkdir(parents=True)
    os.symlink('../lib/hypervisor-netfilter/ansible_collections/hypervisor/netfilter/roles/host/files/'
               'hypervisor-netfilter', str(root / 'usr/sbin/hypervisor-netfilter'))
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=1) as hv:
        store_bindings(state_dir, [(hv.guests[0].port, hv.guests[0].mac, 'clean-traffic', {'IP': hv.guests[0].ip})])
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin'}
        argv = hv.host.exec_argv([agent_python(), str(root / 'usr/sbin/hypervisor-netfilter'), 'apply',
                                  '--state-dir', state_dir])
        result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, cwd='/', check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert 'binding vnet0: repaired' in result.stdout


def test_watch_filters_a_tap_that_appears(tmp_path):
    """With the old behaviour (host setting skip_missing_interfaces) a binding of an absent
    tap gets no rules; the running agent sees the tap appear (ip monitor link) and applies
    them at once, long before its periodic reconcile."""
    require_agent_kernel()
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
    state_dir = str(tmp_path / 'state')
    log_path = str(tmp_path / 'agent.log')
    with ThrowawayHypervisor(guests=1) as hv:
        guest = hv.guests[0]
        store_bindings(state_dir, [(guest.port, guest.mac, 'clean-traffic', {'IP': guest.ip}),
                                   ('vnet-late', '52:54:00:4e:00:77', 'clean-traffic', {'IP': '192.0.2.77'})])
        host_settings.save_host_settings(state_dir, host_settings.HostSettings(skip_missing_interfaces=True))
        agent = _start_watch(hv, state_dir, log_path, interval='600',
                             env={'DBUS_SYSTEM_BUS_ADDRESS': 'unix:path=%s' % (tmp_path / 'no-bus')})
        try:
            assert _wait_for(lambda: 'repaired binding vnet0 (start)' in open(log_path).read(), 30), \
                open(log_path).read()
            assert not any('vnet-late' in line for line in dump_host(hv.host)['ebtables-save'])
            hv.host.ip('link', 'add', 'vnet-late', 'type', 'veth', 'peer', 'name', 'vnet-late-p')
            hv.host.own_interfaces.update(('vnet-late', 'vnet-late-p'))
            appeared = time.monotonic()
            assert _wait_for(lambda: any('-i vnet-late -j libvirt-I-vnet-late' in line
                                         for line in dump_host(hv.host)['ebtables-save']), 20), \
                open(log_path).read()
            took = time.monotonic() - appeared
        finally:
            _stop(agent)
        log = open(log_path).read()
        assert 'reconciling: interface vnet-late appeared' in log, log
        assert 'repaired binding vnet-late (interface vnet-late appeared)' in log, log
        print('tap appeared -> its rules in force: %.3f s' % took)
