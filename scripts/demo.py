# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo`: the collection on a throwaway hypervisor made of network namespaces.

1. Builds a host namespace with bridge br0 and two guest namespaces, each
   wired through a veth whose host end (vnet0, vnet1) is a bridge port.
2. Runs examples/virt_network.yml inside the host namespace (rendered, then
   applied and shown, then removed).
3. Runs examples/guest_nic_filter.yml inside the host namespace with
   state=rendered and prints the rules. When the module offers state=present:
   sends a real and two spoofed frames from guest 0 to guest 1, applies
   clean-traffic to both NICs, shows the chains, re-applies (must change
   nothing), sends the same frames again and shows which arrived.
4. Runs examples/nwfilter.yml (a filter of our own: clean-traffic + drop UDP
   to port 9999), rebinds guest 1's NIC to it and shows that UDP to 9998
   arrives and to 9999 does not; then unbinds everything and removes it.
5. Deletes every namespace and temporary file, also on failure or Ctrl-C.

Nothing outside those namespaces is changed: ansible-playbook itself runs
under ``ip netns exec``; the modules' state_dir is a temporary directory.
Run it as root with the venv's Python (scripts/demo.sh does both).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))

import netns as nslib  # noqa: E402 pylint: disable=wrong-import-position

PYTHON = sys.executable
TRAFFIC = os.path.join(REPO, 'scripts', 'demo_traffic.py')
EXAMPLES = os.path.join(REPO, 'examples')
# Options examples/guest_nic_filter.yml passes to the module.
GUEST_NIC_FILTER_OPTIONS = ('nics', 'state')
SPOOFED_IP = '192.0.2.99'
SPOOFED_MAC = '52:54:00:de:ad:01'


class DemoFailed(Exception):
    pass


def banner(text):
    print('\n' + '=' * 78 + '\n== ' + text + '\n' + '=' * 78, flush=True)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def make_collections_dir(tmp):
    """A directory with ansible_collections/hypervisor/netfilter -> this checkout."""
    root = os.path.join(tmp, 'collections')
    os.makedirs(os.path.join(root, 'ansible_collections', 'hypervisor'))
    os.symlink(REPO, os.path.join(root, 'ansible_collections', 'hypervisor', 'netfilter'))
    return root


def ansible_env(collections_dir, tmp):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections_dir,
        'ANSIBLE_CALLBACK_RESULT_FORMAT': 'yaml',
        'ANSIBLE_LOCALHOST_WARNING': 'False',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'False',
        'ANSIBLE_RETRY_FILES_ENABLED': 'False',
        'ANSIBLE_LOCAL_TEMP': os.path.join(tmp, 'ansible-tmp'),
        # No system D-Bus: a firewalld running on the real host must never be reached.
        'DBUS_SYSTEM_BUS_ADDRESS': 'unix:path=' + os.path.join(tmp, 'no-dbus'),
        'PATH': os.path.dirname(PYTHON) + os.pathsep + env.get('PATH', ''),
    })
    return env


def module_doc(name, env):
    """The module's documentation (ansible-doc -j), or None if it does not exist."""
    fqcn = 'hypervisor.netfilter.' + name
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), 'ansible-doc'), '-j', fqcn], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout).get(fqcn, {}).get('doc')
    except ValueError:
        return None


def run_playbook(hv, env, playbook, extra_vars):
    """ansible-playbook inside the host namespace; output streamed; returns the recap's changed count."""
    argv = hv.host.exec_argv([
        os.path.join(os.path.dirname(PYTHON), 'ansible-playbook'), '-i', 'localhost,',
        '-e', 'ansible_python_interpreter=' + PYTHON, '-e', json.dumps(extra_vars),
        os.path.join(EXAMPLES, playbook)])
    shown_vars = ' '.join('%s=%s' % kv for kv in sorted(extra_vars.items()) if kv[0] != 'hnf_nics')
    print('$ ip netns exec %s ansible-playbook examples/%s %s' % (hv.host.name, playbook, shown_vars), flush=True)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # pylint: disable=consider-using-with
                            universal_newlines=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    proc.wait()
    sys.stdout.flush()
    if proc.returncode != 0:
        raise DemoFailed('ansible-playbook examples/%s failed (exit code %d)' % (playbook, proc.returncode))
    recap = re.search(r'changed=(\d+)', ''.join(lines))
    return int(recap.group(1)) if recap else None


def show_chains(hv, title):
    banner(title)
    shown = False
    for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'):
        if shutil.which(tool) is None:
            continue
        text = hv.host.run([tool], check=False).stdout
        rules = [line for line in text.splitlines() if line and not line.startswith('#')]
        if any(line.startswith((':', '-A', '-I')) for line in rules if not re.match(r'^:[A-Z]+ (ACCEPT|DROP)', line)):
            print('--- %s (host namespace %s)' % (tool, hv.host.name))
            print('\n'.join(rules))
            shown = True
    if shutil.which('nft'):
        tables = hv.host.run(['nft', 'list', 'tables'], check=False).stdout.split('\n')
        for line in tables:
            parts = line.split()
            if len(parts) == 3 and parts[2].startswith('libvirt'):
                print('--- nft list table %s %s' % (parts[1], parts[2]))
                print(hv.host.run(['nft', 'list', 'table', parts[1], parts[2]]).stdout.rstrip())
                shown = True
    if not shown:
        print('(no rules)')
    sys.stdout.flush()


