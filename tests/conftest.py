# -*- coding: utf-8 -*-
"""Make ``ansible_collections.hypervisor.netfilter`` importable when pytest runs
straight from a checkout (ansible-test does this itself)."""

import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ensure_collection_on_path():
    try:
        import ansible_collections.hypervisor.netfilter  # noqa: F401 pylint: disable=unused-import
        return
    except ImportError:
        pass
    # An ansible-test copy lives under .../ansible_collections/hypervisor/netfilter already.
    parts = _REPO.split(os.sep)
    if parts[-3:-1] == ['ansible_collections', 'hypervisor'] and parts[-1] == 'netfilter':
        sys.path.insert(0, os.sep.join(parts[:-3]))
        return
    root = os.path.join(_REPO, '.ansible', 'collections')
    link = os.path.join(root, 'ansible_collections', 'hypervisor', 'netfilter')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(_REPO, link)
    sys.path.insert(0, root)


_ensure_collection_on_path()
