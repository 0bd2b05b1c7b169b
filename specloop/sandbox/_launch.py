"""Runs inside the sandboxed process, just before the command replaces it (``python -I -S``).

Usage: ``python -I -S _launch.py CGROUP CPU_S LOOPBACK COMMAND [ARG ...]`` where ``-`` means
"none": ``CGROUP`` is a cgroup directory to join, so the memory limit covers the command and its
children; ``CPU_S`` sets RLIMIT_CPU (SIGXCPU at the limit, SIGKILL a second later); ``LOOPBACK``
``1`` brings up the new network namespace's own ``lo``, which is not the host's: a notebook kernel
or a local server and its client still talk over 127.0.0.1 inside, while nothing outside can be
reached. Doing this here rather than in a ``preexec_fn`` keeps the parent (which may have
threads) from running Python between fork and exec. Only built-in C modules are imported (``json``
and ``socket`` would add 15 ms to every command).
"""

import _socket
import fcntl
import os
import resource
import struct
import sys

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"


def _loopback_up() -> None:
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        got = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0))
        flags = struct.unpack(_IFREQ, got)[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))
    finally:
        sock.close()


def main(argv: list[str]) -> None:
    cgroup, cpu_s, loopback, command = argv[0], argv[1], argv[2], argv[3:]
    if cgroup != "-":
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
            fh.write(str(os.getpid()))
    if cpu_s != "-":
        resource.setrlimit(resource.RLIMIT_CPU, (int(cpu_s), int(cpu_s) + 1))
    if loopback == "1":
        _loopback_up()
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        sys.stderr.write(f"sandbox: command not found: {command[0]}\n")
        sys.exit(127)
    except PermissionError:
        sys.stderr.write(f"sandbox: command not executable: {command[0]}\n")
        sys.exit(126)


if __name__ == "__main__":
    main(sys.argv[1:])
