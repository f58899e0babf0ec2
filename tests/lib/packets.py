# -*- coding: utf-8 -*-
"""Real frames through a throwaway hypervisor's bridge: crafted with scapy in one guest,
counted with tcpdump in another (what the packet-level kernel tests share)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import can_create_namespaces, missing_tools

SYSTEM_PYTHON = '/usr/bin/python3'
FOREIGN_MAC = '52:54:00:99:99:99'
FOREIGN_IP = '192.0.2.99'
COPIES = 3

# Sends the frames described in argv[1] (JSON) out of eth0 with scapy.
_SENDER = r'''
import json, sys
from scapy.all import ARP, BOOTP, DHCP, IP, UDP, Ether, Raw, sendp
frames = []
for spec in json.loads(sys.argv[1]):
    eth = Ether(src=spec["src_mac"], dst=spec["dst_mac"])
    kind = spec["kind"]
    if kind == "udp":
        pkt = eth / IP(src=spec["src_ip"], dst=spec["dst_ip"]) / UDP(sport=spec["sport"], dport=spec["dport"]) \
            / Raw(b"hnf-test")
    elif kind == "dhcp":
        pkt = eth / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) \
            / BOOTP(chaddr=bytes.fromhex(spec["src_mac"].replace(":", "")), xid=spec["xid"]) \
            / DHCP(options=[("message-type", "discover"), "end"])
    elif kind == "arp":
        pkt = eth / ARP(op=1, hwsrc=spec["hwsrc"], psrc=spec["psrc"], pdst=spec["pdst"])
    elif kind == "rarp":
        eth.type = 0x8035
        pkt = eth / ARP(op=3, hwsrc=spec["hwsrc"], psrc="0.0.0.0", hwdst=spec["hwdst"], pdst="0.0.0.0")
    else:
        raise SystemExit("unknown kind " + kind)
    frames.extend([pkt] * spec["count"])
sendp(frames, iface="eth0", verbose=False)
'''


def require_environment():
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)
    missing = missing_tools('tcpdump', 'ebtables-nft-restore', 'ebtables-nft-save')
    if missing:
        pytest.skip('missing tools: %s' % ', '.join(missing))
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip('no %s for scapy' % SYSTEM_PYTHON)
    probe = subprocess.run([SYSTEM_PYTHON, '-c', 'import scapy.all'], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip('scapy is not importable by %s (apt-get install python3-scapy)' % SYSTEM_PYTHON)


def frame_specs(guest, peer):
    """(name, expected count with clean-traffic, tcpdump filter that matches only it, spec)."""
    bcast = 'ff:ff:ff:ff:ff:ff'
    own = dict(src_mac=guest.mac, dst_mac=peer.mac, src_ip=guest.ip, dst_ip=peer.ip, sport=40000)
    return [
        ('own IPv4 traffic', COPIES, 'udp dst port 41001', dict(own, kind='udp', dport=41001)),
        ('spoofed source MAC', 0, 'udp dst port 41002', dict(own, kind='udp', dport=41002, src_mac=FOREIGN_MAC)),
        ('spoofed source IP', 0, 'udp dst port 41003', dict(own, kind='udp', dport=41003, src_ip=FOREIGN_IP)),
        ('DHCP discover', COPIES, 'udp dst port 67 and udp[8+4:4] = 0x484e4601',
         dict(kind='dhcp', src_mac=guest.mac, dst_mac=bcast, xid=0x484e4601)),
        ('own ARP request', COPIES, 'arp and arp[24:4] = 0xc00002c9',
         dict(kind='arp', src_mac=guest.mac, dst_mac=bcast, hwsrc=guest.mac, psrc=guest.ip, pdst='192.0.2.201')),
        ('ARP with spoofed sender IP', 0, 'arp and arp[24:4] = 0xc00002ca',
         dict(kind='arp', src_mac=guest.mac, dst_mac=bcast, hwsrc=guest.mac, psrc=FOREIGN_IP, pdst='192.0.2.202')),
        ('ARP with spoofed sender MAC', 0, 'arp and arp[24:4] = 0xc00002cb',
         dict(kind='arp', src_mac=guest.mac, dst_mac=bcast, hwsrc=FOREIGN_MAC, psrc=guest.ip, pdst='192.0.2.203')),
        ('RARP announce of the own MAC', COPIES, 'ether proto 0x8035 and ether src %s' % guest.mac,
         dict(kind='rarp', src_mac=guest.mac, dst_mac=bcast, hwsrc=guest.mac, hwdst=guest.mac)),
        ('RARP from a foreign MAC', 0, 'ether proto 0x8035 and ether src %s' % FOREIGN_MAC,
         dict(kind='rarp', src_mac=FOREIGN_MAC, dst_mac=bcast, hwsrc=FOREIGN_MAC, hwdst=FOREIGN_MAC)),
    ]


def send_and_count(hv, specs, pcap_dir, tag):
    guest, peer = hv.guests[0], hv.guests[1]
    pcap = os.path.join(pcap_dir, 'peer-%s.pcap' % tag)
    # --immediate-mode: otherwise frames reach tcpdump in blocks (1 s buffer timeout) and the
    # ones sent in the last second before we stop it are lost (seen here under load).
    capture = peer.ns.popen(['tcpdump', '-i', peer.nic, '-n', '-U', '--immediate-mode', '-w', pcap],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(capture)
        frames = []
        for _name, _expected, _bpf, spec in specs:
            frames.append(dict(spec, count=COPIES))
        guest.ns.run([SYSTEM_PYTHON, '-c', _SENDER, json.dumps(frames)], timeout=60)
        time.sleep(0.5)
    finally:
        capture.terminate()
        capture.wait(timeout=10)
    counts = {}
    for name, _expected, bpf, _spec in specs:
        out = peer.ns.run(['tcpdump', '-n', '-r', pcap, bpf], check=False).stdout
        counts[name] = len([line for line in out.splitlines() if line.strip()])
    return counts


def _wait_listening(capture):
    # tcpdump prints "listening on ..." to stderr once the capture is running.
    line = capture.stderr.readline().decode(errors='replace')
    if 'listening' not in line:
        raise AssertionError('tcpdump did not start: %s' % line)
