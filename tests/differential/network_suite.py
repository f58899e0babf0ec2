# -*- coding: utf-8 -*-
"""Randomised network differential: generated libvirt ``<network>`` documents
(``network_generator.py``) started by a real libvirt 9.0 and applied by our
``virt_network`` module, compared rule for rule (iptables layout).

libvirt side: ``libvirt-oracle reset``, then ``virsh net-define`` +
``virsh net-start`` for every network of the case in order, then the oracle's
normalised ``dump``. Our side: a fresh named netns with the case's uplinks
(veths, since our module wants ``forward dev`` to exist), the module run once
per network in the same order with one ``state_dir``
(``firewall_backend=iptables``), then the same ``libvirt-oracle dump`` of that
netns. Each side records which networks it refused.

A case is ``identical`` when both refuse the same networks and the dumps of
the rest are equal table by table (the order in which tables appear in a dump
only says which tool touched them first); ``both-rejected`` when both refuse
every network; otherwise ``mismatch`` (rules differ) or ``refusal-mismatch``.
Refusals we make on purpose (documented in docs/virt_network.md) are listed in
``DELIBERATE_REFUSALS`` by the start of our error message and count as
``deliberate``.

    python tests/differential/network_suite.py --cases 100 --seed 7 [--nft] [--ns NAME] [--report PATH]

``--nft`` (``nft=True``) also applies our nftables layout to every identical
case and compares it with libvirt's live iptables rules through the one-to-one
mapping of libvirt 11.3's nftables backend (``diff_nft``; libvirt 9.0 has no
nftables backend to ask).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import ipaddress
import os
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import oracle as harness  # noqa: E402  (the shared oracle paths and dump)
from network_generator import NetworkGenerator  # noqa: E402

# Substrings of our error messages for inputs libvirt 9.0 accepts and we refuse
# on purpose (docs/virt_network.md, "Differences from libvirt").
DELIBERATE_REFUSALS = (
    'is not a host address inside its subnet',  # gateway = network/broadcast address
    'overlap',  # overlapping subnets, in one network or between networks
    "is not an IP address",  # leading zeros (libvirt: octal)
    '<bridge name=...> is required',  # libvirt would pick a free virbrN
    "characters '+' are not allowed",  # '+' in a bridge or dev name
    "a trailing '+' is a wildcard",  # dev='eth+': an xtables wildcard for libvirt
    'is not valid (1-64 characters',  # network names: the key of the state file
    'uses no libvirt bridge firewall',  # bridge/private/vepa/passthrough/hostdev modes
    'but firewalld is not active',  # open + zone=: 9.0 ignores the zone, 11.3 (and we) refuse
)


@dataclasses.dataclass
class Outcome:
    case: object
    status: str  # identical | both-rejected | deliberate | mismatch | refusal-mismatch
    detail: str = ''


def _run(cmd, timeout=600, input_text=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          input=input_text)


def network_name(xml):
    start = xml.index('<name>') + len('<name>')
    return xml[start:xml.index('</name>')]


# --------------------------------------------------------------------- libvirt side

def _oracle_start(oracle, path, name):
    done = _run(oracle._cmd('virsh', 'net-define', path))  # pylint: disable=protected-access
    if done.returncode == 0:
        done = _run(oracle._cmd('virsh', 'net-start', name))  # pylint: disable=protected-access
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()


def oracle_networks(oracle, xmls, operations=()):
    """Start ``xmls`` in order in ``oracle`` (a started ``oracle.LibvirtOracle``),
    then apply ``operations``; (errors per network and operation (None = done), dump text).
    A destroy is recorded as done (libvirt refuses to destroy a network it did not start)."""
    errors = []
    with tempfile.TemporaryDirectory(prefix='hnf-net-') as workdir:
        for index, xml in enumerate(xmls):
            path = os.path.join(workdir, 'n%d.xml' % index)
            with open(path, 'w') as handle:
                handle.write(xml)
            if index == 0:
                # `network --keep` resets the instance (restarting libvirtd, whose
                # private chains are made once per daemon run) and marks it used
                done = _run(oracle._cmd('network', '--xml', path, '--keep', '-o', os.devnull))  # pylint: disable=protected-access
                errors.append(None if done.returncode == 0 else (done.stderr or done.stdout).strip())
            else:
                errors.append(_oracle_start(oracle, path, network_name(xml)))
        for index, (operation, arg) in enumerate(operations):
            name = network_name(arg) if operation == 'restart' else arg
            _run(oracle._cmd('virsh', 'net-destroy', name))  # pylint: disable=protected-access
            _run(oracle._cmd('virsh', 'net-undefine', name))  # pylint: disable=protected-access
            if operation == 'destroy':
                errors.append(None)
                continue
            path = os.path.join(workdir, 'op%d.xml' % index)
            with open(path, 'w') as handle:
                handle.write(arg)
            errors.append(_oracle_start(oracle, path, name))
    done = _run(oracle._cmd('dump'))  # pylint: disable=protected-access
    if done.returncode != 0:
        raise harness.HarnessError('libvirt-oracle dump: %s' % done.stderr.strip()[-500:])
    return errors, done.stdout


def our_networks(xmls, devs, backend='iptables', operations=()):
    """Apply ``xmls`` with the module in a fresh netns, then ``operations``
    (destroy: ``state: absent``; restart: the changed XML); (errors, dump text).
    The dump is ``libvirt-oracle dump`` for iptables, ``nft list ruleset`` for nftables."""
    # imported here: tests/lib needs the collection on sys.path (conftest or the CLI sets it)
    from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns
    from ansible_collections.hypervisor.netfilter.tests.lib.network_support import ModuleFailed, run_module
    errors = []
    with Netns(tag='nfz') as ns, tempfile.TemporaryDirectory(prefix='hnf-net-state-') as state:
        for number, dev in enumerate(devs):
            ns.ip('link', 'add', dev, 'type', 'veth', 'peer', 'name', 'nfzup%d' % number)
            ns.ip('link', 'set', dev, 'up')
        for xml in xmls:
            try:
                run_module(ns, xml=xml, firewall_backend=backend, state_dir=state)
                errors.append(None)
            except ModuleFailed as exc:
                errors.append(str(exc))
        for operation, arg in operations:
            args = dict(name=arg, state='absent') if operation == 'destroy' else dict(xml=arg)
            try:
                run_module(ns, firewall_backend=backend, state_dir=state, **args)
                errors.append(None)
            except ModuleFailed as exc:
                errors.append(None if operation == 'destroy' else str(exc))
                if operation == 'restart':
                    # the module refused the change and kept the network (fail closed);
                    # libvirt destroyed it first: take it away to compare the rest
                    run_module(ns, firewall_backend=backend, state_dir=state, name=network_name(arg),
                               state='absent')
        if backend == 'nftables':
            return errors, ns.run(['nft', 'list', 'ruleset']).stdout
        done = _run([harness.ORACLE, '--ns', ns.name, '--no-install', 'dump'])
        harness._remove_lock(ns.name)  # pylint: disable=protected-access
        if done.returncode != 0:
            raise harness.HarnessError('dump of %s: %s' % (ns.name, done.stderr.strip()))
        return errors, done.stdout


# --------------------------------------------------------------------- nftables layout

# libvirt 11.3's nftables backend makes exactly one rule per rule of these
# iptables chains, in the same order (semantics doc section 5): so libvirt 9.0's
# live iptables rules say what our nftables layout must hold, rule by rule.
NFT_CHAIN = {('filter', 'LIBVIRT_FWO'): 'guest_output', ('filter', 'LIBVIRT_FWI'): 'guest_input',
             ('filter', 'LIBVIRT_FWX'): 'guest_cross', ('nat', 'LIBVIRT_PRT'): 'guest_nat'}
_HOST_PREFIX = ('/32', '/128')


def _addr(value):
    return value[:-len(value.rsplit('/', 1)[-1]) - 1] if value.endswith(_HOST_PREFIX) else value


def _to(value):
    """A SNAT/masquerade target in one spelling: iptables prints ``A`` for
    ``A-A``; nft prints an address range that is a CIDR block as ``A/len``."""
    address, colon, ports = value.partition(':')
    if '/' in address:
        net = ipaddress.ip_network(address, strict=False)
        address = '%s-%s' % (net.network_address, net.broadcast_address)
    first, _dash, last = address.partition('-')
    if first == last:
        address = first
    return address + colon + ports


def _ipt_rule(words):
    """Features of one iptables-save rule (after ``-A CHAIN``)."""
    out = set()
    keys = {'-s': 'saddr', '-d': 'daddr', '-i': 'in', '-o': 'out', '-p': 'proto', '--to-source': 'to',
            '--ctstate': 'ct'}
    negate = False
    for index, word in enumerate(words):
        if word == '!':
            negate = True
            continue
        if word in keys:
            value = words[index + 1]
            if keys[word] in ('saddr', 'daddr'):
                value = _addr(value)
            if word == '--ctstate':
                value = ','.join(sorted(value.lower().split(',')))
            if word == '--to-source':
                value = _to(value)
            out.add('%s=%s%s' % (keys[word], '!' if negate else '', value))
        elif word == '--to-ports':
            out.add('to=:' + words[index + 1])
        elif word == '-j':
            out.add('verdict=' + words[index + 1].lower())
        negate = False
    return frozenset(out)


def ipt_features(dump):
    """{(family, nft chain): [rule features...]} from a libvirt-oracle dump."""
    out = {}
    for key, lines in tables(dump).items():
        if not key.endswith(('/filter', '/nat')):
            continue
        family = 'ip6' if key.startswith('ip6tables') else 'ip'
        for line in lines:
            words = line.split()
            chain = NFT_CHAIN.get((key.rsplit('/', 1)[1], words[1] if len(words) > 1 else None))
            if words[0] == '-A' and chain:
                out.setdefault((family, chain), []).append(_ipt_rule(words[2:]))
    return out


def _nft_rule(words):
    out = set()
    keys = {'saddr': 'saddr', 'daddr': 'daddr', 'iif': 'in', 'iifname': 'in', 'oif': 'out', 'oifname': 'out',
            'l4proto': 'proto', 'state': 'ct', 'to': 'to'}
    index = 0
    while index < len(words):
        word = words[index]
        if word in ('counter', 'packets', 'bytes'):
            index += 1 if word == 'counter' else 2
            continue
        if word in keys and index + 1 < len(words):
            value, step = words[index + 1], 2
            negate = value == '!='
            if negate:
                value, step = words[index + 2], 3
            value = value.strip('"')
            if keys[word] in ('saddr', 'daddr'):
                value = _addr(value)
            if word == 'state':
                value = ','.join(sorted(value.split(',')))
            if word == 'to':
                value = _to(value)
            out.add('%s=%s%s' % (keys[word], '!' if negate else '', value))
            index += step
            continue
        if word in ('accept', 'reject', 'return', 'masquerade', 'snat'):
            out.add('verdict=' + word)
        index += 1
    return frozenset(out)


def nft_features(text):
    """{(family, chain): [rule features...]} of our ``libvirt_network`` tables."""
    out = {}
    family = chain = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == 'table':
            family = words[1] if words[2:3] == ['libvirt_network'] else None
        elif words[0] == 'chain' and family:
            chain = words[1]
        elif words[0] in ('type', '}', 'policy'):
            continue
        elif family and chain in NFT_CHAIN.values():
            out.setdefault((family, chain), []).append(_nft_rule([w for w in words if w not in ('ip', 'ip6')]))
    return out


def diff_nft(their_dump, our_nft):
    want, have = ipt_features(their_dump), nft_features(our_nft)
    text = ''
    for key in sorted(set(want) | set(have)):
        a = [' '.join(sorted(f)) + '\n' for f in want.get(key, [])]
        b = [' '.join(sorted(f)) + '\n' for f in have.get(key, [])]
        if a != b:
            text += ''.join(difflib.unified_diff(a, b, 'libvirt iptables %s %s' % key,
                                                 'our nftables %s %s' % key, n=1))
    return text


# --------------------------------------------------------------------- comparison

def tables(dump):
    """{'iptables-save/filter': [lines], ...} plus the nft section; table order ignored."""
    out = {}
    section = None
    table = None
    for line in dump.splitlines():
        if line.startswith('### '):
            section = line[4:].strip()
            table = section if not section.endswith('-save') else None
            if table:
                out.setdefault(table, [])
            continue
        if section is None or not line.strip():
            continue
        if section.endswith('-save'):
            if line.startswith('*'):
                table = '%s/%s' % (section, line[1:])
                out[table] = []
                continue
        if table is not None:
            out[table].append(line.rstrip())
    return out


def diff_dumps(theirs, ours):
    a, b = tables(theirs), tables(ours)
    text = ''
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            text += ''.join(difflib.unified_diff(
                [l + '\n' for l in a.get(key, [])], [l + '\n' for l in b.get(key, [])],
                'libvirt ' + key, 'ours ' + key, n=2))
    return text


def _only_empty_private_chains(their_dump, our_dump):
    """libvirt has nothing but empty LIBVIRT_* chains and their jumps; we have none."""
    if 'LIBVIRT_' in our_dump:
        return False
    lines = [line for line in their_dump.splitlines() if 'LIBVIRT_' in line]
    return all(line.startswith(':LIBVIRT_') or (line.startswith('-A ') and line.split()[1].isupper()
                                                and not line.split()[1].startswith('LIBVIRT_'))
               for line in lines)


def classify(case, theirs, ours):
    """Outcome from (errors, dump) of both sides."""
    their_errors, their_dump = theirs
    our_errors, our_dump = ours
    refused_theirs = [e is not None for e in their_errors]
    refused_ours = [e is not None for e in our_errors]
    if refused_theirs != refused_ours:
        lines = []
        deliberate = True
        for index, (t_err, o_err) in enumerate(zip(their_errors, our_errors)):
            if (t_err is None) != (o_err is None):
                lines.append('step #%d: libvirt %s; ours %s' % (
                    index, 'refused: ' + t_err if t_err else 'accepted',
                    'refused: ' + o_err if o_err else 'accepted'))
                if t_err is not None or not any(d in o_err for d in DELIBERATE_REFUSALS):
                    deliberate = False
        # the accepted rest must still agree when only deliberate refusals differ
        if deliberate:
            return Outcome(case, 'deliberate', '\n'.join(lines))
        return Outcome(case, 'refusal-mismatch', '\n'.join(lines))
    if all(refused_theirs):
        return Outcome(case, 'both-rejected', '\n'.join(
            '#%d libvirt: %s\n#%d ours: %s' % (i, t, i, o)
            for i, (t, o) in enumerate(zip(their_errors, our_errors))))
    text = diff_dumps(their_dump, our_dump)
    if text and _only_empty_private_chains(their_dump, our_dump):
        return Outcome(case, 'deliberate', 'libvirt keeps its empty private chains after its last network '
                                           'with rules; we remove them (docs/virt_network.md)')
    if text:
        return Outcome(case, 'mismatch', text)
    return Outcome(case, 'identical')


def run_case(oracle, case, nft=False):
    """Outcome of one case; ``nft``: also apply our nftables layout and compare it
    rule by rule with libvirt's iptables rules (``diff_nft``)."""
    theirs = oracle_networks(oracle, case.networks, case.operations)
    ours = our_networks(case.networks, case.forward_devs, operations=case.operations)
    outcome = classify(case, theirs, ours)
    if not nft or outcome.status != 'identical':
        return outcome
    nft_errors, nft_text = our_networks(case.networks, case.forward_devs, backend='nftables',
                                        operations=case.operations)
    if nft_errors != ours[0]:
        return Outcome(case, 'nft-refusal-mismatch', 'iptables layout: %s\nnftables layout: %s'
                       % (ours[0], nft_errors))
    text = diff_nft(theirs[1], nft_text)
    return Outcome(case, 'nft-mismatch', text + '--- our nft ruleset ---\n' + nft_text) if text else outcome


