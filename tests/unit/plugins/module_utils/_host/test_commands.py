# -*- coding: utf-8 -*-
"""The one command runner: background reads, prefixes, cancel."""
# -*- coding: utf-8 -*-
from __future__ import annotations


def test_runner_background_start_and_finish():
    import sys
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import Runner
    runner = Runner()
    handles = [runner.start([sys.executable, '-c', 'import sys; print("out%d"); sys.exit(%d)' % (i, i)])
               for i in range(3)]
    results = [runner.finish(h) for h in handles]
    assert [(rc, out.strip()) for rc, out, _err in results] == [(0, 'out0'), (1, 'out1'), (2, 'out2')]
    assert [kind for kind, _argv in runner.calls] == ['read'] * 3 and runner.writes() == []

    class Prefixed(Runner):
        def argv_for(self, argv):
            return [sys.executable, '-c', 'import sys; print(sys.argv[1:])'] + list(argv)

    prefixed = Prefixed()
    rc, out, _err = prefixed.finish(prefixed.start(['a', 'b']))
    assert rc == 0 and out.strip() == "['a', 'b']"
    assert prefixed.calls[0][1][-2:] == ('a', 'b')

    class RunOnly(Runner):
        def run(self, argv, data=None, kind='read'):
            self.calls.append((kind, tuple(argv)))
            return 0, 'canned', ''

    run_only = RunOnly()
    assert run_only.finish(run_only.start(['x'])) == (0, 'canned', '')


def test_runner_cancel_reaps_a_running_read():
    import sys
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import Runner
    runner = Runner()
    handle = runner.start([sys.executable, '-c', 'import time; time.sleep(30)'])
    runner.cancel(handle)
    assert handle[1].returncode is not None
