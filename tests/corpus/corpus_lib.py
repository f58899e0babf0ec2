# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the corpus suite (tests/corpus).

The corpus lives outside the repository, in ``<repo>/../shared/reference/corpus``
(read only, never vendored); every test skips with a printed reason when it is
absent. Kernel parts run in throw-away network namespaces (tests/lib/netns.py).

The expected outputs of libvirt-tck and tp-libvirt are written as *shell*
commands (``iptables -S FI-vnet0 | grep vnet0``, ``ebtables -t nat -L X
2>/dev/null | grep -v "^$"``). We never hand them to a shell: ``run_listing``
understands exactly the small pipeline language they use (a netfilter tool,
``grep [-v] [-E] PATTERN``, ``sed s/A/B/g``, ``2>/dev/null``, ``2>&1
1>/dev/null``, ``&&`` / ``||`` lists) and refuses anything else.
"""

from __future__ import annotations

import os
import re
import shlex

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.tests.lib.netns import can_create_namespaces, missing_tools

_HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(_HERE))
CORPUS = os.environ.get('HNF_SHARED_CORPUS') or os.path.join(
    os.path.dirname(REPO), 'shared', 'reference', 'corpus')

RESTORE = {'eb': ['ebtables-restore', '--noflush'], 'ip': ['iptables-restore', '--noflush'],
           'ip6': ['ip6tables-restore', '--noflush']}
KERNEL_TOOLS = ('ebtables', 'iptables', 'ip6tables', 'ebtables-restore', 'iptables-restore',
                'ip6tables-restore', 'ipset')
# Tools a listing command may run inside the namespace.
_NETFILTER_TOOLS = ('iptables', 'ip6tables', 'ebtables', 'ipset')


def corpus_path(*parts):
    return os.path.join(CORPUS, *parts)


def corpus_missing_reason(part=''):
    path = corpus_path(part) if part else CORPUS
    if not os.path.isdir(path):
        return 'corpus not found at %s (../shared/reference/corpus is absent, e.g. in a user clone)' % path
    return None


def kernel_skip_reason():
    ok, reason = can_create_namespaces()
    if not ok:
        return reason
    missing = missing_tools(*KERNEL_TOOLS)
    if missing:
        return 'missing tools: %s (apt-get install iptables ebtables ipset)' % ', '.join(missing)
    return None


def read(path):
    with open(path, encoding='utf-8') as handle:
        return handle.read()


def builtin_filters():
    """The built-in filters, parsed (name -> Filter)."""
    return {name: parse_filter(xml, source='builtin:' + name) for name, xml in BUILTIN_FILTERS.items()}


def load_ruleset(ns, ruleset):
    """Load ``ruleset`` into namespace ``ns`` with one ``*-restore --noflush`` per family."""
    for family in ('eb', 'ip', 'ip6'):
        text = ruleset.render(family)
        if text:
            ns.run(RESTORE[family], input_text=text)


# --------------------------------------------------------------------------- listings


class UnsupportedCommand(Exception):
    """A corpus command uses shell syntax this interpreter does not know."""


def _sed_fields(expr):
    """Split ``s<d>REGEX<d>REPLACEMENT<d>FLAGS`` like GNU sed: the delimiter
    does not end the regex inside a bracket expression; ``\\<d>`` is a literal."""
    if len(expr) < 4 or expr[0] != 's':
        raise UnsupportedCommand('sed expression %r' % expr)
    delim = expr[1]
    fields = ['']
    index = 2
    in_bracket = False
    while index < len(expr) and len(fields) < 3:
        char = expr[index]
        if char == '\\' and index + 1 < len(expr):
            nxt = expr[index + 1]
            fields[-1] += nxt if nxt == delim else char + nxt
            index += 2
            continue
        if len(fields) == 1 and char == '[' and not in_bracket:
            in_bracket = True
        elif in_bracket and char == ']':
            in_bracket = False
        elif char == delim and not in_bracket:
            fields.append('')
            index += 1
            continue
        fields[-1] += char
        index += 1
    flags = expr[index:]
    if len(fields) != 3 or flags not in ('', 'g'):
        raise UnsupportedCommand('sed expression %r' % expr)
    return fields[0], fields[1], flags


def _sed(expr, lines):
    regex, replacement, flags = _sed_fields(expr)
    if re.search(r'\\[(){}+?|]', regex):
        raise UnsupportedCommand('sed BRE operators in %r' % expr)
    pattern = re.compile(regex)
    replacement = replacement.replace('&', r'\g<0>')
    count = 0 if flags == 'g' else 1
    return [pattern.sub(replacement, line, count=count) for line in lines]


def _grep(args, lines):
    invert = False
    words = list(args)
    while words and words[0].startswith('-') and len(words) > 1:
        flag = words.pop(0)
        if flag == '-v':
            invert = True
        elif flag != '-E':
            raise UnsupportedCommand('grep option %r' % flag)
    if len(words) != 1:
        raise UnsupportedCommand('grep %r' % (args,))
    # The patterns are plain words and ^/$ anchors: basic and extended regex agree with Python's.
    pattern = re.compile(words[0])
    return [line for line in lines if bool(pattern.search(line)) != invert]


def _split_redirections(argv):
    """(argv without redirections, stderr handling, stdout discarded)."""
    words = []
    stderr = 'pass'  # stderr of the first command is not piped (it reaches the output directly)
    discard_stdout = False
    for word in argv:
        if word == '2>/dev/null':
            stderr = 'drop'
        elif word == '2>&1':
            stderr = 'stdout'
        elif word in ('1>/dev/null', '>/dev/null'):
            discard_stdout = True
        else:
            words.append(word)
    return words, stderr, discard_stdout


def _run_pipeline(ns, words):
    """Run one pipeline; (exit status, output lines as the tck's ``2>&1 | tee`` sees them)."""
    stages = []
    current = []
    for word in words:
        if word == '|':
            stages.append(current)
            current = []
        else:
            current.append(word)
    stages.append(current)
    first, stderr_mode, discard_stdout = _split_redirections(stages[0])
    if not first or first[0] not in _NETFILTER_TOOLS:
        raise UnsupportedCommand('first command of %r' % ' '.join(words))
    result = ns.run(first, check=False)
    out_lines = [] if discard_stdout else result.stdout.splitlines()
    err_lines = result.stderr.splitlines()
    if stderr_mode == 'stdout':
        out_lines = err_lines + out_lines
        err_lines = []
    elif stderr_mode == 'drop':
        err_lines = []
    status = result.returncode
    for stage in stages[1:]:
        if not stage:
            raise UnsupportedCommand('empty pipeline stage in %r' % ' '.join(words))
        if stage[0] == 'grep':
            out_lines = _grep(stage[1:], out_lines)
            status = 0 if out_lines else 1
        elif stage[0] == 'sed' and len(stage) == 2:
            out_lines = _sed(stage[1], out_lines)
            status = 0
        elif stage[0] == 'sed' and len(stage) == 3 and stage[1] == '-e':
            out_lines = _sed(stage[2], out_lines)
            status = 0
        else:
            raise UnsupportedCommand('pipeline stage %r' % ' '.join(stage))
    return status, err_lines + out_lines


def run_listing(ns, command):
    """Run one corpus command (shell syntax, see module docstring) in ``ns``;
    (exit status, output lines). ``&&``/``||`` lists are evaluated like sh does."""
    words = shlex.split(command, posix=True)
    # shlex keeps '|', '&&', '||' glued to neighbours only when written without spaces; split them.
    tokens = []
    for word in words:
        tokens.extend(t for t in re.split(r'(\|\||&&|\|)', word) if t)
    lists = []
    current = []
    for token in tokens:
        if token in ('&&', '||'):
            lists.append(current)
            lists.append(token)
            current = []
        else:
            current.append(token)
    lists.append(current)
    status, output = _run_pipeline(ns, lists[0])
    index = 1
    while index < len(lists):
        operator, pipeline = lists[index], lists[index + 1]
        if (operator == '&&' and status == 0) or (operator == '||' and status != 0):
            status, more = _run_pipeline(ns, pipeline)
            output = output + more
        index += 2
    return status, output


def parse_expectation_file(text):
    """Split a ``.fwall``-style file into [(command, [expected lines])]."""
    blocks = []
    for line in text.splitlines():
        if line.startswith('#'):
            blocks.append((line[1:], []))
        elif line.strip() == '':
            # checkExpectedOutput stops reading at the first empty line
            break
        elif blocks:
            blocks[-1][1].append(line)
    return blocks


def squash_whitespace(lines):
    """What ``diff -w`` compares: each line with all white space removed."""
    return [re.sub(r'\s+', '', line) for line in lines]