def run(oracle, count, seed, first=0, log=None, nft=False):
    generator = NetworkGenerator(seed)
    outcomes = []
    began = time.monotonic()
    for index in range(first, first + count):
        case = generator.case(index)
        outcome = run_case(oracle, case, nft)
        outcomes.append(outcome)
        if log and outcome.status not in ('identical', 'both-rejected'):
            log('%s: %s' % (case.describe(), outcome.status))
    if log:
        counts = {}
        for outcome in outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        log('network differential seed %d: %d cases (%d networks) in %.0f s: %s' % (
            seed, len(outcomes), sum(len(o.case.networks) for o in outcomes), time.monotonic() - began,
            ', '.join('%s %d' % item for item in sorted(counts.items()))))
    return outcomes


def format_outcome(outcome):
    operations = ''.join('--- then %s ---\n%s' % (op, arg if op == 'restart' else arg + '\n')
                         for op, arg in outcome.case.operations)
    return '=== %s: %s\n%s\n--- networks ---\n%s%s\n' % (
        outcome.case.describe(), outcome.status, outcome.detail, ''.join(outcome.case.networks), operations)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--cases', type=int, default=20)
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument('--first', type=int, default=0, help='index of the first case')
    parser.add_argument('--ns', default=None, help='libvirt-oracle instance name (started and stopped here)')
    parser.add_argument('--report', default=None)
    parser.add_argument('--nft', action='store_true', help='also compare our nftables layout (rule by rule)')
    args = parser.parse_args(argv)
    seed = harness.pick_seed(args.seed)
    sys.path.insert(0, os.path.join(harness.REPO, 'tests'))
    import conftest  # noqa: F401 pylint: disable=unused-import,import-outside-toplevel
    reason = harness.unavailable_reason()
    if reason:
        sys.exit('cannot run: ' + reason)
    oracle = harness.LibvirtOracle(args.ns or 'hnfnet%d-%s' % (os.getpid(), uuid.uuid4().hex[:4]))
    oracle.start()
    try:
        outcomes = run(oracle, args.cases, seed, args.first, log=lambda m: print(m, flush=True), nft=args.nft)
    finally:
        oracle.stop()
    bad = [o for o in outcomes if o.status not in ('identical', 'both-rejected', 'deliberate')]
    report = ''.join(format_outcome(o) for o in outcomes if o.status != 'identical')
    if args.report:
        with open(args.report, 'w') as handle:
            handle.write(report)
    else:
        print(report)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
