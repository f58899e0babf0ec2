# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one JSON cache of ``state_dir/cache/``: entries a run can rebuild, kept to save time.

``{"version": N, "entries": {key: value}}``, written atomically but not
fsynced (a lost or damaged cache only costs a slower run, never a wrong one:
it is then started afresh).  A run keeps only the entries it used, so the
file does not grow with keys of rules or bindings that are gone.
"""

from __future__ import annotations

import json
import os

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write

CACHE_DIR = 'cache'


def cache_path(state_dir, name):
    """``state_dir/cache/<name>.json``, or None without a state_dir (nothing cached)."""
    return os.path.join(state_dir, CACHE_DIR, name + '.json') if state_dir else None


class JsonCache:
    """Subclasses set ``VERSION`` (bump it when the meaning of entries changes).

    ``lazy``: the file is read at the first lookup or store, not at once (a run that may need
    nothing from a large cache does not pay for reading it); never read, it is never written.
    """

    VERSION = 1

    def __init__(self, path, lazy=False):
        self.path = path
        self.entries = {}
        self.used = {}
        self.dirty = False
        self.loaded = False
        if not lazy:
            self._load()

    def _load(self):
        self.loaded = True
        if self.path and os.path.exists(self.path):
            try:
                with open(self.path, encoding='utf-8') as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                data = None  # damaged: start afresh
            if isinstance(data, dict) and data.get('version') == self.VERSION:
                self.entries = data.get('entries') or {}

    def lookup(self, key):
        """The stored value of ``key`` (marked as used), or None."""
        if not self.loaded:
            self._load()
        value = self.entries.get(key)
        if value is not None:
            self.used[key] = value
        return value

    def store(self, key, value):
        """Set ``key`` (JSON-able ``value``), marked as used."""
        if not self.loaded:
            self._load()
        self.used[key] = value
        if self.entries.get(key) != value:
            self.entries[key] = value
            self.dirty = True

    def save(self):
        """Write the entries this run used, if anything differs from the file."""
        if not self.path or not self.loaded or (not self.dirty and len(self.used) == len(self.entries)):
            return
        atomic_write(self.path, json.dumps({'version': self.VERSION, 'entries': self.used}, separators=(',', ':')),
                     durable=False)
