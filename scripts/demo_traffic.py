# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic for the demo, run inside a guest namespace (ip netns exec G ...).

    demo_traffic.py listen --port 9999 [--port 9998 ...] --seconds 10 --until end
        print one JSON line per UDP datagram received ({"payload", "source", "port"});
        stop at the datagram whose payload is --until, or after --seconds
    demo_traffic.py send --iface eth0 --dst-mac M --dst-ip A --frame PAYLOAD,SRC_MAC,SRC_IP[,PORT] ...
        send raw Ethernet/IPv4/UDP frames with exactly these source addresses
        (scapy), in order, so that a guest can forge its source MAC or IP
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time


def listen(ports, seconds, until):
    socks = []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(('0.0.0.0', port))
        socks.append(sock)
    deadline = time.monotonic() + seconds
    print(json.dumps({'listening': ports}), flush=True)
    done = False
    while not done:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _w, _x = select.select(socks, [], [], left)
        for sock in readable:
            data, peer = sock.recvfrom(2048)
            payload = data.decode('ascii', 'replace')
            print(json.dumps({'payload': payload, 'source': peer[0], 'port': sock.getsockname()[1]}), flush=True)
            done = done or payload == until
    for sock in socks:
        sock.close()


def send(args):
    try:
        from scapy.all import Ether, IP, UDP, Raw, sendp  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        sys.exit('scapy is needed to forge frames (pip install scapy / apt-get install python3-scapy): %s' % exc)
    frames = []
    for spec in args.frame:
        fields = spec.split(',')
        payload, src_mac, src_ip = fields[:3]
        port = int(fields[3]) if len(fields) > 3 else args.port
        frames.append(Ether(src=src_mac, dst=args.dst_mac) / IP(src=src_ip, dst=args.dst_ip)
                      / UDP(sport=40000, dport=port) / Raw(load=payload.encode('ascii')))
    for frame in frames:
        sendp(frame, iface=args.iface, verbose=False)
        time.sleep(0.05)


def main(argv=None):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='command', required=True)
    p_listen = sub.add_parser('listen')
    p_listen.add_argument('--port', type=int, action='append', help='repeat for several ports (default 9999)')
    p_listen.add_argument('--seconds', type=float, default=10.0)
    p_listen.add_argument('--until', default='end')
    p_send = sub.add_parser('send')
    p_send.add_argument('--iface', default='eth0')
    p_send.add_argument('--port', type=int, default=9999)
    p_send.add_argument('--dst-mac', required=True)
    p_send.add_argument('--dst-ip', required=True)
    p_send.add_argument('--frame', action='append', required=True, help='PAYLOAD,SRC_MAC,SRC_IP[,PORT]')
    args = parser.parse_args(argv)
    if args.command == 'listen':
        listen(args.port or [9999], args.seconds, args.until)
    else:
        send(args)


if __name__ == '__main__':
    main()
