"""Starting and ending the jailed child: its work folder, environment, limits, and every process it leaves.

What a child gets (see :mod:`ebm_teach.grade.jail` for the steps it takes itself):

- its own temporary folder, with a copy of the submission, as its working and home folder;
- an environment scrubbed to what Python needs (``PATH``, locale, one CPU thread, a non-interactive
  plotting backend, no GPU): nothing of the instructor's environment, the grading seed included;
- hard limits (:class:`Limits`) on memory (address space), CPU seconds, file size and processes;
- as root, a user id of its own; on Linux with Landlock, file changes only inside its folder.

When a child ends, :func:`end_child` kills its process group, then every process below the grading process
that it did not start itself. The grading process makes itself a "child subreaper" (Linux ``prctl``), so a
process that the submission detached with ``setsid`` or a double fork is re-parented to the grader instead
of to init, and is found and killed. Elsewhere only the process group is killed.

This is a safeguard for coursework graded on a trusted machine, not a security boundary against a
determined attacker: the child can still read what the grading user can read. For hostile submissions, run
the grader inside a container or virtual machine that holds nothing else.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Set

__all__ = ["Limits", "Child", "start_child", "end_child", "make_workdir", "remove_workdir", "safeguards"]

JAIL = Path(__file__).with_name("jail.py")
PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder that holds ebm_teach/
UID_BASE = 2_139_095_040  # as root, the child runs as UID_BASE + the grading process's pid (no real user)
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Limits:
    """Resource limits of one child (hard limits: the learner's code cannot raise them).

    memory_mb: address space (torch alone maps ~0.7 GB). cpu_seconds: CPU time over the child's whole life
    (the wall-clock ``timeout`` of each step is separate). max_processes: processes and threads the child may
    add (as root exactly; otherwise on top of what the grading user already runs). max_file_mb: the largest
    file it may write. landlock: use Linux's Landlock where the kernel has it.
    """

    memory_mb: int = 4096
    cpu_seconds: int = 600
    max_processes: int = 64
    max_file_mb: int = 64
    landlock: bool = True

    def __post_init__(self):
        for name in ("memory_mb", "cpu_seconds", "max_processes", "max_file_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be an int >= 1; got {value!r}.")
        if self.memory_mb < 1024:
            raise ValueError(f"Limits.memory_mb must be at least 1024: importing torch alone needs about "
                             f"700 MB of address space; got {self.memory_mb}.")


def _set_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _user_tasks() -> int:
    """Processes and threads of this user now (what RLIMIT_NPROC counts); 0 where /proc is missing."""
    uid, count = os.getuid(), 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


def _readable_by_everyone(path) -> bool:
    """Whether any user can read ``path`` (every folder on the way searchable by others, the path readable)."""
    path = Path(path).resolve()
    try:
        for folder in path.parents:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return False
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def _python_readable_by_others() -> bool:
    """Whether a child under another user id can still run this Python, torch and this package."""
    import sysconfig

    paths = [Path(os.__file__).parent, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
             sys.executable, PACKAGE_PARENT / "ebm_teach", Path(torch_file()).parent]
    return all(_readable_by_everyone(p) for p in paths)


def torch_file() -> str:
    import torch

    return torch.__file__


def _switch_user() -> bool:
    return _is_root() and _python_readable_by_others()


def _pids_cgroup_root() -> Optional[Path]:
    """Where this process may create a cgroup with a process limit (cgroup v1 or v2), or None."""
    if not _is_root():
        return None
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists() and os.access(v1, os.W_OK):
        return v1
    v2 = Path("/sys/fs/cgroup")
    try:
        if "pids" in (v2 / "cgroup.controllers").read_text().split():
            if "pids" not in (v2 / "cgroup.subtree_control").read_text().split():
                (v2 / "cgroup.subtree_control").write_text("+pids")
            return v2
    except OSError:
        pass
    return None


_CGROUPS = 0


def _make_cgroup(limits: Limits) -> Optional[Path]:
    global _CGROUPS
    root = _pids_cgroup_root()
    if root is None:
        return None
    _CGROUPS += 1
    group = root / f"ebm-grade-{os.getpid()}-{_CGROUPS}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(limits.max_processes))
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        return None
    return group


def _empty_cgroup(group: Path) -> None:
    """Kill every process left in ``group`` (the pid limit keeps a fork bomb from outrunning this), remove it."""
    for _ in range(200):
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    for _ in range(100):
        try:
            group.rmdir()
            return
        except OSError:  # the last processes are still being reaped
            time.sleep(0.01)


def safeguards(limits: Limits) -> dict:
    """What protects the grader on this machine, as the report states it (the children confirm Landlock)."""
    linux = sys.platform.startswith("linux")
    if not _is_root():
        user = "the grader's user"
    elif _switch_user():
        user = "a user id of its own (the grader runs as root)"
    else:
        user = "root without capabilities (Python cannot be read by other users, so the user id stays 0)"
    cgroup = _pids_cgroup_root()
    if cgroup is not None:
        processes = f"counted exactly by a cgroup under {cgroup}"
    elif _is_root():
        processes = "counted exactly for its own user id" if _switch_user() else "NOT limited: no cgroup to use"
    else:
        processes = "counted on top of what the grading user already runs"
    return {
        "limits": asdict(limits),
        "user": user,
        "process count": processes,
        "descendants": ("process group + subreaper (processes that call setsid are found too)" if linux
                        else "process group only"),
        "landlock": "requested" if limits.landlock and linux else "off",
    }


def _child_env(workdir: str) -> dict:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "XDG_CACHE_HOME": workdir,
        "MPLCONFIGDIR": workdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
        "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2", "MPLBACKEND": "Agg", "EBM_TEACH_QUIET": "1", "EBM_TEACH_DEVICE": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
    }
    if os.environ.get("LD_LIBRARY_PATH"):  # some Python installs need it to find their own libraries
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    return env


def make_workdir(submission: Path) -> Path:
    """A fresh private folder holding a copy of the submission (owned by the child's user id when root)."""
    workdir = Path(tempfile.mkdtemp(prefix="ebm-grade-"))
    copy = workdir / submission.name
    shutil.copyfile(submission, copy)
    if _switch_user():
        uid = _child_uid()
        for path in (workdir, copy):
            os.chown(path, uid, uid)
    return workdir


def remove_workdir(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)


def _child_uid() -> int:
    return UID_BASE + os.getpid()


class Child(NamedTuple):
    """A started child: its process, the parent's pipe ends, and what end_child needs to clean up."""

    process: subprocess.Popen
    command_fd: int
    reply_fd: int
    keep: Set[int]
    cgroup: Optional[Path]


def start_child(workdir: Path, limits: Limits) -> Child:
    """Start the jailed child in ``workdir`` (see :mod:`ebm_teach.grade.jail`)."""
    _set_subreaper()
    keep = set(_children_of(os.getpid()))  # end_child leaves these alone
    command_r, command_w = os.pipe()
    reply_r, reply_w = os.pipe()
    switch = _switch_user()
    nproc = limits.max_processes if switch else _user_tasks() + limits.max_processes
    cgroup = _make_cgroup(limits)
    rlimits = {"RLIMIT_AS": limits.memory_mb * 2**20, "RLIMIT_CPU": (limits.cpu_seconds, limits.cpu_seconds + 1),
               "RLIMIT_FSIZE": limits.max_file_mb * 2**20, "RLIMIT_CORE": 0}
    if not _is_root() or switch:  # root's own user is exempt from RLIMIT_NPROC: the cgroup counts then
        rlimits["RLIMIT_NPROC"] = nproc
    config = {
        "workdir": str(workdir),
        "rlimits": rlimits,
        "uid": _child_uid() if switch else None,
        "cgroup": str(cgroup) if cgroup else None,
        "landlock": limits.landlock,
        "command_fd": command_r, "reply_fd": reply_w,
        "package_parent": str(PACKAGE_PARENT),
    }
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-B", str(JAIL), json.dumps(config)],
            cwd=workdir, env=_child_env(str(workdir)), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, pass_fds=(command_r, reply_w), start_new_session=True,
        )
    except BaseException:
        for fd in (command_w, reply_r):
            os.close(fd)
        if cgroup is not None:
            _empty_cgroup(cgroup)
        raise
    finally:
        os.close(command_r)
        os.close(reply_w)
    return Child(process, command_w, reply_r, keep, cgroup)


def _proc_table() -> Optional[dict]:
    """{pid: (ppid, state)} for every process, from /proc; None where there is no /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    table = {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        table[int(entry)] = (int(fields[1]), fields[0].decode())
    return table


def _children_of(pid: int) -> list:
    table = _proc_table() or {}
    return [p for p, (ppid, _) in table.items() if ppid == pid]


def end_child(child: Child) -> None:
    """Kill the child, its process group, its cgroup, and every process below the grader it did not have before."""
    process, keep = child.process, child.keep
    if child.cgroup is not None:
        _empty_cgroup(child.cgroup)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    me = os.getpid()
    for _ in range(200):
        table = _proc_table()
        if table is None:
            break
        children = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        below, frontier = set(), [me]
        while frontier:  # everything below the grader, except the processes it had before this child
            for pid in children.get(frontier.pop(), ()):
                if pid not in below and pid not in keep:
                    below.add(pid)
                    frontier.append(pid)
        live = [p for p in below if table[p][1] != "Z"]
        for pid in below:  # reap our own dead children (not the Popen child: Popen.wait does that)
            if table[pid][0] == me and table[pid][1] == "Z" and pid != process.pid:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        if not live:
            break
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    process.wait()
