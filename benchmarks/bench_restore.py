# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the host agent at N = 10, 100, 1000 guest NICs (not a test).

    sudo python benchmarks/bench_restore.py [--sizes 10,100,1000] [--repeat 3] [--idle 60] [--no-firewalld]

Everything runs in throwaway network namespaces (tests/lib/netns.py) with a
state_dir in a temp dir. For each N, clean-traffic is bound to N NICs (one IP
each; the taps are not created: their rules are installed all the same).

* boot restore  - ``hypervisor-netfilter apply`` (the process the boot unit
                  runs: Python start, engine import, store, compile cache, one
                  read, one restore per family) into a fresh, empty namespace
                  with the state_dir of an earlier run kept (its caches too);
* floor         - one ``ebtables-restore`` / ``iptables-restore`` /
                  ``ip6tables-restore`` of the same final rules (their
                  ``*-save`` text) into a fresh namespace: what any restore
                  must cost;
* reload repair - with a real firewalld (nftables backend) in the namespace on
                  a private D-Bus and ``hypervisor-netfilter watch`` running:
                  from ``firewall-cmd --reload`` returning (firewalld has
                  flushed the ebtables/iptables tables and sent ``Reloaded``)
                  until every rule is back (polled with the *-save tools every
                  20 ms), and the agent's own reconcile time from its log;
* idle CPU      - (``--idle S``) CPU time of ``watch`` (and its children:
                  the periodic reconcile) over S seconds without events, from
                  /proc/<pid>/stat, with the 30 s default interval.

Times are wall-clock medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))
import conftest  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import (  # noqa: E402
    AGENT, agent_python, store_bindings)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns, missing_tools  # noqa: E402

_COUNTERS = re.compile(r' ?\[\d+:\d+\]| -c \d+ \d+')
FAMILIES = (('ebtables-save', 'ebtables-restore'), ('iptables-save', 'iptables-restore'),
            ('ip6tables-save', 'ip6tables-restore'))


def nics(count):
    return [('vm%d-eth0' % n, '52:54:%02x:%02x:%02x:%02x' % (n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255),
             'clean-traffic', {'IP': '10.%d.%d.%d' % (n >> 16 & 255, n >> 8 & 255, n & 255 or 1)})
            for n in range(1, count + 1)]


