"""Runs a moto server on 127.0.0.1 for rollcall's local stack and tests.

Prints the port it listens on, then serves until its standard input closes: the process that
started it holds the other end, so when that process ends, for any reason, moto ends too.
"""

import sys

from moto.moto_server.threaded_moto_server import ThreadedMotoServer

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
