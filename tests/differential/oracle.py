# -*- coding: utf-8 -*-
"""Differential harness: the same filters and bindings through real libvirt and
through our engine, dumped and normalised the same way.

libvirt side: ``../shared/tools/libvirt-oracle`` (a real libvirtd in a netns of
its own; ``nwfilter --filter-dir D --binding F...`` defines the filters, creates
the bindings on veths of a bridge and prints a normalised dump).

Our side: ``parse_filter`` every filter (the built-ins plus the given ones; a
given filter replaces a built-in of the same name, as the oracle does),
``compile_binding`` every binding, merge the rulesets in binding order, load
``Ruleset.render(family)`` with ``*-restore --noflush`` into a fresh netns that
has the same bridge and veths, and dump that netns with the oracle's own dump
command (``libvirt-oracle --ns OUR_NETNS dump`` only needs a named netns), so
both sides share one normalisation (comments and counters removed).

On top of that, ``normalise`` removes exactly two kinds of non-determinism of
libvirt, on both sides alike:

1. Lines of the ebtables built-in chains ``PREROUTING``/``POSTROUTING`` (the
   ``-i IF -j libvirt-I-IF`` / ``-o IF -j libvirt-O-IF`` hooks, one per NIC) are
   sorted: libvirt orders them by instantiation order (and by hash order after a
   daemon restart).
2. In the ebtables root chains ``libvirt-I-IF``/``libvirt-O-IF``, a run of
   consecutive jumps into sub-chains of the *same* chain priority is sorted:
   libvirt orders such jumps by a randomly seeded hash table. The priority of a
   sub-chain is taken from the filter definitions (see ``chain_priorities``);
   jumps to a chain name that filters define with different priorities are
   never reordered.

Nothing else is changed: rule order inside every chain, chain names, options
and their spelling are compared exactly.

Both namespaces also get the ipsets in ``IPSETS``, so rules matching on a set
(``-m set``) can be loaded on either side.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.normpath(os.path.join(REPO, '..', 'shared'))
ORACLE = os.environ.get('HNF_LIBVIRT_ORACLE') or os.path.join(SHARED, 'tools', 'libvirt-oracle')
ORACLE_STATE = '/run/libvirt-oracle'
BRIDGE = 'br0'

# ipsets that exist in both namespaces, so rules may match on them
# (`-m set --match-set NAME` needs the set to exist when the rule is added).
IPSETS = (('hnfset4', 'inet'), ('hnfset6', 'inet6'))

RESTORE = {'eb': 'ebtables-restore', 'ip': 'iptables-restore', 'ip6': 'ip6tables-restore'}
NEEDED_TOOLS = ('ip', 'ipset', 'ebtables-restore', 'iptables-restore', 'ip6tables-restore',
                'ebtables-save', 'iptables-save', 'ip6tables-save', 'nft')

# Default chain priority by chain-name prefix, in libvirt's lookup order.
_CHAIN_DEFAULTS = (('root', 0), ('mac', -800), ('vlan', -750), ('stp', 0), ('arp', -500),
                   ('rarp', -400), ('ipv4', -700), ('ipv6', -600))
# Jump from a root chain into a sub-chain, as ebtables-save prints it.
_EB_JUMP = re.compile(r'^-A (libvirt-[IO]-(?P<dev>[^ ]+)) .*-j (?P<target>[IO]-(?P=dev)-(?P<chain>[^ ]+))$')


class OracleUnavailable(Exception):
    """The libvirt side cannot run here; the message says why (used as skip reason)."""


class HarnessError(Exception):
    """Our side failed to load or dump rules (a bug to report, not a skip)."""


@dataclasses.dataclass(frozen=True)
class Binding:
    interface: str
    mac: str
    filter: str
    parameters: tuple = ()  # ((name, value or tuple of values), ...) in the order given

    @classmethod
    def make(cls, interface, mac, filter_name, parameters=None):
        items = []
        for name, value in (parameters or {}).items():
            items.append((name, tuple(value) if isinstance(value, (list, tuple)) else value))
        return cls(interface, mac, filter_name, tuple(items))

    def parameter_dict(self):
        """Parameters as compile_binding takes them: name -> str or list of str."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in self.parameters}

    def to_xml(self):
        owner_uuid = uuid.UUID(hashlib.md5(self.interface.encode()).hexdigest())
        root = ET.Element('filterbinding')
        owner = ET.SubElement(root, 'owner')
        ET.SubElement(owner, 'name').text = 'guest-' + self.interface
        ET.SubElement(owner, 'uuid').text = str(owner_uuid)
        ET.SubElement(root, 'portdev', name=self.interface)
        ET.SubElement(root, 'mac', address=self.mac)
        ref = ET.SubElement(root, 'filterref', filter=self.filter)
        for name, value in self.parameters:
            for one in (value if isinstance(value, tuple) else (value,)):
                ET.SubElement(ref, 'parameter', name=name, value=one)
        return ET.tostring(root, encoding='unicode') + '\n'