def agent(ns, *args, env=None):
    started = time.monotonic()
    proc = ns.run([agent_python(), AGENT] + list(args), check=False, env=env, timeout=600)
    took = time.monotonic() - started
    if proc.returncode not in (0, 2):
        raise SystemExit('agent %s failed (%d): %s %s'
                         % (' '.join(args), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return took, proc


def saves(ns):
    """The *-save texts without comment lines (they carry a timestamp) and counters."""
    out = {}
    for save, _restore in FAMILIES:
        lines = ns.run([save]).stdout.splitlines()
        out[save] = '\n'.join(_COUNTERS.sub('', line) for line in lines if not line.startswith('#')) + '\n'
    return out


def rule_lines(texts):
    return sum(1 for text in texts.values() for line in text.splitlines() if line.startswith('-A '))


def floor(texts):
    """One restore per family of the same rules into a fresh namespace."""
    with Netns(tag='bflr') as ns:
        started = time.monotonic()
        for save, restore in FAMILIES:
            if texts[save].strip():
                ns.run([restore], input_text=texts[save])
        return time.monotonic() - started


def boot_restore(count, repeat, workdir):
    state_dir = os.path.join(workdir, 'state-%d' % count)
    store_bindings(state_dir, nics(count))
    with Netns(tag='bwarm') as ns:  # the run before the "reboot": caches in state_dir
        agent(ns, 'apply', '--state-dir', state_dir)
        wanted = saves(ns)
    times, floors = [], []
    for _run in range(repeat):
        with Netns(tag='bboot') as ns:
            took, _proc = agent(ns, 'apply', '--state-dir', state_dir)
            if saves(ns) != wanted:
                raise SystemExit('boot restore of %d NICs did not give the same rules' % count)
            times.append(took)
        floors.append(floor(wanted))
    return statistics.median(times), statistics.median(floors), rule_lines(wanted), state_dir, wanted


def reload_repair(count, repeat, state_dir, wanted, workdir):
    from ansible_collections.hypervisor.netfilter.tests.lib.firewalld import PrivateFirewalld
    log_path = os.path.join(workdir, 'agent-%d.log' % count)
    times, own = [], []
    with Netns(tag='brld') as ns:
        fw = PrivateFirewalld(ns, os.path.join(workdir, 'fw-%d' % count))
        os.makedirs(fw.dir)
        watch = None
        try:
            fw.start()
            env = dict(os.environ, **fw.env)
            agent(ns, 'apply', '--state-dir', state_dir, env=env)
            with open(log_path, 'w') as log:
                watch = ns.popen([agent_python(), AGENT, 'watch', '-v', '--state-dir', state_dir, '--interval', '600'],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
            deadline = time.monotonic() + 120
            while 'reconciled (start)' not in _read(log_path) and 'reconcile (start)' not in _read(log_path):
                if time.monotonic() > deadline or watch.poll() is not None:
                    raise SystemExit('watch did not start: %s' % _read(log_path))
                time.sleep(0.1)
            for _run in range(repeat):
                fw.cmd('--reload')
                returned = time.monotonic()
                while saves(ns) != wanted:
                    if time.monotonic() - returned > 120:
                        raise SystemExit('rules not restored after a reload: %s' % _read(log_path)[-3000:])
                    time.sleep(0.02)
                times.append(time.monotonic() - returned)
                time.sleep(6)  # let the two checks after the reload pass
            own = [float(m) for m in re.findall(r'reconcile \(firewalld reloaded\) repaired \d+ of \d+ objects in '
                                                r'([0-9.]+) s', _read(log_path))]
        finally:
            if watch is not None and watch.poll() is None:
                watch.terminate()
                watch.wait(timeout=30)
            fw.stop()
    return statistics.median(times), (statistics.median(own) if own else float('nan'))


def _read(path):
    with open(path) as handle:
        return handle.read()


def _cpu_ticks(pid):
    with open('/proc/%d/stat' % pid) as handle:
        fields = handle.read().rsplit(')', 1)[1].split()
    # fields[11..14] = utime stime cutime cstime (stat fields 14-17)
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def idle_cpu(seconds, state_dir):
    """CPU seconds of an idle watch over ``seconds`` (own, children), after its start reconcile."""
    hz = os.sysconf('SC_CLK_TCK')
    with Netns(tag='bidle') as ns:
        agent(ns, 'apply', '--state-dir', state_dir)
        # ip netns exec execs the agent: the pid is the agent's own.
        watch = ns.popen([agent_python(), AGENT, 'watch', '--state-dir', state_dir],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS='unix:path=/nonexistent/bus'))
        try:
            time.sleep(5)
            own0, children0 = _cpu_ticks(watch.pid)
            time.sleep(seconds)
            own1, children1 = _cpu_ticks(watch.pid)
        finally:
            watch.terminate()
            watch.wait(timeout=30)
    return (own1 - own0) / hz, (children1 - children0) / hz


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--sizes', default='10,100,1000')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--idle', type=int, default=0, metavar='SECONDS', help='measure idle CPU of watch')
    parser.add_argument('--no-firewalld', action='store_true', help='skip the reload-repair measurement')
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit('run as root (network namespaces)')
    missing = missing_tools('ebtables-restore', 'iptables-restore', 'ip6tables-restore')
    if missing:
        raise SystemExit('missing tools: %s' % ', '.join(missing))
    with_firewalld = not args.no_firewalld and not missing_tools('firewalld', 'firewall-cmd', 'dbus-daemon')
    workdir = tempfile.mkdtemp(prefix='hnf-bench-restore-')
    try:
        print('agent: %s %s; median of %d; load average %s'
              % (agent_python(), os.path.relpath(AGENT, REPO), args.repeat, os.getloadavg()[0]))
        print('%6s %7s %12s %10s %7s %14s %14s'
              % ('NICs', 'rules', 'boot restore', 'floor', 'ratio', 'reload repair', 'agent reconcile'))
        last_state = None
        for count in [int(s) for s in args.sizes.split(',')]:
            boot, flr, rules, state_dir, wanted = boot_restore(count, args.repeat, workdir)
            repair, own = (reload_repair(count, args.repeat, state_dir, wanted, workdir) if with_firewalld
                           else (float('nan'), float('nan')))
            print('%6d %7d %10.3f s %8.3f s %6.1fx %12.3f s %13.3f s'
                  % (count, rules, boot, flr, boot / flr, repair, own))
            sys.stdout.flush()
            last_state = state_dir
        if args.idle and last_state:
            own_cpu, children_cpu = idle_cpu(args.idle, last_state)
            print('idle watch (%s NICs, interval 30 s) over %d s: %.2f s CPU in the agent, %.2f s in its children '
                  '(periodic reconciles) = %.2f%% of one core'
                  % (args.sizes.split(',')[-1], args.idle, own_cpu, children_cpu,
                     100.0 * (own_cpu + children_cpu) / args.idle))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
