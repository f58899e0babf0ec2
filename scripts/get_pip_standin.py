# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for ansible-test's get-pip download (no route to its host here).

scripts/bootstrap.sh copies it to ~/.ansible/test/cache/get_pip_<ver>.py.
ansible-test runs it inside a fresh venv with pip's install arguments. pip
comes from the interpreter's own ensurepip, run in a child process: run
in-process, pip would ignore /etc/pip.conf (and its certificate settings).
Then the requested pip is installed from the index configured there.
"""

import subprocess
import sys


def main():
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)


if __name__ == '__main__':
    main()
