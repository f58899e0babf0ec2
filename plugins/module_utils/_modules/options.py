# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs the modules share, and the one lxml check.

The documentation of these options is the doc fragment
``hypervisor.netfilter.common`` (``plugins/doc_fragments/common.py``); keep
both in step (``ansible-test sanity`` compares them).  One name per concept:
the iptables variant is ``xtables_backend`` everywhere (``virt_network`` also
has ``firewall_backend``, the layout, so a bare ``backend`` would be
ambiguous); ``backend`` stays an alias where it existed.
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import parse as nwfilter_parse
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.host_settings import DEFAULT_STATE_DIR

VARIANTS = ('auto', 'nft', 'legacy')
DEFAULT_LOCK_TIMEOUT = 60


def common_options():
    """``state_dir`` and ``lock_timeout``."""
    return dict(
        state_dir=dict(type='path', default=DEFAULT_STATE_DIR),
        lock_timeout=dict(type='int', default=DEFAULT_LOCK_TIMEOUT),
    )


def xtables_options(aliases=()):
    """``xtables_backend`` (with ``aliases``, e.g. the old name ``backend``); no default: a host
    setting, the stored one applies unless the option is given."""
    return dict(xtables_backend=dict(type='str', choices=list(VARIANTS), aliases=list(aliases)))


def ebtables_options():
    return dict(ebtables_backend=dict(type='str', choices=list(VARIANTS)))


def require_lxml(module, reason=None):
    """Fail the module run when lxml is missing on the managed host."""
    if not nwfilter_parse.HAS_LXML:
        module.fail_json(msg=missing_required_lib('lxml', reason=reason),
                         exception=str(nwfilter_parse.LXML_IMPORT_ERROR))
