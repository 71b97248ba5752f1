"""The process runtime's shim: the parent of one container process.

Run as `python -I -S _shim.py <spec.json>` by `ProcessRuntime.start_container`;
standard library only (no kpy import) so that it starts fast. It

1. double-forks, the middle process calling setsid(), so the shim is not a
   child of the agent and outlives it;
2. forks the container process, which starts its own session (its process
   group is its pid, the group `stop_container` signals), sets up its bind
   mounts in a mount namespace of its own, becomes the container's user
   (`identity`: no_new_privs, supplementary groups, gid, uid), changes
   to the working directory as that user, points stdout and stderr at the
   log file and execs the command;
3. reports on its stdout, as one JSON line, either the pids and start times
   (also written to the spec's `running_path` first, for a runtime that
   restarts) or why the container could not start, then closes stdout and
   stderr so the runtime's read ends;
4. waits for the container process, kills what is left of its process group
   (as a container's processes die with its first process), writes the exit
   record to `exit_path` atomically and exits.

Whether the exec succeeded is learnt from a close-on-exec pipe: an exec
that works closes it with nothing written; a failure writes its reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

TYPE_CHECKING = False  # not `from typing import ...`: the shim must start fast
if TYPE_CHECKING:
    from typing import Any, NoReturn

# From <linux/sched.h> and <sys/mount.h>.
CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_NO_NEW_PRIVS = 38  # <linux/prctl.h>

EXEC_FAILED_CODE = 127


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    if os.fork():
        return _wait_first_child()
    os.setsid()
    if os.fork():
        os._exit(0)
    _run_shim(spec)
    return 0


def _wait_first_child() -> int:
    _, status = os.wait()
    return os.waitstatus_to_exitcode(status)


def _run_shim(spec: dict[str, Any]) -> None:
    os.chdir("/")
    try:
        shim_log = os.open(spec["shim_log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        log_fd = _open_log(spec["log_path"])
    except OSError as e:
        _report({"error": f'open log file "{e.filename}": {e.strerror}'})
        return
    err_read, err_write = os.pipe()  # both close-on-exec
    pid = os.fork()
    if pid == 0:
        os.close(err_read)
        _become_container(spec, log_fd, err_write)
    os.close(err_write)
    os.close(log_fd)
    failure = _read_all(err_read)
    if failure:
        os.waitpid(pid, 0)
        _report({"error": failure.decode("utf-8", "replace")})
        return
    running = {
        "pid": pid,
        "pid_start_time": _start_time(pid),
        "shim_pid": os.getpid(),
        "shim_start_time": _start_time(os.getpid()),
        "started_at": time.time(),
    }
    _write_json_atomic(spec["running_path"], running)
    _report(running)
    # The runtime reads our stdout and stderr to EOF; from here on only
    # shim_log hears from us.
    os.dup2(shim_log, 1)
    os.dup2(shim_log, 2)
    _write_json_atomic(spec["exit_path"], _wait_container(pid))


def _open_log(path: str) -> int:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _become_container(spec: dict[str, Any], log_fd: int, err_write: int) -> NoReturn:
    """In the forked child: execs the container's command or exits."""
    argv0 = spec["argv"][0]
    try:
        os.setsid()
        if spec["mounts"]:
            _bind_mounts(spec["mounts"])
        _become(spec.get("identity") or {})
        if spec["cwd"]:
            _chdir(spec["cwd"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        # A container starts with every signal at its default, as under a
        # container runtime: an ignored signal stays ignored across exec (and
        # a shell cannot even trap it), and Python ignores SIGPIPE and
        # SIGXFSZ, while an agent started in the background (`kpy up &`)
        # inherits SIGINT and SIGQUIT ignored, which would make a pod's
        # SIGINT stop signal do nothing.
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.execvpe(argv0, spec["argv"], spec["env"])
    except OSError as e:
        _write_all(err_write, _exec_error(argv0, e).encode())
    except BaseException as e:
        _write_all(err_write, f"starting the container: {e!r}".encode())
    os._exit(EXEC_FAILED_CODE)


class _SetupError(OSError):
    """A failure before exec, with its message already phrased."""


def _exec_error(argv0: str, e: OSError) -> str:
    if isinstance(e, _SetupError):
        return str(e)
    if isinstance(e, FileNotFoundError):
        if "/" in argv0:
            return f'exec: "{argv0}": no such file or directory'
        return f'exec: "{argv0}": executable file not found in $PATH'
    if isinstance(e, PermissionError):
        return f'exec: "{argv0}": permission denied'
    return f'exec: "{argv0}": {e.strerror or e}'


def _chdir(path: str) -> None:
    try:
        os.chdir(path)
    except OSError as e:
        raise _SetupError(f'chdir to working directory "{path}": {e.strerror}') from e


def _bind_mounts(mounts: list[dict[str, Any]]) -> None:
    import ctypes  # only containers with mounts pay for it

    libc = ctypes.CDLL(None, use_errno=True)

    def call(what: str, result: int) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise _SetupError(f"{what}: {os.strerror(errno)}")

    call("unshare the mount namespace", libc.unshare(CLONE_NEWNS))
    # Without this our mounts would propagate back to the host's namespace.
    call("make / private", libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None))
    for m in mounts:
        host, target = m["host_path"], m["container_path"]
        _make_mount_point(host, target)
        what = f'bind-mount "{host}" at "{target}"'
        call(what, libc.mount(host.encode(), target.encode(), None, MS_BIND | MS_REC, None))
        if m["read_only"]:
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            call(f"{what} read-only", libc.mount(None, target.encode(), None, flags, None))


def _become(identity: dict[str, Any]) -> None:
    """Sets no_new_privs (first: it only affects exec, and the user may not
    read the modules that set it), then takes the container's groups, gid
    and uid (in that order: setuid gives up the right to change the others)."""
    if identity.get("no_new_privs"):
        import ctypes  # only containers that ask pay for it

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _SetupError(f"set no_new_privs: {os.strerror(ctypes.get_errno())}")
    if identity.get("uid") is not None:
        # os.execvpe imports it, and the user may not read Python's library.
        import warnings  # noqa: F401

    try:
        if identity.get("groups") is not None:
            os.setgroups(identity["groups"])
        if identity.get("gid") is not None:
            os.setgid(identity["gid"])
        if identity.get("uid") is not None:
            os.setuid(identity["uid"])
    except OSError as e:
        raise _SetupError(f"set the user and groups {identity}: {e.strerror}") from e


def _make_mount_point(host: str, target: str) -> None:
    try:
        if os.path.isdir(host) or not os.path.exists(host):
            os.makedirs(target, exist_ok=True)
        elif not os.path.exists(target):
            os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError as e:
        raise _SetupError(f'create mount point "{target}": {e.strerror}') from e


def _wait_container(pid: int) -> dict[str, Any]:
    # Wait without reaping first, so that the process group id cannot be
    # reused while we kill the rest of the group.
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    signum = -code if code < 0 else None
    return {
        "exit_code": 128 + signum if signum is not None else code,
        "signal": signum,
        "finished_at": time.time(),
    }


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (field 22 of
    /proc/<pid>/stat): with the pid, it names the process for good."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2 :].split()[19])


def _report(message: dict[str, Any]) -> None:
    # A runtime that died meanwhile must not take the container's exit
    # record with it: a failed report is not the shim's failure.
    with contextlib.suppress(OSError):
        _write_all(1, json.dumps(message).encode() + b"\n")


def _write_json_atomic(path: str, value: dict[str, Any]) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
