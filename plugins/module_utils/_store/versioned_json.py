# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read one versioned JSON document of the state directory (bindings.json, host.json)."""

from __future__ import annotations

import errno
import json


def read_versioned(path, what, version, member, kind, error):
    """``document[member]`` of the JSON file at ``path``, or None when the file does not exist.

    The document must be ``{"version": version, member: <kind>}``; anything else raises
    ``error`` naming ``what`` (e.g. "stored bindings") and the path, so a damaged store
    stops the run instead of being taken for an empty one.
    """
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise error('cannot read %s %s: %s' % (what, path, exc))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise error('%s %s are damaged: %s' % (what, path, exc))
    if not isinstance(data, dict) or data.get('version') != version or not isinstance(data.get(member), kind):
        raise error('%s %s: unknown format (version %r)'
                    % (what, path, data.get('version') if isinstance(data, dict) else None))
    return data[member]
