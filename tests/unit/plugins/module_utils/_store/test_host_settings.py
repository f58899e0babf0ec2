# -*- coding: utf-8 -*-
"""host.json: defaults, round trip, validation, damaged files."""
from __future__ import annotations

import os

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.host_settings import (
    HostSettings, HostSettingsError, load_host_settings, save_host_settings)


def test_defaults_fail_closed(tmp_path):
    settings = load_host_settings(str(tmp_path / 'none'))
    assert settings == HostSettings('auto', 'auto', 'iptables', False)
    assert host_settings.DEFAULT_STATE_DIR == '/etc/hypervisor-netfilter'


def test_round_trip_and_unchanged_save(tmp_path):
    state_dir = str(tmp_path)
    wanted = HostSettings().replace(xtables_backend='legacy', skip_missing_interfaces=True, firewall_backend=None)
    assert wanted.firewall_backend == 'iptables'  # None: option not given
    assert save_host_settings(state_dir, wanted) is True
    assert load_host_settings(state_dir) == wanted
    assert save_host_settings(state_dir, wanted) is False
    assert oct(os.stat(os.path.join(state_dir, 'host.json')).st_mode & 0o777) == '0o600'


@pytest.mark.parametrize('changes, message', [
    ({'xtables_backend': 'iptables'}, 'xtables_backend must be one of auto, nft, legacy'),
    ({'firewall_backend': 'ebtables'}, 'firewall_backend must be one of iptables, nftables'),
    ({'skip_missing_interfaces': 'yes'}, 'skip_missing_interfaces must be true or false'),
    ({'colour': 'blue'}, 'unknown host settings: colour'),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(HostSettingsError, match=message):
        HostSettings().replace(**changes)


@pytest.mark.parametrize('text, message', [
    ('{', 'are damaged'),
    ('{"version": 2, "settings": {}}', 'unknown format'),
    ('{"version": 1, "settings": {"ebtables_backend": "x"}}', 'host.json: ebtables_backend must be'),
])
def test_damaged_file_is_reported(tmp_path, text, message):
    (tmp_path / 'host.json').write_text(text)
    with pytest.raises(HostSettingsError, match=message):
        load_host_settings(str(tmp_path))
