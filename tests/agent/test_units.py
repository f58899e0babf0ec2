# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's systemd units: systemd-analyze verify together with the real
firewalld and libvirt units, a broken unit fails it, and `systemctl --root
enable` makes libvirt's daemons and guests require the boot restore."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import (
    AGENT, UNITS, libvirt_unit_dir, render_units, system_unit)

LIBVIRT_UNITS = ('libvirt-guests.service', 'libvirtd.service', 'libvirtd.socket', 'libvirtd-ro.socket',
                 'libvirtd-admin.socket', 'virt-guest-shutdown.target', 'virtlogd.socket', 'virtlockd.socket',
                 'virtlogd.service', 'virtlockd.service')


def require_systemd_analyze():
    if not shutil.which('systemd-analyze'):
        pytest.skip('systemd-analyze is missing (apt-get install systemd)')


def verify(directory, names):
    return subprocess.run(['systemd-analyze', 'verify', '--man=no'] + [os.path.join(directory, n) for n in names],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)


@pytest.fixture
def unit_dir(tmp_path):
    """Our units (ExecStart pointing at the agent in this checkout) next to the real
    firewalld.service and libvirt units, in a temp dir."""
    require_systemd_analyze()
    firewalld = system_unit('firewalld.service')
    if firewalld is None:
        pytest.skip('firewalld.service is not installed (apt-get install firewalld)')
    libvirt = libvirt_unit_dir()
    directory = str(tmp_path / 'units')
    os.makedirs(directory)
    render_units(directory, host_bin_dir=os.path.dirname(AGENT))
    shutil.copy(firewalld, directory)
    for name in LIBVIRT_UNITS:
        if os.path.isfile(os.path.join(libvirt, name)):
            shutil.copy(os.path.join(libvirt, name), directory)
    for exe in ('/usr/sbin/firewalld', '/usr/lib/libvirt/libvirt-guests.sh'):
        if not os.access(exe, os.X_OK):
            pytest.skip('%s is missing (firewalld / libvirt-clients): systemd-analyze verify checks ExecStart' % exe)
    return directory


def test_units_verify_with_firewalld_and_libvirt_guests(unit_dir):
    names = list(UNITS) + ['firewalld.service', 'libvirt-guests.service']
    result = verify(unit_dir, names)
    assert result.returncode == 0, result.stderr
    # Warnings (unknown keys, bad values) do not change the exit code: there must be none.
    assert result.stderr.strip() == '', result.stderr


def test_units_verify_with_libvirtd(unit_dir):
    result = verify(unit_dir, list(UNITS) + ['libvirtd.service'])
    assert result.returncode == 0 and result.stderr.strip() == '', result.stderr


def _replace(path, old, new):
    with open(path) as handle:
        text = handle.read()
    assert old in text
    with open(path, 'w') as handle:
        handle.write(text.replace(old, new))


def test_verify_fails_on_missing_executable(unit_dir):
    _replace(os.path.join(unit_dir, 'hypervisor-netfilter-restore.service'),
             'ExecStart=' + os.path.dirname(AGENT), 'ExecStart=/nonexistent')
    result = verify(unit_dir, list(UNITS) + ['firewalld.service', 'libvirt-guests.service'])
    assert result.returncode != 0
    assert 'Command /nonexistent/hypervisor-netfilter is not executable' in result.stderr


def test_verify_fails_on_ordering_cycle(unit_dir):
    # The restore ordered after the guests it must precede: a cycle.
    _replace(os.path.join(unit_dir, 'hypervisor-netfilter-restore.service'),
             'After=systemd-modules-load.service', 'After=libvirt-guests.service systemd-modules-load.service')
    with open(os.path.join(unit_dir, 'libvirt-guests.service'), 'a') as handle:
        handle.write('\n[Unit]\nRequires=hypervisor-netfilter-restore.service\n')
    result = verify(unit_dir, list(UNITS) + ['firewalld.service', 'libvirt-guests.service'])
    assert result.returncode != 0
    assert 'ordering cycle' in result.stderr


def test_verify_reports_a_bad_key(unit_dir):
    _replace(os.path.join(unit_dir, 'hypervisor-netfilter.service'), 'Type=simple', 'Typo=simple')
    result = verify(unit_dir, list(UNITS))
    assert "Unknown key 'Typo'" in result.stderr  # a warning: the tests above insist on none


def test_order_after_firewalld_and_before_the_guests(unit_dir):
    with open(os.path.join(unit_dir, 'hypervisor-netfilter-restore.service')) as handle:
        text = handle.read()
    lines = dict(line.split('=', 1) for line in text.splitlines() if '=' in line and not line.startswith('#'))
    assert 'firewalld.service' in lines['After'].split()
    assert {'libvirtd.service', 'virtqemud.service', 'libvirt-guests.service',
            'hypervisor-netfilter.target'} <= set(lines['Before'].split())
    assert {'libvirtd.service', 'virtqemud.service', 'libvirt-guests.service',
            'hypervisor-netfilter.target'} <= set(lines['RequiredBy'].split())
    assert lines['Type'] == 'oneshot' and lines['RemainAfterExit'] == 'yes'


def test_enable_makes_guests_require_the_restore(tmp_path):
    """`systemctl --root enable` (offline, what the role does without a running systemd)
    puts the restore into libvirtd's, virtqemud's, libvirt-guests' and our target's
    .requires: with the restore failed, systemd does not start them."""
    if not shutil.which('systemctl'):
        pytest.skip('systemctl is missing')
    root = tmp_path / 'root'
    unit_dir = root / 'etc' / 'systemd' / 'system'
    unit_dir.mkdir(parents=True)
    render_units(str(unit_dir))
    result = subprocess.run(['systemctl', '--root=%s' % root, 'enable'] + list(UNITS),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert result.returncode == 0, result.stdout
    for requirer in ('libvirtd.service', 'virtqemud.service', 'virtlxcd.service', 'libvirt-guests.service',
                     'hypervisor-netfilter.target'):
        link = unit_dir / (requirer + '.requires') / 'hypervisor-netfilter-restore.service'
        assert os.readlink(str(link)) == '/etc/systemd/system/hypervisor-netfilter-restore.service', requirer
    for wanted in UNITS:
        assert (unit_dir / 'multi-user.target.wants' / wanted).is_symlink()
    again = subprocess.run(['systemctl', '--root=%s' % root, 'is-enabled'] + list(UNITS),
                           stdout=subprocess.PIPE, universal_newlines=True, check=False)
    assert again.stdout.split() == ['enabled'] * 3
