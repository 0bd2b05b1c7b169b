"""Runs inside the sandboxed process, just before the command replaces it (``python -I -S`` + stdlib).

Usage: ``python -I -S _launch.py CONFIG_JSON COMMAND [ARG ...]``. CONFIG_JSON may hold
``cgroup`` (a cgroup directory to join, so the memory limit covers the command and its children),
``cpu_s`` (RLIMIT_CPU: SIGXCPU at the limit, SIGKILL a second later) and ``loopback`` (bring up the
new network namespace's own ``lo``, which is not the host's: a notebook kernel or a local server
and its client still talk over 127.0.0.1 inside, while nothing outside can be reached). Doing this
here rather than in a ``preexec_fn`` keeps the parent (which may have threads) from running Python
between fork and exec.
"""

import fcntl
import json
import os
import resource
import socket
import struct
import sys

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def main(argv: list[str]) -> None:
    config, command = json.loads(argv[0]), argv[1:]
    if config.get("cgroup"):
        with open(os.path.join(config["cgroup"], "cgroup.procs"), "w") as fh:
            fh.write(str(os.getpid()))
    if config.get("cpu_s"):
        resource.setrlimit(resource.RLIMIT_CPU, (config["cpu_s"], config["cpu_s"] + 1))
    if config.get("loopback"):
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
