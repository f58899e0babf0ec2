# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one interface-name rule (guest taps, bridges, forward devices) and link lookup.

Linux's ``dev_valid_name``: 1-15 characters (IFNAMSIZ 16 with the NUL), not
``.`` or ``..``, no ``/``, ``:`` or white space.  On top of it, because names
become xtables/nft arguments and file names: only ``[A-Za-z0-9_.@-]`` (no
shell metacharacters, no trailing ``+`` which is an xtables wildcard) and no
leading ``-`` (it would read as an option).  ``@`` is valid for the kernel
and harmless in our rules, so it is allowed.
"""

from __future__ import annotations

import os
import re

IFNAMSIZ = 16  # includes the terminating NUL: at most 15 characters
SYS_NET = '/sys/class/net'
_ALLOWED = re.compile(r'^[A-Za-z0-9_.@-]+$')
_ALLOWED_CHAR = re.compile(r'[A-Za-z0-9_.@-]')


def interface_name_problem(name):
    """Why ``name`` is not an interface name we accept, or None when it is fine."""
    if not isinstance(name, str) or not name:
        return 'an interface name must be a non-empty string, got %r' % (name,)
    if len(name) >= IFNAMSIZ:
        return '%d characters; Linux allows at most %d' % (len(name), IFNAMSIZ - 1)
    if name in ('.', '..'):
        return 'not a valid interface name'
    if name.endswith('+'):
        return "a trailing '+' is a wildcard in xtables, not an interface"
    if not _ALLOWED.match(name):
        bad = sorted(set(c for c in name if not _ALLOWED_CHAR.match(c)))
        return 'characters %s are not allowed (use letters, digits, _ . @ -)' % ', '.join(repr(c) for c in bad)
    if name.startswith('-'):
        return "must not start with '-'"
    return None


def link_exists(name):
    """Whether the interface exists in this network namespace."""
    return os.path.exists(os.path.join(SYS_NET, name))


def link_lookup():
    """``name -> bool`` over one listing of this namespace's interfaces (one read for a thousand names)."""
    try:
        names = frozenset(os.listdir(SYS_NET))
    except OSError:
        return link_exists
    return names.__contains__


def is_bridge(name):
    return os.path.isdir(os.path.join(SYS_NET, name, 'bridge'))
