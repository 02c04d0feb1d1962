"""Record every network connection and name lookup a test's subprocess makes off this machine.

The end-to-end tests put this directory on their subprocesses' ``PYTHONPATH`` and name a log
file in ``NETGUARD_LOG``; Python imports ``sitecustomize`` at start-up, and this one installs
an audit hook (:func:`sys.addaudithook`, PEP 578) that runs *before* each of these operations:

- ``socket.connect`` and ``socket.sendto``/``socket.sendmsg`` to an address that is not
  loopback (127.0.0.0/8, ``::1``, ``localhost``, an unspecified address, which is this
  machine); ``AF_UNIX`` and other non-IP sockets are local and never recorded;
- ``socket.getaddrinfo``, ``socket.gethostbyname(_ex)``, ``socket.gethostbyaddr`` and
  ``socket.getnameinfo`` of any name or address other than those.

Each one is appended to the log as one JSON line (process id and command line, the event, the
destination and a short stack), in a single ``write`` so that processes never interleave. The
hook only records: the call then goes ahead, so a test's behaviour is unchanged. The tests'
session fixture reads the log at the end and fails the run if it is not empty. Connections
made by C libraries (libpq, gRPC) do not pass through Python's socket module and are not seen.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import traceback
from typing import Any

_LOG = os.environ.get("NETGUARD_LOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_CONNECTS = {"socket.connect", "socket.sendto", "socket.sendmsg"}
_LOOKUPS = {
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
}


def is_local(host: object) -> bool:
    """Whether ``host`` (a name, an address, or None) stays on this machine.

    >>> [is_local(h) for h in ("127.0.0.2", "::1", "localhost", "", None, b"127.0.0.1")]
    [True, True, True, True, True, True]
    >>> [is_local(h) for h in ("192.0.2.1", "example.org", "::ffff:192.0.2.1", "10.0.0.1")]
    [False, False, False, False]
    >>> is_local("::ffff:127.0.0.1"), is_local("0.0.0.0"), is_local("a.localhost")
    (True, True, True)
    """
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name == "" or name in _LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a name that needs a lookup
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def destination(event: str, args: tuple[Any, ...]) -> str | None:
    """The off-machine destination of an audit event, or None when it stays local.

    >>> destination("socket.getaddrinfo", ("example.org", 443, 0, 0, 0))
    'example.org:443'
    >>> destination("socket.getaddrinfo", ("localhost", 80, 0, 0, 0)) is None
    True
    >>> destination("socket.gethostbyname", ("example.org",))
    'example.org'
    >>> destination("socket.getnameinfo", (("192.0.2.1", 80), 0))
    '192.0.2.1'
    """
    if event in _CONNECTS:
        sock, address = args[0], args[1]
        family = getattr(sock, "family", None)
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return None  # AF_UNIX paths, netlink and the like
        host = address[0]
        return None if is_local(host) else f"{host}:{address[1]}"
    if event in _LOOKUPS:
        host = args[0][0] if isinstance(args[0], tuple) else args[0]
        if is_local(host):
            return None
        text = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
        return f"{text}:{args[1]}" if event == "socket.getaddrinfo" and args[1] else text
    return None


def _record(event: str, args: tuple[Any, ...]) -> None:
    if event not in _CONNECTS and event not in _LOOKUPS:
        return
    where = destination(event, args)
    if where is None or _LOG is None:
        return
    entry = {
        "pid": os.getpid(),
        "argv": sys.argv,
        "event": event,
        "destination": where,
        "stack": traceback.format_stack(limit=12)[:-1],
    }
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(fd)


if _LOG:
    sys.addaudithook(_record)
