"""The thin entry point: forward argv + environment to hotplugd, else run in-process.

Standard library only and as little of it as possible (``_socket``, not
``socket``): this runs once per NIC under ``python3 -I -S``. The caller's
network namespace travels as an fd (SCM_RIGHTS), so the daemon acts there.
"""

import _socket
import os
import sys

from . import wire

DEFAULT_TIMEOUT = 20.0  # then run in-process; libxl kills at 40 s


def forward(argv: list[str], env: dict[str, str], path: str, timeout: float) -> int | None:
    """The daemon's exit status for this command, or None if it did not run it."""
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        nsfd = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            fds = nsfd.to_bytes(4, sys.byteorder)
            sock.sendmsg([wire.frame(wire.encode_request(argv, env))],
                         [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        finally:
            os.close(nsfd)
        return _replies(sock)
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def _replies(sock: "_socket.socket") -> int | None:
    """Copy stderr frames through; return the exit status (None on refusal or EOF)."""
    while True:
        header = _recv_exact(sock, 4)
        size = int.from_bytes(header, "little")
        if size < 1 or size > wire.MAX_FRAME:
            return None
        payload = _recv_exact(sock, size)
        kind, body = payload[:1], payload[1:]
        if kind == wire.STDERR:
            os.write(2, body)
        elif kind == wire.EXIT:
            return int(body)
        else:
            return None


def _recv_exact(sock: "_socket.socket", size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("daemon closed the connection")
        data += chunk
    return data


def run_in_process(argv: list[str], env: dict[str, str], venv: str) -> int:
    """Run the command here: add the venv's site-packages (we run with -S) and call it."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = os.path.join(venv, "lib", version, "site-packages")
    if os.path.isdir(site) and site not in sys.path:
        sys.path.append(site)
    from .cli import command_name
    from .commands import run_command

    return run_command(command_name(argv), argv, env, sys.stderr, sys.stdout)


def main(venv: str) -> None:
    """Entry point of bin/xenscripts-run (and its symlinks)."""
    argv = list(sys.argv)
    env = dict(os.environ)
    status = None
    if env.get("XENSCRIPTS_NO_DAEMON") != "1":
        timeout = float(env.get("XENSCRIPTS_CLIENT_TIMEOUT") or DEFAULT_TIMEOUT)
        status = forward(argv, env, env.get("XENSCRIPTS_SOCKET") or wire.DEFAULT_SOCKET, timeout)
    if status is None:
        status = run_in_process(argv, env, venv)
    sys.stdout.flush()
    os._exit(status)
