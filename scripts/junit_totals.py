# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Add up pytest junit files: one line per file, then the closing line
``TOTAL: N passed, N failed, N skipped`` (errors count as failed)."""

import os
import sys
import xml.etree.ElementTree as ET


def totals(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
    tests = failed = skipped = 0
    for suite in suites:
        tests += int(suite.get('tests', 0))
        failed += int(suite.get('failures', 0)) + int(suite.get('errors', 0))
        skipped += int(suite.get('skipped', 0))
    return tests - failed - skipped, failed, skipped


def main(paths):
    passed = failed = skipped = 0
    for path in paths:
        try:
            one = totals(path)
        except (OSError, ET.ParseError) as exc:
            print('%s: unreadable junit file: %s' % (path, exc))
            failed += 1
            continue
        print('%-24s %d passed, %d failed, %d skipped' % (os.path.splitext(os.path.basename(path))[0], *one))
        passed, failed, skipped = passed + one[0], failed + one[1], skipped + one[2]
    print('TOTAL: %d passed, %d failed, %d skipped' % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
