# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic for the demo, run inside a guest namespace (ip netns exec G ...).

    demo_traffic.py listen --port 9999 --seconds 10 --until end
        print one JSON line per UDP datagram received ({"payload", "source"});
        stop at the datagram whose payload is --until, or after --seconds
    demo_traffic.py send --iface eth0 --dst-mac M --dst-ip A --frame PAYLOAD,SRC_MAC,SRC_IP ...
        send raw Ethernet/IPv4/UDP frames with exactly these source addresses
        (scapy), in order, so that a guest can forge its source MAC or IP
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def listen(port, seconds, until):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('0.0.0.0', port))
    deadline = time.monotonic() + seconds
    print(json.dumps({'listening': port}), flush=True)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, peer = sock.recvfrom(2048)
        except socket.timeout:
            break
        payload = data.decode('ascii', 'replace')
        print(json.dumps({'payload': payload, 'source': peer[0]}), flush=True)
        if payload == until:
            break
    sock.close()


def send(args):
    try:
        from scapy.all import Ether, IP, UDP, Raw, sendp  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        sys.exit('scapy is needed to forge frames (pip install scapy / apt-get install python3-scapy): %s' % exc)
    frames = []
    for spec in args.frame:
        payload, src_mac, src_ip = spec.split(',')
        frames.append(Ether(src=src_mac, dst=args.dst_mac) / IP(src=src_ip, dst=args.dst_ip)
                      / UDP(sport=40000, dport=args.port) / Raw(load=payload.encode('ascii')))
    for frame in frames:
        sendp(frame, iface=args.iface, verbose=False)
        time.sleep(0.05)


def main(argv=None):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='command', required=True)
    p_listen = sub.add_parser('listen')
    p_listen.add_argument('--port', type=int, default=9999)
    p_listen.add_argument('--seconds', type=float, default=10.0)
    p_listen.add_argument('--until', default='end')
    p_send = sub.add_parser('send')
    p_send.add_argument('--iface', default='eth0')
    p_send.add_argument('--port', type=int, default=9999)
    p_send.add_argument('--dst-mac', required=True)
    p_send.add_argument('--dst-ip', required=True)
    p_send.add_argument('--frame', action='append', required=True, help='PAYLOAD,SRC_MAC,SRC_IP')
    args = parser.parse_args(argv)
    if args.command == 'listen':
        listen(args.port, args.seconds, args.until)
    else:
        send(args)


if __name__ == '__main__':
    main()
