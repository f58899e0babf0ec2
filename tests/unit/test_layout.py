# -*- coding: utf-8 -*-
"""The engine's layout limits (issue 9): every module_utils file at most 600 lines,
every function at most 80, no import inside a function (imports are the map of
who depends on whom: they belong at the top), no subpackage importing a test helper.

Run as a script to print the tree's facts: ``python tests/unit/test_layout.py [ROOT]``.
"""
from __future__ import annotations

import ast
import os
import sys

import pytest

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Files over a limit today, with who is on it; strict xfail: once fixed, this entry must go.
PENDING = {}


def module_utils_files(root=ROOT):
    base = os.path.join(root, 'plugins', 'module_utils')
    found = []
    for directory, _dirs, files in os.walk(base):
        found.extend(os.path.join(directory, f) for f in files if f.endswith('.py'))
    return sorted(found)


def functions(path):
    """``[(qualified name, first line, line count, node)]`` of every function in ``path``."""
    with open(path, encoding='utf-8') as handle:
        tree = ast.parse(handle.read(), path)
    out = []

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                out.append((name, child.lineno, child.end_lineno - child.lineno + 1, child))
                walk(child, name + '.')
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + '.')
    walk(tree, '')
    return out


def nested_imports(function_node):
    return [node.lineno for node in ast.walk(function_node) if isinstance(node, (ast.Import, ast.ImportFrom))]


def _line_count(path):
    with open(path, encoding='utf-8') as handle:
        return sum(1 for _line in handle)


def _rel(path):
    return os.path.relpath(path, ROOT)


def _sized(paths):
    return [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=PENDING[_rel(p)])) if _rel(p) in PENDING else p
            for p in paths]


@pytest.mark.parametrize('path', _sized(module_utils_files()), ids=_rel)
def test_file_and_function_sizes(path):
    assert _line_count(path) <= MAX_FILE_LINES, '%s has %d lines (limit %d)' % (
        _rel(path), _line_count(path), MAX_FILE_LINES)
    long_ones = ['%s (line %d): %d lines' % (name, line, count)
                 for name, line, count, _node in functions(path) if count > MAX_FUNCTION_LINES]
    assert not long_ones, '%s: functions over %d lines: %s' % (_rel(path), MAX_FUNCTION_LINES, '; '.join(long_ones))


@pytest.mark.parametrize('path', module_utils_files(), ids=_rel)
def test_no_import_inside_a_function(path):
    inside = ['%s line %d' % (name, line) for name, _l, _c, node in functions(path) for line in nested_imports(node)]
    assert not inside, '%s imports inside functions: %s' % (_rel(path), ', '.join(inside))


def report(root):
    """Facts for the issue note: files, lines, the longest functions."""
    files = module_utils_files(root)
    print('module_utils: %d files, %d lines' % (len(files), sum(_line_count(p) for p in files)))
    for path in sorted(files, key=_line_count, reverse=True):
        print('%5d  %s' % (_line_count(path), os.path.relpath(path, root)))
    every = [(count, os.path.relpath(path, root), name) for path in files for name, _l, count, _n in functions(path)]
    over = sum(1 for c, _p, _n in every if c > MAX_FUNCTION_LINES)
    print('functions: %d; over %d lines: %d' % (len(every), MAX_FUNCTION_LINES, over))
    for count, path, name in sorted(every, reverse=True)[:12]:
        print('%5d  %s: %s' % (count, path, name))
    nested = sum(len(nested_imports(node)) for path in files for _n, _l, _c, node in functions(path))
    print('imports inside functions: %d' % nested)


if __name__ == '__main__':
    report(sys.argv[1] if len(sys.argv) > 1 else ROOT)
