# -*- coding: utf-8 -*-
"""Randomised differential runs: generated filters through libvirt and through
our engine, compared NIC by NIC.

Used by test_diff_random.py (opt-in: HNF_RANDOM_DIFF=N) and runnable by hand:

    python tests/differential/random_suite.py --cases 50 --seed 7 [--shrink] [--ns NAME]

Cases are grouped (``batch`` bindings per oracle call, one NIC per case) to
amortise libvirtd's per-call reset; when libvirt refuses a batch, its cases are
re-run one by one to find the refused ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import xml.etree.ElementTree as ET

import oracle as harness
from generator import Generator


@dataclasses.dataclass
class Outcome:
    case: object
    status: str  # identical | mismatch | both-rejected | libvirt-rejected | we-rejected
    detail: str = ''


def _binding(case):
    return harness.Binding.make(case.interface, case.mac, case.top, case.parameters())


def _our_ruleset(case):
    """Our compiled ruleset for one case, or the error text."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
    try:
        return harness.compile_all(case.filters, [_binding(case)], strict=False), None
    except (NetfilterError, ValueError) as exc:
        return None, '%s: %s' % (type(exc).__name__, exc)


def _our_dumps(cases):
    """interface -> (normalisable dump text or None, error or None) for our side."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
    compiled = {}
    results = {}
    for case in cases:
        ruleset, error = _our_ruleset(case)
        if error:
            results[case.interface] = (None, error)
        else:
            compiled[case.interface] = ruleset
    good = [c for c in cases if c.interface in compiled]
    if not good:
        return results
    merged = merge_rulesets([compiled[c.interface] for c in good])
    bindings = [_binding(c) for c in good]
    try:
        text = harness.our_dump({}, bindings, ruleset=merged)
    except harness.HarnessError:
        # find the cases whose rules the kernel refuses, then load the rest together
        refused = set()
        for case in good:
            try:
                harness.our_dump({}, [_binding(case)], ruleset=compiled[case.interface])
            except harness.HarnessError as exc:
                refused.add(case.interface)
                results[case.interface] = (None, 'restore failed: %s' % str(exc)[:2000])
        good = [c for c in good if c.interface not in refused]
        if not good:
            return results
        text = harness.our_dump({}, [_binding(c) for c in good],
                                ruleset=merge_rulesets([compiled[c.interface] for c in good]))
    for case in good:
        results[case.interface] = (text, None)
    return results


def _libvirt_dumps(oracle, cases):
    """interface -> (dump or None, error or None) for libvirt's side.

    A refused batch is split in halves until the refused cases are alone
    (a few extra oracle calls per refusal instead of one per case)."""
    filters = {}
    for case in cases:
        filters.update(case.filters)
    try:
        text = oracle.dump(filters, [_binding(c) for c in cases])
        return {c.interface: (text, None) for c in cases}
    except harness.LibvirtRejected as exc:
        if len(cases) == 1:
            return {cases[0].interface: (None, str(exc)[-2000:])}
    middle = len(cases) // 2
    results = _libvirt_dumps(oracle, cases[:middle])
    results.update(_libvirt_dumps(oracle, cases[middle:]))
    return results


def run_batch(oracle, cases):
    """Outcomes for the cases, plus the diff of lines no NIC owns (shared chains)."""
    theirs = _libvirt_dumps(oracle, cases)
    ours = _our_dumps(cases)
    filter_texts = harness.all_filter_texts({k: v for c in cases for k, v in c.filters.items()})
    priorities = harness.chain_priorities(filter_texts)
    interfaces = [c.interface for c in cases]
    split_cache = {}

    def split(text):
        if text not in split_cache:
            split_cache[text] = harness.split_by_interface(harness.normalise(text, priorities), interfaces)
        return split_cache[text]

    outcomes = []
    for case in cases:
        their_text, their_error = theirs[case.interface]
        our_text, our_error = ours[case.interface]
        if their_error and our_error:
            outcomes.append(Outcome(case, 'both-rejected', 'libvirt: %s\nours: %s' % (their_error, our_error)))
        elif their_error:
            outcomes.append(Outcome(case, 'libvirt-rejected', 'libvirt refused, we accepted:\n%s' % their_error))
        elif our_error:
            outcomes.append(Outcome(case, 'we-rejected', 'libvirt accepted, we refused:\n%s' % our_error))
        else:
            left = split(their_text)[case.interface]
            right = split(our_text)[case.interface]
            if left == right:
                outcomes.append(Outcome(case, 'identical'))
            else:
                outcomes.append(Outcome(case, 'mismatch', harness.diff(left, right)))
    shared = ''
    texts_theirs = {t for t, e in theirs.values() if t}
    texts_ours = {t for t, e in ours.values() if t}
    if len(texts_theirs) == 1 and len(texts_ours) == 1 and all(
            o.status == 'identical' for o in outcomes):
        left = split(texts_theirs.pop())[None]
        right = split(texts_ours.pop())[None]
        if left != right:
            shared = harness.diff(left, right)
    return outcomes, shared


# ------------------------------------------------------------------ shrinking

def _variants(case):
    """Smaller versions of a case: one entry, element or attribute removed."""
    for name, text in case.filters.items():
        root = ET.fromstring(text)
        children = list(root)
        for index, child in enumerate(children):
            if child.tag == 'uuid':
                continue
            copy = ET.fromstring(text)
            target = list(copy)[index]
            if child.tag == 'filterref' and child.get('filter') in case.filters:
                pass  # removing a ref to a private child is fine: the child just stays unused
            copy.remove(target)
            if not [c for c in copy if c.tag in ('rule', 'filterref')]:
                continue
            yield name, ET.tostring(copy, encoding='unicode')
        for index, child in enumerate(children):
            if child.tag != 'rule':
                continue
            for attr in ('priority', 'statematch'):
                if attr in child.attrib:
                    copy = ET.fromstring(text)
                    del list(copy)[index].attrib[attr]
                    yield name, ET.tostring(copy, encoding='unicode')
            for pindex, proto in enumerate(child):
                copy = ET.fromstring(text)
                rule = list(copy)[index]
                rule.remove(list(rule)[pindex])
                yield name, ET.tostring(copy, encoding='unicode')
                for attr in list(proto.attrib):
                    copy = ET.fromstring(text)
                    element = list(list(copy)[index])[pindex]
                    del element.attrib[attr]
                    yield name, ET.tostring(copy, encoding='unicode')


def shrink(oracle, case, log=print, budget=120):
    """Greedy minimisation of a mismatching case (each try costs one oracle call)."""
    current = case
    tries = 0
    progress = True
    while progress and tries < budget:
        progress = False
        for name, text in _variants(current):
            tries += 1
            if tries > budget:
                break
            filters = dict(current.filters)
            filters[name] = text
            # drop private filters nothing references any more
            candidate = dataclasses.replace(current, filters=_reachable(current.top, filters))
            outcome = run_batch(oracle, [candidate])[0][0]
            if outcome.status == 'mismatch':
                current = candidate
                progress = True
                log('  shrink: %d tries, %d chars' % (tries, len(current.describe())))
                break
    return current


def _reachable(top, filters):
    keep = {}
    stack = [top]
    while stack:
        name = stack.pop()
        if name in keep or name not in filters:
            continue
        keep[name] = filters[name]
        stack.extend(ref.get('filter') for ref in ET.fromstring(filters[name]).iter('filterref'))
    return {name: filters[name] for name in filters if name in keep}


# ------------------------------------------------------------------ driver

def run(oracle, count, seed, batch=20, do_shrink=False, log=print, size=1):
    generator = Generator(seed, size)
    cases = [generator.case(i) for i in range(count)]
    outcomes = []
    shared_diffs = []
    began = time.monotonic()
    for start in range(0, count, batch):
        chunk = cases[start:start + batch]
        result, shared = run_batch(oracle, chunk)
        outcomes.extend(result)
        if shared:
            shared_diffs.append(shared)
        counts = {}
        for outcome in outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        log('random diff seed %d: %d/%d cases, %.0f s, %s' % (seed, len(outcomes), count,
                                                              time.monotonic() - began, counts))
    if do_shrink:
        for outcome in outcomes:
            if outcome.status == 'mismatch':
                log('shrinking case %d' % outcome.case.index)
                small = shrink(oracle, outcome.case, log)
                outcome.case = small
                outcome.detail = run_batch(oracle, [small])[0][0].detail
    return outcomes, shared_diffs


def format_outcome(outcome):
    case = outcome.case
    params = ' '.join('%s=%s' % (k, ','.join(v) if isinstance(v, list) else v)
                      for k, v in case.parameters().items())
    return ('=== case %d (%s): %s\nbinding: %s mac %s filter %s params %s\n%s\n%s\n'
            % (case.index, case.interface, outcome.status, case.interface, case.mac, case.top, params,
               case.describe(), outcome.detail))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', type=int, default=20)
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument('--batch', type=int, default=20)
    parser.add_argument('--shrink', action='store_true')
    parser.add_argument('--size', type=int, default=1, help='scale of the generated filters (rules, children)')
    parser.add_argument('--ns', help='reuse this libvirt-oracle instance (started if needed, not stopped)')
    parser.add_argument('--report', help='write non-identical outcomes here')
    args = parser.parse_args(argv)
    seed = harness.pick_seed(args.seed)
    print('seed %d' % seed, flush=True)
    instance = harness.LibvirtOracle(args.ns)
    instance.start()
    try:
        outcomes, shared = run(instance, args.cases, seed, args.batch, args.shrink,
                               log=lambda m: print(m, flush=True), size=args.size)
    finally:
        if not args.ns:
            instance.stop()
    bad = [o for o in outcomes if o.status != 'identical']
    text = ''.join(format_outcome(o) for o in bad) + ''.join('=== shared lines differ\n' + d for d in shared)
    if args.report:
        with open(args.report, 'w') as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 1 if bad or shared else 0


if __name__ == '__main__':
    sys.path.insert(0, os.path.join(harness.REPO, 'tests'))
    import conftest  # noqa: F401  pylint: disable=unused-import,wrong-import-position
    sys.exit(main())
