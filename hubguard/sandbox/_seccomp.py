"""A seccomp filter for the trial child, built with libseccomp through ctypes.

The filter allows every system call by default and makes the dangerous ones fail with
``EPERM``: program execution, new processes (``clone`` without ``CLONE_THREAD``), sockets,
namespaces and mounts, tracing and other processes' memory, kernel modules and
``kexec``, BPF, ``io_uring`` (its operations bypass seccomp), file handles that skip
path checks, and signals sent to other processes. Failing with an error, not killing,
lets the Python code see ``PermissionError`` and the trial record what it attempted.

libseccomp is the system library (``libseccomp.so.2``, Debian package ``libseccomp2``);
the constants below are those of its ``seccomp.h`` (version 2.5). Threads stay possible,
because torch and Python create them with ``clone(CLONE_THREAD …)``. ``clone3`` fails with
``ENOSYS``, because its flags sit in memory that a filter cannot read, and glibc then falls
back to ``clone``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

_ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000
_CMP_NE = 1
_CMP_MASKED_EQ = 7
_CLONE_THREAD = 0x00010000

# Refused outright, with EPERM. Names the running kernel or libseccomp lacks are skipped.
REFUSED_SYSCALLS = (
    # running programs and creating processes
    "execve", "execveat", "fork", "vfork",
    # network
    "socket", "socketpair",
    # namespaces, mounts and the root folder
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd",
    "pidfd_open", "pidfd_send_signal", "tkill", "move_pages", "migrate_pages",
    # the kernel itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "bpf", "perf_event_open", "userfaultfd", "iopl", "ioperm",
    "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "quotactl", "quotactl_fd", "lookup_dcookie", "uselib", "vhangup",
    "keyctl", "add_key", "request_key", "personality",
    # paths that bypass permission checks, and I/O that bypasses this filter
    "name_to_handle_at", "open_by_handle_at", "io_uring_setup", "io_uring_enter",
    "io_uring_register",
)
# Signal calls whose first argument is the target process: refused unless it is this process.
_SIGNAL_SYSCALLS_BY_TARGET = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


@functools.cache
def _load_library() -> ctypes.CDLL | None:
    # The soname, not ctypes.util.find_library: that one runs ldconfig or gcc in a subprocess.
    # Cached, so a caller can load the library before Landlock hides the system folders.
    try:
        library = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        return None
    library.seccomp_init.restype = ctypes.c_void_p
    library.seccomp_init.argtypes = [ctypes.c_uint32]
    library.seccomp_release.argtypes = [ctypes.c_void_p]
    library.seccomp_load.argtypes = [ctypes.c_void_p]
    library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    library.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    return library


def available() -> bool:
    """Tell whether libseccomp can be loaded and the kernel supports seccomp filters."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            if not any(line.startswith("Seccomp:") for line in status):
                return False
    except OSError:
        return False
    return _load_library() is not None


def _add_rule(library: ctypes.CDLL, context: int, action: int, name: str, *conditions: _ArgCmp) -> bool:
    number = library.seccomp_syscall_resolve_name(name.encode())
    if number < 0:
        return False
    array = (_ArgCmp * max(len(conditions), 1))(*conditions)
    result = library.seccomp_rule_add_array(context, action, number, len(conditions), array)
    if result < 0:
        raise OSError(-result, f"seccomp_rule_add_array({name}) failed: {os.strerror(-result)}")
    return True


def install_filter(*, own_pid: int) -> list[str]:
    """Load the filter into the calling process; it holds for the rest of its life.

    The caller must have set ``PR_SET_NO_NEW_PRIVS`` (libseccomp also sets it by default).

    Args:
        own_pid: the process id that signals may still target.

    Returns:
        The names of the system calls the filter refuses, sorted.

    Raises:
        OSError: libseccomp is missing or the kernel refused the filter.
    """
    library = _load_library()
    if library is None:
        raise OSError(errno.ENOENT, "libseccomp.so.2 is not installed")
    context = library.seccomp_init(_ACT_ALLOW)
    if not context:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    refuse = _ACT_ERRNO | errno.EPERM
    refused: list[str] = []
    try:
        for name in REFUSED_SYSCALLS:
            if _add_rule(library, context, refuse, name):
                refused.append(name)
        # clone: only new threads of this process.
        if _add_rule(library, context, refuse, "clone", _ArgCmp(0, _CMP_MASKED_EQ, _CLONE_THREAD, 0)):
            refused.append("clone (without CLONE_THREAD)")
        if _add_rule(library, context, _ACT_ERRNO | errno.ENOSYS, "clone3"):
            refused.append("clone3")
        # libseccomp accepts one comparison per argument, so kill(0, …) is refused too.
        for name in _SIGNAL_SYSCALLS_BY_TARGET:
            if _add_rule(library, context, refuse, name, _ArgCmp(0, _CMP_NE, own_pid, 0)):
                refused.append(f"{name} (other processes)")
        result = library.seccomp_load(context)
        if result < 0:
            raise OSError(-result, f"seccomp_load failed: {os.strerror(-result)}")
    finally:
        library.seccomp_release(context)
    return sorted(refused)