def send_frames(hv, frames, ports=(9999,)):
    """Guest 0 sends UDP ``frames`` (payload, source MAC, source IP, port) to
    guest 1, then an 'end' marker; prints and returns the payloads that arrived."""
    sender, receiver = hv.guests[0], hv.guests[1]
    frames = tuple(frames) + (('end', sender.mac, sender.ip, ports[0]),)
    argv = [PYTHON, TRAFFIC, 'listen', '--seconds', '10', '--until', 'end']
    for port in ports:
        argv += ['--port', str(port)]
    listener = receiver.ns.popen(argv, stdout=subprocess.PIPE, universal_newlines=True)
    try:
        first = listener.stdout.readline()
        if 'listening' not in first:
            raise DemoFailed('the listener in %s did not start: %r' % (receiver.ns.name, first))
        argv = [PYTHON, TRAFFIC, 'send', '--iface', sender.nic, '--dst-mac', receiver.mac, '--dst-ip', receiver.ip]
        for frame in frames:
            argv += ['--frame', ','.join(str(field) for field in frame)]
        sender.ns.run(argv, timeout=60)
        out, _err = listener.communicate(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    arrived = {json.loads(line)['payload'] for line in out.splitlines() if line.strip()}
    print('%-12s %-19s %-12s %-6s -> %s' % ('frame', 'source MAC', 'source IP', 'port', 'guest 1 (%s)' % receiver.ip))
    for payload, mac, ip, port in frames[:-1]:
        print('%-12s %-19s %-12s %-6s -> %s' % (payload, mac, ip, port, 'ARRIVED' if payload in arrived else 'dropped'))
    sys.stdout.flush()
    return arrived


def spoofing_frames(hv):
    sender = hv.guests[0]
    return (('real', sender.mac, sender.ip, 9999), ('spoofed-ip', sender.mac, SPOOFED_IP, 9999),
            ('spoofed-mac', SPOOFED_MAC, sender.ip, 9999))


def demo_virt_network(hv, env, state_dir):
    doc = module_doc('virt_network', env)
    if doc is None:
        print('hypervisor.netfilter.virt_network is not in this checkout: skipping its example')
        return
    banner('virt_network: examples/virt_network.yml, state=rendered (changes nothing)')
    run_playbook(hv, env, 'virt_network.yml', {'hnf_state': 'rendered', 'hnf_state_dir': state_dir})
    banner('virt_network: state=present (bridge virbr-demo and its NAT firewall)')
    run_playbook(hv, env, 'virt_network.yml', {'hnf_state': 'present', 'hnf_state_dir': state_dir})
    show_chains(hv, 'rules in the host namespace after virt_network state=present')
    banner('virt_network: state=absent')
    run_playbook(hv, env, 'virt_network.yml', {'hnf_state': 'absent', 'hnf_state_dir': state_dir})


def demo_guest_nic_filter(hv, env, state_dir):
    doc = module_doc('guest_nic_filter', env)
    if doc is None:
        raise DemoFailed('the module hypervisor.netfilter.guest_nic_filter does not exist in this checkout yet '
                         '(plugins/modules/guest_nic_filter.py): nothing to demonstrate for guest NIC filtering')
    options = doc.get('options', {})
    missing = [name for name in GUEST_NIC_FILTER_OPTIONS if name not in options]
    if missing:
        raise DemoFailed('examples/guest_nic_filter.yml passes option(s) %s, which guest_nic_filter does not have '
                         '(it has: %s)' % (', '.join(missing), ', '.join(sorted(options))))
    states = options['state'].get('choices') or []
    nics = [{'interface': g.port, 'mac': g.mac, 'filter': 'clean-traffic', 'parameters': {'IP': g.ip}}
            for g in hv.guests]
    extra = {'hnf_nics': nics}
    if 'state_dir' in options:
        extra['hnf_state_dir'] = state_dir

    if 'rendered' not in states:
        raise DemoFailed('guest_nic_filter has no state=rendered (states: %s)' % ', '.join(states))
    banner('guest_nic_filter: clean-traffic on vnet0 and vnet1, state=rendered (changes nothing)')
    run_playbook(hv, env, 'guest_nic_filter.yml', dict(extra, hnf_state='rendered'))

    if 'present' not in states:
        print('\nguest_nic_filter offers no state=present yet (states: %s): the apply and traffic part '
              'of the demo is skipped.' % ', '.join(states))
        return

    banner('before filtering: guest 0 sends a real and two spoofed frames to guest 1')
    before = send_frames(hv, spoofing_frames(hv))
    if not {'real', 'spoofed-ip', 'spoofed-mac'} <= before:
        raise DemoFailed('without filters every frame should arrive, but only %s did: the throwaway '
                         'hypervisor is not forwarding' % sorted(before))

    banner('guest_nic_filter: state=present (one atomic restore per family)')
    run_playbook(hv, env, 'guest_nic_filter.yml', dict(extra, hnf_state='present'))
    show_chains(hv, 'chains in the host namespace after applying clean-traffic')

    banner('guest_nic_filter: state=present again (idempotent: must change nothing)')
    changed = run_playbook(hv, env, 'guest_nic_filter.yml', dict(extra, hnf_state='present'))
    if changed != 0:
        raise DemoFailed('the second identical run reported changed=%s' % changed)

    banner('with clean-traffic: guest 0 sends the same frames again')
    after = send_frames(hv, spoofing_frames(hv))
    if 'real' not in after:
        raise DemoFailed('the genuine frame from guest 0 did not arrive with clean-traffic applied')
    if after & {'spoofed-ip', 'spoofed-mac'}:
        raise DemoFailed('spoofed frames arrived despite clean-traffic: %s' % sorted(after & {'spoofed-ip', 'spoofed-mac'}))
    print('\nclean-traffic let the genuine frame through and dropped both spoofed ones.')

    own_filter = demo_nwfilter(hv, env, state_dir, extra)

    if 'absent' in states:
        banner('guest_nic_filter: state=absent')
        run_playbook(hv, env, 'guest_nic_filter.yml', dict(extra, hnf_state='absent'))
        if own_filter:
            banner('nwfilter: remove demo-no-udp-9999 (no NIC uses it any more)')
            run_playbook(hv, env, 'nwfilter.yml', {'hnf_state': 'absent', 'hnf_state_dir': state_dir})
        show_chains(hv, 'rules left in the host namespace')


def demo_nwfilter(hv, env, state_dir, extra):
    """Define a filter of our own, rebind guest 1's NIC to it, show that its
    IP-layer rule works. Returns whether the filter was defined."""
    doc = module_doc('nwfilter', env)
    if doc is None or 'hnf_state_dir' not in extra:
        print('hypervisor.netfilter.nwfilter is not in this checkout (or guest_nic_filter has no state_dir): '
              'skipping the custom filter part')
        return False
    banner('nwfilter: define demo-no-udp-9999 = clean-traffic + drop UDP to port 9999 of the guest')
    run_playbook(hv, env, 'nwfilter.yml', {'hnf_state': 'present', 'hnf_state_dir': state_dir})
    nics = [dict(nic) for nic in extra['hnf_nics']]
    nics[1]['filter'] = 'demo-no-udp-9999'
    banner('guest_nic_filter: rebind %s to demo-no-udp-9999' % nics[1]['interface'])
    run_playbook(hv, env, 'guest_nic_filter.yml', dict(extra, hnf_nics=nics, hnf_state='present'))
    show_chains(hv, 'chains in the host namespace with demo-no-udp-9999 on %s' % nics[1]['interface'])
    banner('guest 0 sends genuine UDP to ports 9998 and 9999 of guest 1')
    sender = hv.guests[0]
    arrived = send_frames(hv, (('to-9998', sender.mac, sender.ip, 9998), ('to-9999', sender.mac, sender.ip, 9999)),
                          ports=(9998, 9999))
    if 'to-9998' not in arrived or 'to-9999' in arrived:
        raise DemoFailed('demo-no-udp-9999 should pass port 9998 and drop port 9999; arrived: %s' % sorted(arrived))
    print('\nthe IP-layer rule of demo-no-udp-9999 (iptables, FO-%s) dropped port 9999 only.' % nics[1]['interface'])
    return True


def main():
    ok, reason = nslib.can_create_namespaces()
    if not ok:
        sys.stderr.write('demo: %s\n' % reason)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_exit)
    tmp = tempfile.mkdtemp(prefix='hnf-demo-')
    try:
        env = ansible_env(make_collections_dir(tmp), tmp)
        state_dir = os.path.join(tmp, 'state')
        tag = os.environ.get('HNF_DEMO_TAG') or nslib.unique_name('demo')
        banner('throwaway hypervisor: namespaces %s-{host,g0,g1}' % tag)
        with nslib.ThrowawayHypervisor(guests=2, tag=tag) as hv:
            print(hv.host.run(['ip', '-br', 'link']).stdout.rstrip())
            print('bridge-nf sysctls in the host namespace: %s' % hv.bridge_nf)
            for index, guest in enumerate(hv.guests):
                print('guest %d: namespace %s, %s %s %s/%s, host port %s'
                      % (index, guest.ns.name, guest.nic, guest.mac, guest.ip, guest.ip6, guest.port))
            demo_virt_network(hv, env, state_dir)
            demo_guest_nic_filter(hv, env, state_dir)
    except DemoFailed as exc:
        sys.stderr.write('\ndemo FAILED: %s\n' % exc)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print('\ndemo finished; every namespace and temporary file is removed.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
