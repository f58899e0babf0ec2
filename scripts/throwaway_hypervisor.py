# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one command inside a throwaway hypervisor, then remove it.

    python scripts/throwaway_hypervisor.py [--guests N] [--no-ipv6] -- CMD ARGS...

Builds (tests/lib/netns.py) a host namespace with bridge br0 and N guest
namespaces wired through vnet0..vnetN-1, runs CMD inside the host namespace
with HNF_* variables describing them (HNF_HOST_NS, HNF_BRIDGE, HNF_GUESTS,
HNF_GUEST<i>_NS/_PORT/_MAC/_IP/_IP6), and deletes every namespace afterwards,
also on failure or SIGINT/SIGTERM. Exits with CMD's exit status.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests', 'lib'))

import netns as nslib  # noqa: E402 pylint: disable=wrong-import-position


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def describe(hv):
    env = {'HNF_HOST_NS': hv.host.name, 'HNF_BRIDGE': hv.bridge, 'HNF_HOST_IP': hv.host_ip,
           'HNF_GUESTS': str(len(hv.guests))}
    for index, guest in enumerate(hv.guests):
        prefix = 'HNF_GUEST%d_' % index
        env.update({prefix + 'NS': guest.ns.name, prefix + 'PORT': guest.port, prefix + 'MAC': guest.mac,
                    prefix + 'IP': guest.ip, prefix + 'IP6': guest.ip6})
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--guests', type=int, default=2)
    parser.add_argument('--no-ipv6', action='store_true')
    parser.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('no command given (after --)')
    ok, reason = nslib.can_create_namespaces()
    if not ok:
        sys.stderr.write('throwaway_hypervisor: cannot run: %s\n' % reason)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_exit)
    with nslib.ThrowawayHypervisor(guests=args.guests, ipv6=not args.no_ipv6) as hv:
        hv.host.assert_isolated()
        env = dict(os.environ)
        env.update(describe(hv))
        sys.stderr.write('throwaway_hypervisor: host %s, bridge %s, guests %s\n' % (
            hv.host.name, hv.bridge, ', '.join('%s=%s/%s' % (g.port, g.mac, g.ip) for g in hv.guests)))
        sys.stderr.flush()
        return subprocess.call(hv.host.exec_argv(command), env=env)


if __name__ == '__main__':
    sys.exit(main())
