# -*- coding: utf-8 -*-
"""libvirt's dry-run rendering of a command (argv) into text (tests only).

libvirt's test vectors are the concatenation of every command it would run,
rendered this way; rendering our command streams the same way lets the
conformance tests compare bytes. The rules implemented here are libvirt's
(a line break before options and before words that do not follow an option
run, single-quoting of shell metacharacters).
"""

from __future__ import annotations

_QUOTE_CHARS = frozenset('\r\t\n !"#$&\'()*;<>?[\\]^`{|}~')


def quote_word(word):
    if word == '':
        return "''"
    if any(c in _QUOTE_CHARS for c in word):
        return "'" + word.replace("'", "'\\''") + "'"
    return word


def render_argv(argv):
    """One command as libvirt's dry-run writes it, newline terminated."""
    out = [quote_word(argv[0])]
    seen_option = False
    for index in range(1, len(argv)):
        word = argv[index]
        if word.startswith('-'):
            brk = True
        else:
            later_option = any(a.startswith('-') for a in argv[index - 1:])
            brk = not (seen_option and later_option)
        out.append(' \\\n' if brk else ' ')
        out.append(quote_word(word))
        if word.startswith('-'):
            seen_option = True
    return ''.join(out) + '\n'


def render_commands(commands):
    return ''.join(render_argv(tuple(argv)) for argv in commands)
