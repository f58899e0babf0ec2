# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the network stage's firewalld questions (not a test).

    sudo python benchmarks/bench_firewalld_zone.py [--nics 100] [--repeat 5] [--engine COLLECTION_ROOT]

In a throwaway network namespace with a real firewalld (nftables backend) on
a private D-Bus (tests/lib/firewalld.py): clean-traffic bound to N NICs (the
taps are not created) and one ``nat`` virt_network whose bridge is in
firewalld's ``libvirt`` zone, applied once. Then, as wall-clock medians of
--repeat runs of the ``hypervisor-netfilter`` process:

* in sync   - ``apply --check`` with everything in force;
* reload    - ``apply`` right after ``firewall-cmd --reload`` returned (the
              reload flushed the NIC and network rules; the bridge keeps its
              zone), until the process exits with every rule back;
* no zone   - ``apply --check`` in sync with the same NICs and no network
              (a separate state_dir): what the firewalld questions add.

``--engine`` runs the agent with another checkout's engine
(``HYPERVISOR_NETFILTER_ENGINE``) to compare before and after a change.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))
import conftest  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import store_bindings  # noqa: E402
from ansible_collections.hypervisor.netfilter.tests.lib.firewalld import PrivateFirewalld  # noqa: E402
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns, missing_tools  # noqa: E402
from ansible_collections.hypervisor.netfilter.tests.lib.network_support import run_module  # noqa: E402

sys.path.insert(0, os.path.join(REPO, 'benchmarks'))
from bench_restore import agent, nics, saves  # noqa: E402 pylint: disable=wrong-import-position


def measure(count, repeat, workdir, env):
    zoned = os.path.join(workdir, 'zoned')
    plain = os.path.join(workdir, 'plain')
    store_bindings(zoned, nics(count))
    store_bindings(plain, nics(count))
    with Netns(tag='bfwz') as ns:
        fw = PrivateFirewalld(ns, os.path.join(workdir, 'fw'))
        os.makedirs(fw.dir)
        try:
            fw.start()
            env = dict(env, **fw.env)
            run_module(ns, env=fw.env, state_dir=zoned, name='natnet', bridge='virbrb', forward_mode='nat',
                       ipv4={'address': '10.71.0.1/24', 'dhcp': True})
            if fw.zone_of('virbrb') != 'libvirt':
                raise SystemExit('the bridge did not land in the libvirt zone')
            agent(ns, 'apply', '--state-dir', zoned, env=env)
            wanted = saves(ns)
            in_sync, reload = [], []
            for _run in range(repeat):
                took, proc = agent(ns, 'apply', '--check', '--state-dir', zoned, env=env)
                if proc.returncode != 0:
                    raise SystemExit('not in sync: %s %s' % (proc.stdout[-2000:], proc.stderr[-2000:]))
                in_sync.append(took)
                fw.cmd('--reload')
                took, _proc = agent(ns, 'apply', '--state-dir', zoned, env=env)
                if saves(ns) != wanted:
                    raise SystemExit('apply after a reload did not put every rule back')
                reload.append(took)
        finally:
            fw.stop()
    with Netns(tag='bfwp') as ns:
        agent(ns, 'apply', '--state-dir', plain, env=env)
        no_zone = [agent(ns, 'apply', '--check', '--state-dir', plain, env=env)[0] for _run in range(repeat)]
    return statistics.median(in_sync), statistics.median(reload), statistics.median(no_zone)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--nics', type=int, default=100)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--engine', help='collection root whose engine the agent runs (default: this checkout)')
    args = parser.parse_args()
    missing = missing_tools('firewalld', 'firewall-cmd', 'dbus-daemon')
    if os.geteuid() != 0 or missing:
        raise SystemExit('needs root and %s' % ', '.join(missing or ['namespaces']))
    env = dict(os.environ)
    if args.engine:
        env['HYPERVISOR_NETFILTER_ENGINE'] = os.path.abspath(args.engine)
    workdir = tempfile.mkdtemp(prefix='hnf-bench-fwz-')
    try:
        in_sync, reload, no_zone = measure(args.nics, args.repeat, workdir, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print('engine: %s; %d NICs, one nat network in the libvirt zone; medians of %d; load average %.1f'
          % (args.engine or REPO, args.nics, args.repeat, os.getloadavg()[0]))
    print('| apply --check in sync | apply after firewall-cmd --reload | apply --check in sync, no network |')
    print('| ---: | ---: | ---: |')
    print('| %.3f s | %.3f s | %.3f s |' % (in_sync, reload, no_zone))


if __name__ == '__main__':
    main()
