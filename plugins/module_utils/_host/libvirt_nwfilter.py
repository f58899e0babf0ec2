# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Living next to libvirt's nwfilter driver: who owns a guest NIC's chains.

libvirt and this collection use the same chain names for a NIC
(``libvirt-I-vnet0``, ``FI-vnet0``, ...). If both bound one interface, each
run of one would rewrite the other's rules. So before we bind an interface
that is not in our store yet, we refuse when

* libvirt's nwfilter driver has a binding for it: its binding file
  ``/run/libvirt/nwfilter-binding/IF.xml`` exists (libvirt re-instantiates
  from these files whenever it starts or a filter changes), or
* the kernel already has chains of that interface that we did not make
  (libvirt's, with its state in another place, or another tool's), unless the
  caller takes them over explicitly.

The error explains the conflict and the hand-over. The paths are parameters
(tests point them at a temporary directory).
"""

from __future__ import annotations

import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError

DEFAULT_BINDING_DIR = '/run/libvirt/nwfilter-binding'
DEFAULT_FILTER_DIR = '/etc/libvirt/nwfilter'

HANDOVER = ("To hand interface {ifname} over to this collection: import libvirt's filters and this binding "
            "(examples/import_from_libvirt.yml does both: nwfilter src=... and guest_nic_filter "
            "binding_xml=...), stop libvirt's nwfilter driver (systemctl stop virtnwfilterd, or libvirtd; the "
            "rules stay in force), move {path} out of {directory}, then bind again with takeover=true: the "
            "chains are replaced in one atomic transaction. Or remove the <filterref> from the guest's "
            "interface in libvirt (virsh nwfilter-binding-delete {ifname} removes libvirt's rules at once).")


def binding_file(interface, binding_dir=DEFAULT_BINDING_DIR):
    """Path of libvirt's binding file for ``interface`` if it exists, else None."""
    if not binding_dir:
        return None
    path = os.path.join(binding_dir, interface + '.xml')
    return path if os.path.isfile(path) else None


def _chain_patterns(interface):
    name = re.escape(interface)
    # Root chains only: a sub-chain I-vnet0-arp could also belong to an interface named vnet0-arp...
    return (re.compile(r'^:(libvirt-[IO]-%s) ' % name), re.compile(r'^:(F[IO]-%s|HI-%s) ' % (name, name)))


def interface_chains(interface, live_texts):
    """Chain names of ``interface`` in the live ``{family: *-save text}``."""
    found = []
    patterns = _chain_patterns(interface)
    for family in sorted(live_texts):
        for line in (live_texts[family] or '').splitlines():
            for pattern in patterns:
                match = pattern.match(line)
                if match and match.group(1) not in found:
                    found.append(match.group(1))
    return found


class Coexistence:
    """The checks for interfaces we are asked to bind and have not bound before."""

    def __init__(self, binding_dir=DEFAULT_BINDING_DIR, takeover=False):
        self.binding_dir = binding_dir
        self.takeover = takeover

    def check_files(self, interfaces):
        """Refuse an interface libvirt's nwfilter driver has a binding for (before reading the kernel)."""
        for interface in interfaces:
            path = binding_file(interface, self.binding_dir)
            if path:
                raise BindingError(
                    "interface %s is bound by libvirt's nwfilter driver (%s exists): libvirt and this collection "
                    "would both own its chains (libvirt-I-%s, FI-%s, ...) and overwrite each other's rules. "
                    % (interface, path, interface, interface)
                    + HANDOVER.format(ifname=interface, path=path, directory=self.binding_dir))

    def check_chains(self, interfaces, live_texts):
        """Refuse an interface whose chains exist in the kernel but are not ours (unless taking over)."""
        if self.takeover:
            return
        for interface in interfaces:
            chains = interface_chains(interface, live_texts)
            if chains:
                raise BindingError(
                    "interface %s already has chains this collection did not make (%s): libvirt's nwfilter "
                    "driver (or another tool) filters it, and both would overwrite each other's rules. If libvirt "
                    "no longer manages it (its driver is stopped and it has no binding file in %s), bind again "
                    "with takeover=true: the chains are replaced in one atomic transaction. Otherwise remove the "
                    "<filterref> from the guest's interface in libvirt first (virsh nwfilter-binding-delete %s)."
                    % (interface, ', '.join(chains), self.binding_dir, interface))