def pick_seed(given=None):
    """The random suites' seed: ``given`` (a number or its text) or a fresh random one; printed either way."""
    seed = int(given) if given not in (None, '') else int.from_bytes(os.urandom(4), 'big')
    sys.stderr.write('\nHNF_RANDOM_SEED=%d\n' % seed)
    return seed


def unavailable_reason():
    """Why the differential tests cannot run here, or None."""
    if os.geteuid() != 0:
        return 'differential tests need root (network namespaces, libvirtd)'
    if not os.path.isfile(ORACLE):
        return 'libvirt-oracle not found at %s (needs ../shared next to the repository ' \
               'or HNF_LIBVIRT_ORACLE)' % ORACLE
    missing = [tool for tool in NEEDED_TOOLS if not shutil.which(tool)]
    if missing:
        return 'missing tools: %s' % ' '.join(missing)
    return None


def unique_name(prefix):
    # netns names are also libvirt-oracle instance names: [A-Za-z0-9_.-], <= 31 chars
    return '%s%d-%s' % (prefix, os.getpid(), uuid.uuid4().hex[:6])


def _run(cmd, input_text=None, timeout=600):
    return subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _remove_lock(ns):
    try:
        os.unlink(os.path.join(ORACLE_STATE, ns + '.lock'))
    except FileNotFoundError:
        pass


def peer_name(interface):
    # the oracle's naming of the veth peer, so both netns have the same links
    return 'lvp' + hashlib.sha1(interface.encode()).hexdigest()[:12]


# --------------------------------------------------------------------- libvirt side

class LibvirtOracle:
    """One libvirt-oracle instance (own netns, own libvirtd) for a test run."""

    def __init__(self, ns=None):
        self.ns = ns or unique_name('hnfdiff')
        self.started = False
        self.start_seconds = None

    def _cmd(self, *args):
        return [ORACLE, '--ns', self.ns] + list(args)

    def start(self):
        reason = unavailable_reason()
        if reason:
            raise OracleUnavailable(reason)
        began = time.monotonic()
        done = _run(self._cmd('start'), timeout=1800)
        self.start_seconds = time.monotonic() - began
        if done.returncode != 0:
            self.stop()
            raise OracleUnavailable('libvirt-oracle start failed (libvirt not installable or not '
                                    'startable here): %s' % (done.stderr or done.stdout).strip()[-800:])
        self.started = True
        for name, family in IPSETS:
            done = _run(self._cmd('exec', 'ipset', 'create', name, 'hash:ip', 'family', family, '-exist'))
            if done.returncode != 0:
                self.stop()
                raise HarnessError('ipset create %s in the oracle netns: %s' % (name, done.stderr.strip()))

    def stop(self):
        _run(self._cmd('stop'), timeout=300)
        _remove_lock(self.ns)
        self.started = False

    def dump(self, filters, bindings):
        """Define ``filters`` (name -> XML), create ``bindings``, return the
        oracle's dump (already counter/comment-normalised by the oracle)."""
        workdir = tempfile.mkdtemp(prefix='hnf-oracle-')
        try:
            args = ['nwfilter']
            if filters:
                fdir = os.path.join(workdir, 'filters')
                os.mkdir(fdir)
                for index, (name, text) in enumerate(filters.items()):
                    with open(os.path.join(fdir, 'f%04d.xml' % index), 'w') as handle:
                        handle.write(text)
                args += ['--filter-dir', fdir]
            for index, binding in enumerate(bindings):
                path = os.path.join(workdir, 'b%04d.xml' % index)
                with open(path, 'w') as handle:
                    handle.write(binding.to_xml())
                args += ['--binding', path]
            done = _run(self._cmd(*args), timeout=1800)
            if done.returncode != 0:
                raise LibvirtRejected(done.stderr.strip())
            return done.stdout
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class LibvirtRejected(Exception):
    """libvirt refused a filter or binding (the message is libvirt's)."""


