# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options every module of the collection shares, documented once.

``hypervisor.netfilter.common``: where the host's state lives and how long to
wait for its lock; ``.xtables`` and ``.ebtables``: the tool variants.  A
module may add to an option here (for example an alias or a sentence of its
own); the argument specs are in ``module_utils/_modules/options.py``.
"""

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  state_dir:
    description:
      - Directory with the desired state of the host, shared by every module of this collection and the host
        agent - defined filters (C(filters/NAME.xml)), the guest NIC bindings (one file, C(bindings.json)), the
        virtual networks (C(networks/NAME.json)), the host settings (C(host.json)), the lock (C(.lock)) and
        caches (C(cache/)).
      - Every run ends by reconciling everything stored here with the kernel (networks first, then guest NIC
        filters), inside the same lock as its own change, so no module leaves another's rules missing; what it
        found and did is in RV(objects).
    type: path
    default: /etc/hypervisor-netfilter
  lock_timeout:
    description:
      - Seconds to wait while another run (another task, another play, the host agent) holds the lock of
        O(state_dir). Runs that change the host hold it exclusively, check mode and O(state=gathered) shared.
    type: int
    default: 60
'''

    XTABLES = r'''
options:
  xtables_backend:
    description:
      - iptables/ip6tables variant - V(nft) (C(iptables-nft)) or V(legacy) (C(iptables-legacy)); V(auto) follows
        where the host's C(iptables) command points.
      - A host setting, kept in O(state_dir) (C(host.json)) and used by every module and the host agent - when
        not given, the stored setting applies (V(auto) on a new host); when given, it is stored once the run
        succeeded (not in check mode).
    type: str
    choices: [auto, nft, legacy]
'''

    EBTABLES = r'''
options:
  ebtables_backend:
    description:
      - ebtables variant - V(nft) or V(legacy); V(auto) follows the host's C(ebtables) command. Kernels without
        the legacy ebtables modules (common today) only work with V(nft).
      - A host setting like O(xtables_backend) - the stored setting applies unless this option is given.
    type: str
    choices: [auto, nft, legacy]
'''
