"""Makes chosen host services reachable inside the real node's network namespace, where its pods live.

`python -m modelrollout.sandbox.netns_proxy --netns /run/netns/NAME --forward ADDR:PORT=127.0.0.1:PORT ...`

The API server and Prometheus listen on 127.0.0.1 of the host, which no pod can reach, and the sandbox runs
no kube-proxy. This process opens each listening socket inside the namespace (setns(2) on this thread, then
back) and dials the target in the host's namespace, so a pod that connects to ADDR:PORT (for the API
server: the `kubernetes` Service's ClusterIP, 10.0.0.1:443, which the sandbox puts on the namespace's
loopback) reaches the host's 127.0.0.1:PORT. Nothing listens outside the namespace. It writes `ready` to
--ready-file once every socket listens and exits when --parent-pid is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("modelrollout.netns-proxy")
CLONE_NEWNET = 0x40000000
BUFFER = 65536


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def listen_in(netns: Path, addresses: list[tuple[str, int]]) -> list[socket.socket]:
    """Listening sockets bound inside `netns`; the calling thread is back in its own namespace after."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    sockets = []
    try:
        _setns(target)
        try:
            for host, port in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(128)
                sock.setblocking(False)
                sockets.append(sock)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    return sockets


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _handler(target: tuple[str, int]):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError as error:
            log.warning("cannot reach %s:%d: %s", *target, error)
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    return handle


async def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            log.warning("parent process %d is gone; stopping", parent)
            return
        await asyncio.sleep(1.0)


async def run(netns: Path, forwards: list[tuple[tuple[str, int], tuple[str, int]]], ready: Path | None,
              parent: int | None) -> None:  # fmt: skip
    sockets = listen_in(netns, [listen for listen, _ in forwards])
    servers = [
        await asyncio.start_server(_handler(target), sock=sock)
        for sock, (_, target) in zip(sockets, forwards, strict=True)
    ]
    for listen, target in forwards:
        log.info("%s %s:%d -> host %s:%d", netns.name, *listen, *target)
    if ready is not None:
        await asyncio.to_thread(ready.write_text, "ready\n")
    try:
        if parent is not None:
            await _watch_parent(parent)
        else:
            await asyncio.Event().wait()
    finally:
        for server in servers:
            server.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netns_proxy", description=__doc__)
    parser.add_argument("--netns", type=Path, required=True)
    parser.add_argument("--forward", action="append", required=True, help="LISTEN:PORT=TARGET:PORT")
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    forwards = []
    for entry in args.forward:
        listen, _, target = entry.partition("=")
        forwards.append((_address(listen), _address(target)))
    asyncio.run(run(args.netns, forwards, args.ready_file, args.parent_pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
