# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's own logic without a kernel: trust checks, report lines and exit
codes, the watch loop's debounce, periodic reconcile and back-off (with the
reconcile replaced by a recorder: the real one is exercised in test_agent_kernel.py)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import pytest

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import load_agent_module

agent = load_agent_module()


@dataclasses.dataclass(frozen=True)
class Obj:
    kind: str
    name: str
    status: str
    missing: tuple = ()
    summary: str = ''
    error: str = None


@dataclasses.dataclass(frozen=True)
class Report:
    objects: tuple = ()
    failed: bool = False
    warnings: tuple = ()


def test_untrusted_paths_name_each_problem(tmp_path):
    state = tmp_path / 'state'
    (state / 'networks').mkdir(parents=True)
    os.chmod(str(state), 0o700)
    os.chmod(str(state / 'networks'), 0o700)
    (state / 'bindings.json').write_text('{}')
    os.chmod(str(state / 'bindings.json'), 0o600)
    (state / 'networks' / 'n.json').write_text('{}')
    os.chmod(str(state / 'networks' / 'n.json'), 0o600)
    assert agent.untrusted_paths(str(state)) == []
    os.chmod(str(state / 'networks' / 'n.json'), 0o620)
    os.chmod(str(state), 0o702)
    problems = agent.untrusted_paths(str(state))
    assert problems == ['%s is writable by others (mode 0702)' % state,
                        '%s is writable by group (mode 0620)' % (state / 'networks' / 'n.json')]
    os.chmod(str(state), 0o700)
    os.chown(str(state / 'bindings.json'), 65534, 0)
    os.symlink('/etc/passwd', str(state / 'filters'))
    problems = agent.untrusted_paths(str(state))
    assert '%s is owned by uid 65534, not root' % (state / 'bindings.json') in problems
    assert '%s is a symbolic link' % (state / 'filters') in problems
    assert agent.untrusted_paths(str(tmp_path / 'absent')) == []


def test_report_lines_and_exit_status():
    report = Report(objects=(
        Obj('network', 'nat1', 'in_sync'),
        Obj('binding', 'vnet0', 'would_repair', missing=('missing chain ebtables nat libvirt-I-vnet0 (9 rules)',
                                                         'missing hook ebtables nat PREROUTING: -i vnet0')),
        Obj('binding', 'vnet9', 'skipped', summary='interface absent; not applied'),
    ))
    assert agent.report_lines(report) == [
        'network nat1: in sync',
        'binding vnet0: would repair',
        '    missing chain ebtables nat libvirt-I-vnet0 (9 rules)',
        '    missing hook ebtables nat PREROUTING: -i vnet0',
        'binding vnet9: skipped: interface absent; not applied',
    ]
    assert agent.differs(report)
    assert not agent.differs(Report(objects=(Obj('network', 'n', 'in_sync'), Obj('binding', 'v', 'skipped'))))


def test_parser_rejects_bad_interval(capsys):
    with pytest.raises(SystemExit):
        agent.build_parser().parse_args(['watch', '--interval', '0'])
    assert "'0' must be greater than 0" in capsys.readouterr().err


class Recorder:
    """Stands in for the reconcile: records when it ran, fails while told to."""

    def __init__(self, failures=0):
        self.calls = []
        self.failures = failures

    def __call__(self):
        self.calls.append(time.monotonic())
        if self.failures > 0:
            self.failures -= 1
            raise OSError('iptables-restore: exit code 4')
        return Report(objects=(Obj('binding', 'vnet0', 'repaired', missing=('missing chain x',)),))


def _watcher(tmp_path, recorder, **kwargs):
    state = tmp_path / 'state'
    state.mkdir(mode=0o700, exist_ok=True)
    watcher = agent.Watcher(str(state), reconcile=recorder, **kwargs)
    watcher.refresh_watched = lambda: None  # the store readers need the engine: not this test's subject
    thread = threading.Thread(target=watcher.loop, daemon=True)
    return watcher, thread


