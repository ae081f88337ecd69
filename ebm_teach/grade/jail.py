"""The first thing the grader's child process runs: limits and a jail, before any other code is imported.

The runner starts ``python -I -B jail.py CONFIG`` (this file as a script, so that neither the package nor
torch is imported before the jail is up; ``-I`` ignores the environment's ``PYTHON*`` variables and the
user's site-packages). CONFIG is JSON: the work folder, the resource limits, an optional user id to switch
to, the two pipe descriptors and the folder that holds ``ebm_teach``. In order, the child

1. moves into its own temporary work folder, and joins its own process-count cgroup when the runner made one
   (as root);
2. sets hard resource limits (address space, CPU seconds, file size, processes, no core dumps), which it
   cannot raise again;
3. when started as root, switches to an unprivileged user id of its own, or, where Python cannot be read by
   other users (e.g. installed under /root), stays root but drops every capability;
4. forbids itself new privileges (no setuid programs) and, on Linux with Landlock (kernel 5.13 or later),
   restricts itself so that it may create, change or delete files only inside its work folder, may not open
   TCP connections (Landlock ABI 4+) and may not signal processes outside its own sandbox (ABI 6+; tracing
   them is always denied);
5. imports :mod:`ebm_teach.grade.child` and answers the runner's requests.

What was applied is reported to the runner in the child's first message. Everything here is Linux-first;
on other systems the limits that exist are set and the rest is reported as unavailable.
"""
import ctypes
import json
import os
import resource
import sys

# Landlock (include/uapi/linux/landlock.h); the system call numbers are the same on every architecture.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_FS_WRITE_FILE, _FS_REMOVE_DIR, _FS_REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
_FS_MAKE = (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)  # char, dir, reg, sock, fifo, block, sym
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP, _PR_SET_SECUREBITS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 28, 47, 4
_SECURE_ALL_BITS = 0x2F  # noroot, no_setuid_fixup (both locked), keep_caps off and locked
_CAPABILITY_VERSION_3 = 0x20080522


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock(workdir: str) -> str:
    """Allow file changes only beneath ``workdir`` (and writes to /dev/null); deny TCP and outside signals.

    Returns a short description of what was applied, or why nothing was.
    """
    if not sys.platform.startswith("linux"):
        return "unavailable (not Linux)"
    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    if abi < 1:
        return f"unavailable ({os.strerror(ctypes.get_errno())}; Linux 5.13+ with Landlock enabled is needed)"
    fs = _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE
    fs |= _FS_REFER if abi >= 2 else 0
    fs |= _FS_TRUNCATE if abi >= 3 else 0
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"unavailable (creating the ruleset failed: {os.strerror(ctypes.get_errno())})"
    file_rights = _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    for path, rights in ((workdir, fs), ("/dev/null", file_rights)):
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        rule = _PathBeneathAttr(rights, fd)
        ok = syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                     ctypes.c_uint32(0))
        os.close(fd)
        if ok < 0:
            raise OSError(ctypes.get_errno(), f"landlock: cannot allow {path}")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)
    parts = ["writes only in the work folder"]
    parts += ["no TCP"] if net else []
    parts += ["no signals outside the sandbox"] if scoped else []
    return f"on (ABI {abi}: {', '.join(parts)})"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> str:
    """As root: empty the bounding, ambient, permitted and effective capability sets, lock root's privileges."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except OSError:
        last = 40
    libc.prctl(_PR_SET_SECUREBITS, _SECURE_ALL_BITS, 0, 0, 0)  # uid 0 no longer implies capabilities
    for cap in range(last + 1):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    return "root without capabilities"


_SHOWN = {"RLIMIT_AS": ("memory", 2**20, "MB"), "RLIMIT_CPU": ("CPU", 1, "s"), "RLIMIT_FSIZE": ("files", 2**20, "MB"),
          "RLIMIT_NPROC": ("processes", 1, ""), "RLIMIT_CORE": ("core dumps", 1, "")}


def _limits(rlimits: dict) -> str:
    """Set each limit (a number: soft = hard; a pair: soft, hard); describe what was set.

    The CPU limit comes as a pair one second apart, so that SIGXCPU (soft) says why before SIGKILL (hard).
    """
    applied = []
    for name, value in rlimits.items():
        label, unit, suffix = _SHOWN.get(name, (name, 1, ""))
        which = getattr(resource, name, None)
        if which is None:
            applied.append(f"{label} unavailable")
            continue
        soft, hard = value if isinstance(value, (list, tuple)) else (value, value)
        resource.setrlimit(which, (soft, hard))
        value = soft
        applied.append(f"{label} {value // unit}{(' ' + suffix) if suffix else ''}")
    return ", ".join(applied)


def main(config: dict) -> None:
    os.chdir(config["workdir"])
    os.umask(0o077)
    info = {}
    if config.get("cgroup"):
        with open(os.path.join(config["cgroup"], "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        info["cgroup"] = config["cgroup"]
    info["limits"] = _limits(config["rlimits"])
    uid = config.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        info["user"] = f"uid {uid}"
    elif os.geteuid() == 0:
        info["user"] = drop_capabilities()
    libc = ctypes.CDLL(None, use_errno=True)
    if sys.platform.startswith("linux") and libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    info["landlock"] = landlock(config["workdir"]) if config.get("landlock", True) else "off (--no-landlock)"
    sys.path.insert(0, config["package_parent"])
    from ebm_teach.grade import child  # only now: torch and the package load inside the jail

    child.serve(config["command_fd"], config["reply_fd"], info)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
