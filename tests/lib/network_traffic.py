# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small lab for real traffic through virt_network's networks (used by several kernel tests).

:class:`Lab` makes a host namespace, an upstream namespace (``UPSTREAM`` behind
``UPSTREAM_HOST``) and guests plugged into a bridge the module created;
:class:`Server` and :func:`connect` are small Python socket programs run in a
namespace, so results are exact: which peer address the server saw, and
whether a connection was accepted, refused (REJECT) or timed out (DROP).
Everything is deleted when the lab is left.
"""

from __future__ import annotations

import sys
import time

from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns, unique_name

UPSTREAM_HOST = '203.0.113.1'
UPSTREAM = '203.0.113.2'

_SERVER = r'''
import socket, sys
host, port, proto, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
with_port = len(sys.argv) > 5
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
if proto == "tcp":
    s.listen(8)
s.settimeout(timeout)
print("ready", flush=True)
try:
    while True:
        if proto == "tcp":
            conn, addr = s.accept()
            conn.sendall(b"hello")
            conn.close()
        else:
            data, addr = s.recvfrom(512)
            s.sendto(b"hello", addr)
        print("%s:%d" % (addr[0], addr[1]) if with_port else addr[0], flush=True)
except socket.timeout:
    pass
'''

_CLIENT = r'''
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.settimeout(2.0)
try:
    if proto == "tcp":
        s.connect((host, port))
        data = s.recv(16)
    else:
        s.sendto(b"ping", (host, port))
        data, _addr = s.recvfrom(16)
    print("ok" if data == b"hello" else "bad")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
except OSError as exc:
    print("error %s" % exc.errno)
'''


class Server:
    """A socket server in a namespace; ``peers()`` lists the addresses it served."""

    def __init__(self, ns, host, port, proto='tcp', timeout=20, with_port=False):
        import subprocess
        argv = [sys.executable, '-c', _SERVER, host, str(port), proto, str(timeout)] + (['port'] if with_port else [])
        self.proc = ns.popen(argv,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        assert self.proc.stdout.readline().strip() == 'ready'

    def peers(self):
        self.proc.terminate()
        out, _err = self.proc.communicate(timeout=10)
        return out.split()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def connect(ns, host, port, proto='tcp'):
    return ns.run([sys.executable, '-c', _CLIENT, host, str(port), proto]).stdout.strip()


class Lab:
    def __init__(self, tag):
        base = unique_name(tag)
        self.host = Netns(name=base + '-h')
        self.upstream = Netns(name=base + '-u')
        self.guests = [Netns(name=base + '-g0'), Netns(name=base + '-g1')]
        self.all = [self.host, self.upstream] + self.guests
        self.servers = []

    def __enter__(self):
        try:
            for ns in self.all:
                ns.create()
            self.host.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', self.upstream.name)
            self.host.own_interfaces.add('up0')
            self.upstream.own_interfaces.add('eth0')
            self.host.ip('addr', 'add', UPSTREAM_HOST + '/24', 'dev', 'up0')
            self.host.ip('link', 'set', 'up0', 'up')
            self.upstream.ip('addr', 'add', UPSTREAM + '/24', 'dev', 'eth0')
            self.upstream.ip('link', 'set', 'eth0', 'up')
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for server in self.servers:
            server.stop()
        for ns in reversed(self.all):
            ns.delete()
        return False

    def plug_guests(self, bridge, subnet, gateway_suffix=1):
        """Connect both guests to ``bridge`` with SUBNET.10 / SUBNET.11 and a default route."""
        for index, guest in enumerate(self.guests):
            port = 'vnet%d' % index
            self.host.ip('link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', guest.name)
            self.host.own_interfaces.add(port)
            guest.own_interfaces.add('eth0')
            self.host.ip('link', 'set', port, 'master', bridge)
            self.host.ip('link', 'set', port, 'up')
            guest.ip('addr', 'add', '%s.%d/24' % (subnet, 10 + index), 'dev', 'eth0')
            guest.ip('link', 'set', 'eth0', 'up')
            guest.ip('route', 'add', 'default', 'via', '%s.%d' % (subnet, gateway_suffix))
        time.sleep(0.2)  # bridge ports forwarding (stp off, delay 0)

    def server(self, ns, host, port, proto='tcp', with_port=False):
        server = Server(ns, host, port, proto, with_port=with_port)
        self.servers.append(server)
        return server
