#!/usr/bin/python3
"""cutproxy.py: a TCP proxy for the sync tests and benchmarks that cuts
connections at random (seeded) byte offsets and can add latency.

    cutproxy.py --target HOST:PORT [--listen PORT] [--port-file FILE] [--log FILE]
                [--seed S] [--cut MIN:MAX] [--cuts N] [--latency MS] [--rate BYTES]

--listen 0 (default) picks a free port on 127.0.0.1 and writes it to
--port-file.  Each accepted connection is relayed to --target.

--cut MIN:MAX: each of the first --cuts connections (default: all) is cut
after a number of server-to-client bytes drawn uniformly from MIN..MAX with
the seeded generator: the proxy forwards exactly that many bytes, then resets
both sides (RST: no clean FIN that a client could mistake for an end).
Connections after the first --cuts pass through untouched, so a client that
reconnects and resumes eventually finishes.

--latency MS delays every chunk by MS/2 milliseconds in each direction
(MS is the added round trip), preserving order and throughput.

--rate BYTES limits each connection's server-to-client stream to BYTES per
second (a slow link: long enough imports to interrupt on purpose).

The log (--log, default stderr) has one line per connection: its number, the
bytes each way, and "cut at N" when it was cut.  SIGTERM stops it.
"""
import argparse
import asyncio
import os
import random
import signal
import socket
import struct
import sys
import time


class Proxy:
    def __init__(self, a):
        self.a = a
        host, _, port = a.target.rpartition(":")
        self.thost, self.tport = host or "127.0.0.1", int(port)
        self.rng = random.Random(a.seed)
        self.conns = 0
        self.cut = None
        if a.cut:
            lo, _, hi = a.cut.partition(":")
            self.cut = (int(lo), int(hi or lo))
        self.delay = a.latency / 2000.0
        self.log = open(a.log, "a", buffering=1) if a.log else sys.stderr

    async def pump(self, reader, writer, limit, counter, name, rate=0.0):
        """Copy reader -> writer (with the delay); stop after `limit` bytes (None: no limit)."""
        q = asyncio.Queue()

        async def sender():
            free_at = 0.0  # with --rate: when the link is free for the next byte
            while True:
                due, data = await q.get()
                if data is None:
                    break
                if rate > 0:
                    free_at = max(free_at, due) + len(data) / rate
                    due = free_at
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        st = asyncio.ensure_future(sender())
        cut = False
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if limit is not None and counter[name] + len(data) >= limit:
                    data = data[:limit - counter[name]]
                    cut = True
                counter[name] += len(data)
                if data:
                    q.put_nowait((time.monotonic() + self.delay, data))
                if cut:
                    break
            q.put_nowait((0, None))
            await st
            if cut:
                return "cut"
            if writer.can_write_eof():
                writer.write_eof()
            return "eof"
        except (ConnectionError, OSError):
            st.cancel()
            return "error"

    async def handle(self, creader, cwriter):
        self.conns += 1
        n = self.conns
        limit = None
        if self.cut and (self.a.cuts < 0 or n <= self.a.cuts):
            limit = self.rng.randint(*self.cut)
        try:
            sreader, swriter = await asyncio.open_connection(self.thost, self.tport)
        except OSError as e:
            self.log.write("conn %d: cannot reach %s:%d: %s\n" % (n, self.thost, self.tport, e))
            cwriter.close()
            return
        counter = {"up": 0, "down": 0}
        up = asyncio.ensure_future(self.pump(creader, swriter, None, counter, "up"))
        down = asyncio.ensure_future(self.pump(sreader, cwriter, limit, counter, "down", self.a.rate))
        done, pending = await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        results = {t.result() for t in done}
        if "cut" in results:
            for w in (cwriter, swriter):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                w.transport.abort()
            for t in pending:
                t.cancel()
        else:
            # one side finished: let the other drain, then close both
            if pending:
                await asyncio.wait(pending, timeout=3600)
            for w in (cwriter, swriter):
                try:
                    w.close()
                except Exception:
                    pass
        self.log.write("conn %d: up %d down %d%s\n" % (n, counter["up"], counter["down"],
                                                         " cut at %d" % limit if "cut" in results else ""))

    async def main(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.a.listen)
        port = server.sockets[0].getsockname()[1]
        if self.a.port_file:
            tmp = self.a.port_file + ".tmp"
            with open(tmp, "w") as fp:
                fp.write("%d\n" % port)
            os.rename(tmp, self.a.port_file)
        self.log.write("listening on 127.0.0.1:%d -> %s:%d (pid %d)\n" % (port, self.thost, self.tport,
                                                                          os.getpid()))
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(1))
        async with server:
            await stop


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cut", help="MIN:MAX server-to-client bytes before a cut")
    ap.add_argument("--cuts", type=int, default=-1, help="cut only the first N connections (default all)")
    ap.add_argument("--latency", type=float, default=0.0, help="added round trip in ms")
    ap.add_argument("--rate", type=float, default=0.0, help="server-to-client bytes per second per connection")
    a = ap.parse_args()
    asyncio.run(Proxy(a).main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