def test_watch_debounces_a_burst_and_reconciles_periodically(tmp_path, caplog):
    recorder = Recorder()
    watcher, thread = _watcher(tmp_path, recorder, interval=1.0, debounce=0.2, max_delay=2.0)
    caplog.set_level('INFO', logger='hypervisor-netfilter')
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not recorder.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(recorder.calls) == 1  # the start reconcile
        burst_start = time.monotonic()
        for index in range(20):  # firewalld reload + 19 link events within 0.1 s
            watcher.events.put(agent.Event('firewalld reloaded' if index == 0 else 'interface vnet%d appeared' % index))
            time.sleep(0.005)
        time.sleep(0.6)
        assert len(recorder.calls) == 2  # one reconcile for the whole burst
        assert 0.2 <= recorder.calls[1] - burst_start < 0.6
        time.sleep(1.2)
        assert len(recorder.calls) == 3  # the periodic one, 1 s after the last
    finally:
        watcher.stop()
        thread.join(5)
    assert not thread.is_alive()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith('reconciling: firewalld reloaded, interface vnet1 appeared') for m in messages)
    assert any(m.startswith('repaired binding vnet0 (start)') and 'missing chain x' in m for m in messages)


def test_watch_max_delay_bounds_a_continuous_stream(tmp_path):
    recorder = Recorder()
    watcher, thread = _watcher(tmp_path, recorder, interval=60.0, debounce=0.3, max_delay=0.5)
    thread.start()
    try:
        time.sleep(0.2)
        assert len(recorder.calls) == 1  # the start reconcile, at once
        start = time.monotonic()
        while time.monotonic() - start < 1.6:  # an event every 0.1 s: never quiet for 0.3 s
            watcher.events.put(agent.Event('interface vnet1 appeared'))
            time.sleep(0.1)
        during = [t for t in recorder.calls if t > start]
        # max_delay (0.5 s) bounds the wait: reconciles at ~0.5, ~1.0, ~1.5 s into the stream
        assert len(during) == 3, [t - start for t in during]
        assert all(0.4 <= b - a <= 0.7 for a, b in zip([start] + during, during)), [t - start for t in during]
    finally:
        watcher.stop()
        thread.join(5)


def test_watch_backs_off_after_failures(tmp_path, caplog):
    recorder = Recorder(failures=3)
    watcher, thread = _watcher(tmp_path, recorder, interval=30.0)
    caplog.set_level('INFO', logger='hypervisor-netfilter')
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(recorder.calls) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
        thread.join(5)
    gaps = [b - a for a, b in zip(recorder.calls, recorder.calls[1:])]
    assert len(recorder.calls) == 4, recorder.calls
    # 1 s, 2 s, 4 s between the attempts, then success
    assert [round(g) for g in gaps] == [1, 2, 4], gaps
    messages = [r.getMessage() for r in caplog.records]
    assert sum('failed: OSError: iptables-restore: exit code 4' in m for m in messages) == 3


def test_watch_checks_again_after_firewalld(tmp_path):
    recorder = Recorder()
    watcher, thread = _watcher(tmp_path, recorder, interval=60.0, debounce=0.05, settle=(0.5, 1.0))
    thread.start()
    try:
        time.sleep(0.2)
        start = time.monotonic()
        watcher.events.put(agent.Event('firewalld reloaded'))
        time.sleep(1.5)
    finally:
        watcher.stop()
        thread.join(5)
    after = [t - start for t in recorder.calls[1:]]
    # the reconcile for the event, then the two checks 0.5 s and 1.0 s after it
    assert len(after) == 3 and after[0] < 0.3, after
    assert 0.4 < after[1] - after[0] < 0.7 and 0.9 < after[2] - after[0] < 1.2, after
    # a link event does not ask for extra checks
    recorder2 = Recorder()
    watcher, thread = _watcher(tmp_path, recorder2, interval=60.0, debounce=0.05, settle=(0.5, 1.0))
    thread.start()
    try:
        time.sleep(0.2)
        watcher.events.put(agent.Event('interface vnet3 appeared'))
        time.sleep(1.5)
    finally:
        watcher.stop()
        thread.join(5)
    assert len(recorder2.calls) == 2
