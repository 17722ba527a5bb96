"""Landlock through the raw Linux system calls (x86_64 and aarch64 share the numbers).

Landlock lets an unprivileged process restrict its own file-system and TCP access. Once
``landlock_restrict_self`` has run, the calling thread and every thread or process it
creates later can only reach the paths and ports the ruleset allows; the restriction can
never be lifted. Rights the kernel does not know (an older ABI) are dropped from the
ruleset, so the same code runs on every kernel from ABI 1 (Linux 5.13) on.

The kernel ABI documentation is ``Documentation/userspace-api/landlock.rst`` in the Linux
source tree; the constants below are the values of ``include/uapi/linux/landlock.h``.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterable
from pathlib import Path

# System call numbers; identical on x86_64 and aarch64 (the generic table).
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446

_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1

# File-system rights (ABI 1 unless noted).
ACCESS_EXECUTE = 1 << 0
ACCESS_WRITE_FILE = 1 << 1
ACCESS_READ_FILE = 1 << 2
ACCESS_READ_DIR = 1 << 3
ACCESS_REMOVE_DIR = 1 << 4
ACCESS_REMOVE_FILE = 1 << 5
ACCESS_MAKE_CHAR = 1 << 6
ACCESS_MAKE_DIR = 1 << 7
ACCESS_MAKE_REG = 1 << 8
ACCESS_MAKE_SOCK = 1 << 9
ACCESS_MAKE_FIFO = 1 << 10
ACCESS_MAKE_BLOCK = 1 << 11
ACCESS_MAKE_SYM = 1 << 12
ACCESS_REFER = 1 << 13  # ABI 2
ACCESS_TRUNCATE = 1 << 14  # ABI 3
ACCESS_IOCTL_DEV = 1 << 15  # ABI 5

# TCP rights (ABI 4): handled but never granted, so every bind and connect is refused.
ACCESS_NET_BIND_TCP = 1 << 0
ACCESS_NET_CONNECT_TCP = 1 << 1

# Scopes (ABI 6): no abstract UNIX socket connections and no signals leave the domain.
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

_FS_RIGHTS_BY_ABI = {
    1: (1 << 13) - 1,
    2: (1 << 14) - 1,
    3: (1 << 15) - 1,
    5: (1 << 16) - 1,
}
_FILE_ONLY_RIGHTS = ACCESS_EXECUTE | ACCESS_WRITE_FILE | ACCESS_READ_FILE | ACCESS_TRUNCATE | ACCESS_IOCTL_DEV

READ_RIGHTS = ACCESS_READ_FILE | ACCESS_READ_DIR
WRITE_RIGHTS = (
    READ_RIGHTS
    | ACCESS_WRITE_FILE
    | ACCESS_REMOVE_DIR
    | ACCESS_REMOVE_FILE
    | ACCESS_MAKE_DIR
    | ACCESS_MAKE_REG
    | ACCESS_TRUNCATE
)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel struct is __attribute__((packed)): 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *args: object) -> int:
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"Landlock system call {number} failed: {os.strerror(errno)}")
    return int(result)


def abi_version() -> int:
    """Return the Landlock ABI version of the running kernel, or 0 when Landlock is unavailable.

    0 covers a non-Linux system, an architecture other than x86_64 and aarch64, a kernel
    built without Landlock, and Landlock left out of the ``lsm=`` boot parameter.
    """
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "aarch64"}:
        return 0
    try:
        return _syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def _fs_rights(abi: int) -> int:
    return _FS_RIGHTS_BY_ABI[max(level for level in _FS_RIGHTS_BY_ABI if level <= abi)]


def _add_path_rule(ruleset_fd: int, path: Path, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not path.is_dir():
            rights &= _FILE_ONLY_RIGHTS
        attr = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        _syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset_fd), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(attr), ctypes.c_uint32(0))
    finally:
        os.close(fd)


def restrict_self(
    *,
    read_paths: Iterable[Path],
    write_paths: Iterable[Path],
    abi: int,
) -> dict[str, bool]:
    """Restrict the calling thread to reading ``read_paths`` and writing ``write_paths``.

    Every other file-system access the kernel's ABI can express is refused afterwards,
    as are TCP bind and connect (ABI 4) and signals or abstract UNIX sockets aimed outside
    the process (ABI 6). The caller must have set ``PR_SET_NO_NEW_PRIVS`` (or hold
    ``CAP_SYS_ADMIN``) and should be single-threaded: threads that already exist keep
    their old rights.

    Args:
        read_paths: folders or files the process may read (missing ones are skipped).
        write_paths: folders the process may read, create, change and delete files in.
        abi: the value :func:`abi_version` returned; must be at least 1.

    Returns:
        Which groups of rights the kernel enforces: ``filesystem``, ``tcp``, ``scopes``.

    Raises:
        OSError: a Landlock system call failed.
    """
    if abi < 1:
        raise OSError(0, "Landlock is not available on this kernel")
    fs_rights = _fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=fs_rights, handled_access_net=0, scoped=0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24

    ruleset_fd = _syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for path in read_paths:
            if path.exists():
                _add_path_rule(ruleset_fd, path, READ_RIGHTS & fs_rights)
        for path in write_paths:
            _add_path_rule(ruleset_fd, path, WRITE_RIGHTS & fs_rights)
        _syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
    finally:
        os.close(ruleset_fd)
    return {"filesystem": True, "tcp": abi >= 4, "scopes": abi >= 6}
