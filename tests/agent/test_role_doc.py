# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-doc documents the role from meta/argument_specs.yml, and every
variable of defaults/main.yml is documented there with the same default."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

import ansible_collections
from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import ROLE, role_defaults

COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])


def test_ansible_doc_shows_the_role():
    binary = os.path.join(os.path.dirname(sys.executable), 'ansible-doc')
    proc = subprocess.run([binary, '-t', 'role', '--json', 'hypervisor.netfilter.host'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)['hypervisor.netfilter.host']
    options = doc['entry_points']['main']['options']
    assert {'host_filters', 'host_networks', 'host_nics', 'host_exclusive', 'host_install_root',
            'host_systemd', 'host_state_dir'} <= set(options)


def test_every_default_is_documented_with_its_value():
    with open(os.path.join(ROLE, 'meta', 'argument_specs.yml')) as handle:
        options = yaml.safe_load(handle)['argument_specs']['main']['options']
    defaults = role_defaults()
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert options[name].get('default') == value, name
