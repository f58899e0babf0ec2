# -*- coding: utf-8 -*-
"""Helpers to read libvirt's test vectors (from ../shared/reference, never vendored)."""

import os
import re
import shlex

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
REFERENCE = os.environ.get('HNF_SHARED_REFERENCE', os.path.join(os.path.dirname(REPO), 'shared', 'reference'))
LIBVIRT = os.path.join(REFERENCE, 'libvirt-11.3.0')
NWFILTER_VECTORS = os.path.join(LIBVIRT, 'tests', 'nwfilterxml2firewalldata')

# The variables libvirt's nwfilterxml2firewalltest harness defines (and nothing else: no MAC, no IP).
HARNESS_VARIABLES = {
    'IPSETNAME': 'tck_test',
    'A': ['1.1.1.1', '2.2.2.2', '3.3.3.3', '3.3.3.3'],
    'B': ['80', '90', '80', '80'],
    'C': ['1080', '1090', '1100', '1110'],
}
HARNESS_INTERFACE = 'vnet0'


def reference_missing_reason():
    if not os.path.isdir(NWFILTER_VECTORS):
        return 'libvirt reference vectors not found at %s (../shared is absent in a user clone)' % NWFILTER_VECTORS
    return None


def vector_names():
    names = []
    for entry in sorted(os.listdir(NWFILTER_VECTORS)):
        if entry.endswith('-linux.args'):
            names.append(entry[:-len('-linux.args')])
    return names


def read_commands(path):
    """The commands of an .args file as argv lists (lines joined at backslash-newline)."""
    with open(path) as handle:
        text = handle.read()
    commands = []
    for line in text.replace('\\\n', '').splitlines():
        if line.strip():
            commands.append(shlex.split(line))
    return commands


# libvirt's temporary chain names in the vectors -> the final names after its rename step.
_FINAL_NAMES = (
    (re.compile(r'^libvirt-J-'), 'libvirt-I-'), (re.compile(r'^libvirt-P-'), 'libvirt-O-'),
    (re.compile(r'^J-'), 'I-'), (re.compile(r'^P-'), 'O-'),
    (re.compile(r'^FJ-'), 'FI-'), (re.compile(r'^FP-'), 'FO-'), (re.compile(r'^HJ-'), 'HI-'),
)


def final_chain_name(name):
    for pattern, replacement in _FINAL_NAMES:
        if pattern.match(name):
            return pattern.sub(replacement, name)
    return name


def final_names_in_args(args):
    return [final_chain_name(a) for a in args]
