"""``python bot.py`` without paying for Python's start-up and the bot's imports every time a test starts one.

Half the suite's CPU went on the ~90 bot processes the crash, start-up and terminal tests run, each spending
about half a second importing discord.py, aiohttp, PyAV and numpy before doing anything. So one helper
process per test process (``python tests/warmstart.py``) imports those libraries once and then forks a child
for each start: the child sets up what ``exec`` would have given it (arguments, environment, working folder,
standard streams), then runs ``bot.py`` as ``__main__`` and leaves the way the interpreter would. The bot's own
modules are not preloaded, so each child imports and configures them afresh, as a new process does.

A child is a real process of its own: SIGKILL kills it with nothing cleaned up, its pid is its own, signals go
to it alone. Only its exit status comes by way of the helper, its parent. Where a fork could not stand in for
an exec (a ``preexec_fn``, or ``PYTHON*`` variables that change the interpreter), callers start it for real.

The helper speaks JSON lines: on its stdin ``{"id", "argv", "env", "cwd", "stdout", "stderr"}`` (paths),
on its stdout ``{"id", "pid"}`` once forked and ``{"pid", "status"}`` when that child has ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys

# Imported once here, shared by every child: the heavy libraries, none of this project's own modules.
PRELOAD = ("aiohttp", "aiosqlite", "av", "discord", "discord.app_commands", "discord.ext.commands", "dotenv", "numpy")


def _preload() -> bool:
    """Import the libraries; True when the helper is still one thread (forking a threaded process is unsafe)."""
    for name in PRELOAD:
        __import__(name)
    return len(os.listdir("/proc/self/task")) == 1


def _send(message: dict[str, object]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _child(request: dict[str, object]) -> None:
    """In the forked child: become ``python bot.py ARGS`` and never return to the helper's loop."""
    code = 1
    try:
        argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
        stdin = os.open(os.devnull, os.O_RDONLY)
        out = os.open(str(request["stdout"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        err = (
            out if request["stderr"] == request["stdout"] else os.open(str(request["stderr"]), os.O_WRONLY | os.O_CREAT)
        )
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in {stdin, out, err}:
            os.close(fd)
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})  # type: ignore[attr-defined]
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))  # as for ``python bot.py``: the script's folder
        code = _run_main(argv[0])
    finally:
        os._exit(code)


def _run_main(script: str) -> int:
    """Run ``script`` as ``__main__``, then end as the interpreter does: threads joined, atexit run, streams out."""
    import atexit
    import runpy
    import threading
    import traceback

    code, interrupted = 0, False
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as leaving:
        code = _exit_code(leaving.code)
    except BaseException as error:
        traceback.print_exc()
        code, interrupted = 1, isinstance(error, KeyboardInterrupt)
    shutdown = getattr(threading, "_shutdown", None)  # the interpreter's own join of non-daemon threads
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if interrupted:  # as the interpreter ends on an uncaught Ctrl-C: killed by SIGINT itself
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _exit_code(value: object) -> int:
    """What ``sys.exit(value)`` makes the exit status: None is 0, an int itself, anything else printed and 1."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def serve() -> None:
    """Fork on each request; report each child's pid, then its exit status once it has ended."""
    if not _preload():
        _send({"ready": False})
        return
    _send({"ready": True})
    pending = b""
    while True:
        readable, _, _ = select.select([0], [], [], 0.02)
        if readable:
            chunk = os.read(0, 65536)
            if not chunk:
                return  # the test process is gone: so is the helper (its children run on if any are left)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request)
                _send({"id": request["id"], "pid": pid})
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            _send({"pid": pid, "status": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve()
