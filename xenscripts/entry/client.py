"""The thin entry point: forward argv + environment to hotplugd, else run in-process.

Standard library only and as little of it as possible (``_socket``, not
``socket``): this runs once per NIC under ``python3 -I -S``. The caller's
network namespace travels as an fd (SCM_RIGHTS), so the daemon acts there.

Exactly once (see ``wire``): the client runs the command itself only when
the daemon never started it (no socket, no answer, refused, closed) or died
while running it, and only while that can still finish in time. After it
answered GO it waits, at most until the deadline, and then reports what
timed out in ``hotplug-error``. Never a herd: a request the daemon has
queued, or answered BUSY, is not run here (in-process costs ten times the
CPU of a warm run, on a machine that is already the bottleneck); it fails
with the daemon's reason.
"""

import _socket
import os
import sys
import time

from . import wire

_TYPING = False  # mypy's always_true: ModuleType for the checker, no `types`/`typing` import at run time
if _TYPING:
    from types import ModuleType

DEFAULT_TIMEOUT = 30.0  # the whole call; libxl kills at 40 s
# The daemon's first answer (QUEUED, REFUSE, BUSY) may take this share of the budget: a boot storm's
# thousand requests arrive at once and the reception answers them in turn, and a caller that gave up
# early would run the command itself, adding to the overload (a hung daemon then costs this much, and
# the in-process run still has IN_PROCESS_MIN and more).
ANSWER_SHARE = 0.45
START_SHARE = 0.6  # a queued request must start within this share of the budget
IN_PROCESS_MIN = 3.0  # an in-process run needs at least this much of the budget left
HANDOFF = "XENSCRIPTS_HANDOFF"  # set by xenscripts-launch (entry/launch.c) when it execs an entry file
IN_PROCESS = "xenscripts.commands.inprocess"  # the one hand-off (by name: this module stays std-lib only)


class DaemonTimeout(Exception):
    """hotplugd started the request and did not finish it by the deadline."""


class DaemonBusy(Exception):
    """hotplugd is overloaded: it answered BUSY, or queued the request and could not start it in time."""


