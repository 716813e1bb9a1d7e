"""Ports for servers that another process binds later (a rank's metrics endpoint, a rendezvous,
a SLURM daemon), importable by name from any test folder.

bind(0) hands out a port from the kernel's ephemeral range, the range every outgoing connection
also takes its source port from. Between the draw and the server's bind (seconds later, in another
process) a gloo, TCPStore or HTTP client connection can take that port, or a client polling it can
connect to itself. Ports below that range are only ever taken by explicit binds.
"""

import random
import socket
from pathlib import Path

_draws = random.Random()  # its own generator: a test that seeds `random` must not fix the draws


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive ports that are all free now, below the ephemeral range."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = _draws.randrange(max(1024, low - 12000), low - count)
        sockets = []
        try:
            for offset in range(count):
                sockets.append(socket.socket())
                sockets[-1].bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports below the ephemeral range")
