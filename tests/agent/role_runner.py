# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run steps inside one private mount namespace with a tmpfs over the install root.

    python role_runner.py SPEC.json RESULT.json

Started by test_role.py under ``ip netns exec`` (a network namespace and a
mount namespace whose mounts do not propagate back to the machine): mounts a
tmpfs on ``spec['root']`` so every file the role installs lives only in this
namespace, then runs ``spec['steps']`` (argument lists) in order and writes
their exit codes and output to RESULT.json (outside the tmpfs).
"""

import json
import subprocess
import sys


def main():
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    own_mounts = subprocess.run(['findmnt', '-n', '-o', 'TARGET', spec['root']], stdout=subprocess.PIPE,
                                universal_newlines=True, check=False).stdout.strip()
    if own_mounts:
        raise SystemExit('%s is a mount point already; refusing' % spec['root'])
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'hnf-role-test', spec['root']], check=True)
    results = []
    for step in spec['steps']:
        proc = subprocess.run(step['argv'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=dict(spec.get('env') or {}, **step.get('env', {})) or None,
                              check=False)
        results.append({'name': step['name'], 'rc': proc.returncode, 'stdout': proc.stdout, 'stderr': proc.stderr})
        if step.get('stop_on_error') and proc.returncode != 0:
            break
    with open(sys.argv[2], 'w') as handle:
        json.dump(results, handle)


if __name__ == '__main__':
    main()