def forward(command: str, argv: list[str], env: dict[str, str], path: str, answer_by: float, start_by: float,
            work_deadline: float, deadline: float) -> int | None:
    """The daemon's exit status for this command, or None if the daemon did not run it.

    The daemon answers by *answer_by* and starts the work by *start_by* (DaemonBusy if it
    cannot); the work is bounded by *work_deadline*; the client waits until *deadline*."""
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return None
    sent = time.monotonic()
    try:
        try:
            wire.connect_unix(sock, path, answer_by)
            nsfd = os.open("/proc/self/ns/net", os.O_RDONLY)
            try:
                fds = nsfd.to_bytes(4, sys.byteorder)
                sock.sendmsg([wire.frame(wire.encode_request(command, argv, env, start_by, work_deadline))],
                              [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            finally:
                os.close(nsfd)
            kind, body = _read_frame(sock, answer_by)
            if kind == wire.QUEUED:
                try:
                    kind, body = _read_frame(sock, start_by)
                except TimeoutError:
                    raise DaemonBusy(f"hotplugd queued it and did not start it within "
                                     f"{start_by - sent:.1f} s") from None
            if kind == wire.BUSY:
                raise DaemonBusy(body.decode("utf-8", "replace"))
            if kind != wire.STARTED:
                return None  # refused (or nonsense): the daemon did nothing
            sock.sendall(wire.GO)
        except (OSError, ValueError):
            return None  # no answer by answer-by, the daemon is not there, or it went away
        return _replies(sock, deadline)
    finally:
        sock.close()


def _replies(sock: "_socket.socket", deadline: float) -> int | None:
    """Copy stderr frames through; the exit status, None if the daemon died, DaemonTimeout at *deadline*."""
    while True:
        try:
            kind, body = _read_frame(sock, deadline)
        except TimeoutError:
            raise DaemonTimeout() from None
        except (OSError, ValueError):
            return None  # died after starting: the commands are idempotent, run it here
        if kind == wire.STDERR:
            os.write(2, body)
        elif kind == wire.STDOUT:
            os.write(1, body)
        elif kind == wire.EXIT:
            return int(body)
        else:
            return None


def _read_frame(sock: "_socket.socket", deadline: float) -> tuple[bytes, bytes]:
    size = int.from_bytes(_recv_exact(sock, 4, deadline), "little")
    if size < 1 or size > wire.MAX_FRAME:
        raise ValueError("bad frame")
    payload = _recv_exact(sock, size, deadline)
    return payload[:1], payload[1:]


def _recv_exact(sock: "_socket.socket", size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError()
        sock.settimeout(left)
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("daemon closed the connection")
        data += chunk
    return data


def in_process() -> "ModuleType":
    """The package beyond the standard library (``IN_PROCESS``), loaded only when this call runs here."""
    return __import__(IN_PROCESS, fromlist=["run"])


def run_in_process(command: str, argv: list[str], env: dict[str, str], deadline: float, venv: str | None) -> int:
    """Run the command here, bounded by *deadline*; *venv* holds the libraries (None: already on sys.path)."""
    if venv is not None:
        site = venv_site_packages(venv)
        if site is None:
            return report(argv, env, python_mismatch(command, venv))
        if site not in sys.path:
            sys.path.append(site)
    return in_process().run(command, argv, env, deadline)


def _this_python() -> str:
    return f"python{sys.version_info[0]}.{sys.version_info[1]}"


def venv_site_packages(venv: str) -> str | None:
    """The venv's site-packages for this Python, or None if the venv was built for another one."""
    site = os.path.join(venv, "lib", _this_python(), "site-packages")
    return site if os.path.isdir(site) else None


def python_mismatch(command: str, venv: str) -> str:
    """What is wrong when the venv's libraries cannot be loaded by this Python, and what to run."""
    try:
        built = sorted(n for n in os.listdir(os.path.join(venv, "lib")) if n.startswith("python"))
    except OSError:
        built = []
    have = ", ".join(built) or "no Python (missing or broken)"
    return (f"{command}: cannot run in-process and hotplugd did not run it: the venv {venv} was built "
            f"for {have}, this is {_this_python()} ({sys.executable}). "
            f"Run 'xenscripts install' again (it rebuilds the venv), or start xenscripts-hotplugd")


def report(argv: list[str], env: dict[str, str], message: str) -> int:
    """Report a failure of this call without running it: hotplug-error (vif scripts), logs, stderr."""
    return in_process().report(argv, env, message)


def client_settings(env: dict[str, str]) -> tuple[str, float]:
    """The daemon's socket and the call's time budget: conf file, ``XENSCRIPTS_*`` for tests."""
    from ..core.conf import KEYS, ConfigError, load_config, setting

    conf = load_config(env)
    timeout = setting(env, conf, "client_timeout", str(DEFAULT_TIMEOUT))
    try:
        KEYS["client_timeout"].check(timeout)
    except ValueError as e:
        raise ConfigError(f"bad value {timeout!r} for client_timeout: {e}") from None
    return setting(env, conf, "socket", wire.DEFAULT_SOCKET), float(timeout)


def call(command: str, argv: list[str], env: dict[str, str], venv: str | None = None) -> int:
    """One libxl call of *command*: through the daemon if it starts it, else here; the exit status."""
    from ..core.errors import HotplugError

    start = time.monotonic()
    handoff = env.pop(HANDOFF, "").split(" ", 2)  # what xenscripts-launch already did with hotplugd
    os.environ.pop(HANDOFF, None)
    if any(a in ("--help", "-h", "--version") for a in argv[1:]):  # usage or version, here: nothing runs
        return in_process().run(command, argv, env, None)
    try:
        path, budget = client_settings(env)
        if command == "vif-setup":
            command, argv = _vif_setup_target(argv, env)
    except HotplugError as e:
        return report(argv, env, str(e))
    deadline = float(handoff[1]) if len(handoff) > 1 else start + budget
    work_deadline = deadline - min(2.0, budget / 5)  # the work's own timeouts fire first, and say what
    words = " ".join([command, *argv[1:2]])
    if env.get("XENSCRIPTS_NO_DAEMON") != "1":
        answer_by = start + budget * ANSWER_SHARE
        start_by = max(answer_by, start + budget * START_SHARE)
        try:
            if handoff[0] == "timeout":
                raise DaemonTimeout()
            if handoff[0] == "busy":
                raise DaemonBusy(handoff[2] if len(handoff) > 2 else "hotplugd is busy")
            status = None if handoff[0] == "run" else forward(command, argv, env, path, answer_by, start_by,
                                                              work_deadline, deadline)
        except DaemonTimeout:
            return report(argv, env, f"{words}: timed out after {budget:g} s waiting for hotplugd "
                                     f"(socket {path}) to finish it (client_timeout)")
        except DaemonBusy as e:
            return report(argv, env, f"{words}: not run: {e} (socket {path}); not run in-process either, "
                                     "which would only add to the load")
        if status is not None:
            return status
        if work_deadline - time.monotonic() < min(IN_PROCESS_MIN, budget / 3):
            return report(argv, env, f"{words}: not run: hotplugd did not run it (socket {path}) and "
                                     f"too little of the {budget:g} s client_timeout is left to run it here")
    return run_in_process(command, argv, env, work_deadline, venv)


def _vif_setup_target(argv: list[str], env: dict[str, str]) -> tuple[str, list[str]]:
    """vif-setup's ``exec $script``: our command to forward, or the foreign program exec'd here."""
    command, args = in_process().vif_setup_target(argv, env)
    if command is None:
        sys.stdout.flush()
        try:
            os.execve(args[0], args, env)
        except OSError as e:  # as the shell's failed exec: a message, status 127, nothing written
            os.write(2, f"{os.path.basename(argv[0])}: cannot run {args[0]}: {e.strerror}\n".encode())
            os._exit(127)
    return command, args


def main(command: str, venv: str | None) -> None:
    """Entry point of the installed scripts (``bin/``): *venv* ``@VENV@`` means the checkout's."""
    if not sys.flags.no_site:  # a venv's own python (pip installed this file): its libraries are on sys.path
        venv = None
    elif venv is None or venv.startswith("@"):
        venv = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".venv")
    status = call(command, list(sys.argv), dict(os.environ), venv)
    sys.stdout.flush()
    os._exit(status)