# --------------------------------------------------------------------- our side

def parse_all(filters, strict=True):
    """Parsed built-ins overlaid with the given filters (name -> XML)."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
    texts = dict(BUILTIN_FILTERS)
    texts.update(filters)
    return {name: parse_filter(text, source=name, strict=strict or name not in filters)
            for name, text in texts.items()}


def compile_all(filters, bindings, strict=True):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
    parsed = parse_all(filters, strict)
    return merge_rulesets([compile_binding(b.interface, b.mac, b.filter, b.parameter_dict(), parsed)
                           for b in bindings])


def make_netns(ns, interfaces):
    """A fresh netns with bridge br0 and one veth per interface on it (as the oracle makes)."""
    done = _run(['ip', 'netns', 'add', ns])
    if done.returncode != 0:
        raise HarnessError('ip netns add %s: %s' % (ns, done.stderr.strip()))
    batch = ['link set lo up', 'link add %s type bridge' % BRIDGE, 'link set %s up' % BRIDGE]
    for name in interfaces:
        batch += ['link add %s type veth peer name %s' % (name, peer_name(name)),
                  'link set %s master %s up' % (name, BRIDGE),
                  'link set %s up' % peer_name(name)]
    done = _run(['ip', '-n', ns, '-batch', '-'], input_text='\n'.join(batch) + '\n')
    if done.returncode != 0:
        delete_netns(ns)
        raise HarnessError('creating links in %s: %s' % (ns, done.stderr.strip()))
    for name, family in IPSETS:
        done = _run(['ip', 'netns', 'exec', ns, 'ipset', 'create', name, 'hash:ip', 'family', family])
        if done.returncode != 0:
            delete_netns(ns)
            raise HarnessError('ipset create %s in %s: %s' % (name, ns, done.stderr.strip()))


def delete_netns(ns):
    _run(['ip', 'netns', 'del', ns])
    _remove_lock(ns)


def load_ruleset(ns, ruleset):
    for family in ('eb', 'ip', 'ip6'):
        text = ruleset.render(family)
        if not text:
            continue
        done = _run(['ip', 'netns', 'exec', ns, RESTORE[family], '--noflush'], input_text=text)
        if done.returncode != 0:
            raise HarnessError('%s --noflush refused our rules: %s\n--- input ---\n%s'
                               % (RESTORE[family], done.stderr.strip(), text))


def dump_netns(ns):
    done = _run([ORACLE, '--ns', ns, '--no-install', 'dump'])
    _remove_lock(ns)
    if done.returncode != 0:
        raise HarnessError('libvirt-oracle dump of %s failed: %s' % (ns, done.stderr.strip()))
    return done.stdout


def our_dump(filters, bindings, ruleset=None, strict=True):
    """Compile (unless ``ruleset`` is given), load into a fresh netns, dump.
    ``strict``: how the given filters are parsed (strict: false = libvirt's reading)."""
    if ruleset is None:
        ruleset = compile_all(filters, bindings, strict)
    ns = unique_name('hnfours')
    make_netns(ns, [b.interface for b in bindings])
    try:
        load_ruleset(ns, ruleset)
        return dump_netns(ns)
    finally:
        delete_netns(ns)


# --------------------------------------------------------------------- normalisation

def chain_priorities(filter_texts):
    """Sub-chain name -> its chain priority, from filter XML texts; None for a
    name that filters give different priorities (never reordered then)."""
    seen = {}
    for text in filter_texts:
        root = ET.fromstring(text)
        chain = root.get('chain')
        if not chain or chain == 'root':
            continue
        priority = None
        for prefix, default in _CHAIN_DEFAULTS:
            if chain.startswith(prefix):
                priority = int(root.get('priority', default))
                break
        seen.setdefault(chain, set()).add(priority)
    return {name: (values.pop() if len(values) == 1 else None) for name, values in seen.items()}


def all_filter_texts(filters):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
    texts = dict(BUILTIN_FILTERS)
    texts.update(filters)
    return list(texts.values())


def _sort_equal_priority_jumps(lines, priorities):
    out = []
    run = []

    def flush():
        # stable sort inside the run by (priority group position, text) for equal priorities
        index = 0
        while index < len(run):
            end = index + 1
            prio = run[index][0]
            while prio is not None and end < len(run) and run[end][0] == prio:
                end += 1
            out.extend(sorted(line for dummy, line in run[index:end]))
            index = end
        del run[:]

    for line in lines:
        match = _EB_JUMP.match(line)
        if match:
            run.append((priorities.get(match.group('chain')), line))
            continue
        flush()
        out.append(line)
    flush()
    return out


def normalise(dump, priorities):
    """Apply the two documented normalisations (module docstring) to a dump."""
    sections = []
    current = None
    for line in dump.splitlines():
        if line.startswith('### '):
            current = [line, []]
            sections.append(current)
        elif current is not None:
            current[1].append(line)
    out = []
    for head, body in sections:
        if head == '### ebtables-save':
            hooks = {}
            rest = []
            for line in body:
                parts = line.split(' ', 2)
                if line.startswith('-A ') and parts[1] in ('PREROUTING', 'POSTROUTING'):
                    hooks.setdefault(parts[1], []).append(line)
                    rest.append(('hook', parts[1]))
                else:
                    rest.append(('line', line))
            body = []
            emitted = set()
            for kind, value in rest:
                if kind == 'line':
                    body.append(value)
                elif value not in emitted:
                    emitted.add(value)
                    body.extend(sorted(hooks[value]))
            body = _sort_equal_priority_jumps(body, priorities)
        out.append(head)
        out.extend(body)
    return '\n'.join(out) + '\n'


def _owner_pattern(interface):
    # the interface itself or a chain named after it (libvirt-I-IF, I-IF-arp, FI-IF, ...)
    return re.compile(r'(^|[\s:])(libvirt-[IO]-|[IO]-|F[IO]-|HI-)?%s(-\S*)?(\s|$)' % re.escape(interface))


def split_by_interface(dump, interfaces):
    """Per interface, the lines (with their section head) that mention it;
    key None holds the lines that mention none (shared chains, tables)."""
    parts = {name: [] for name in interfaces}
    parts[None] = []
    patterns = {name: _owner_pattern(name) for name in interfaces}
    for line in dump.splitlines():
        if line.startswith('### '):
            for lines in parts.values():
                lines.append(line)
            continue
        owners = [name for name in interfaces if patterns[name].search(line)]
        for name in owners or [None]:
            parts[name].append(line)
    return {name: '\n'.join(lines) + '\n' for name, lines in parts.items()}


def diff(expected, actual, label='libvirt', other='ours'):
    return ''.join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                        fromfile=label, tofile=other))


@dataclasses.dataclass
class Comparison:
    libvirt: str  # normalised
    ours: str  # normalised
    interfaces: tuple

    def diff(self):
        return diff(self.libvirt, self.ours)

    def interface_diffs(self):
        """interface (None = shared lines) -> diff text, only where they differ."""
        left = split_by_interface(self.libvirt, self.interfaces)
        right = split_by_interface(self.ours, self.interfaces)
        return {name: diff(left[name], right[name]) for name in left if left[name] != right[name]}


def compare(oracle, filters, bindings, strict=True):
    """Run both sides; return a Comparison of the normalised dumps."""
    priorities = chain_priorities(all_filter_texts(filters))
    theirs = normalise(oracle.dump(filters, bindings), priorities)
    ours = normalise(our_dump(filters, bindings, strict=strict), priorities)
    return Comparison(theirs, ours, tuple(b.interface for b in bindings))
