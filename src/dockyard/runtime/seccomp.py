"""The seccomp filter every Dockyard container runs under.

:func:`default_profile` returns the OCI runtime-spec ``linux.seccomp`` object that goes into
each container's ``config.json``. It is written for crun 1.8.1 with libseccomp 2.5.4 on
x86_64 and is at least as strict as Docker's default profile for a container that never
holds CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_SYS_TIME, CAP_SYS_BOOT,
CAP_SYS_NICE, CAP_SYSLOG, CAP_SYS_RAWIO, CAP_SYS_PACCT, CAP_BPF or CAP_PERFMON
(:data:`dockyard.core.capabilities.NEVER_GRANTED`): every syscall it allows, Docker
allows to a container with its default capabilities too; the converse does not hold (see
:func:`denied_syscalls`).

Shape of the filter:

- anything not listed fails with EPERM, as in Docker, so programs see the same error they
  see there;
- a flat allowlist, grouped below by what the calls are for;
- a few calls allowed only with certain arguments (``socket``, ``personality``, ``clone``);
- ``clone3`` fails with ENOSYS: its flags sit in a struct that seccomp cannot read, and
  ENOSYS makes glibc (2.34+) fall back to ``clone``, whose flags it can.

Argument filters compare the 64-bit register values the kernel hands to seccomp, while the
kernel truncates ``int`` arguments to 32 bits. A rule such as Docker's ``socket`` with
"family != AF_VSOCK" can therefore be passed with ``AF_VSOCK | 1 << 32``. Every argument
filter here either masks to the low 32 bits or only allows exact values, so high bits can
only turn an allowed call into a denied one.

crun skips names its libseccomp cannot resolve. Debian 12's libseccomp (2.5.4-1+deb12u1)
knows syscalls up to Linux 6.7, so everything named here resolves on x86_64 (the ``*32``
and ``*_time64`` names only for the i386 ABI); syscalls added later (``mseal``,
``listmount``, ...) are not named and fail with EPERM, as they do under Docker.
"""

from __future__ import annotations

import errno
import json
from typing import Any, Final

__all__ = [
    "ARCHITECTURES",
    "CLONE_NAMESPACE_FLAGS",
    "PERSONALITY_VALUES",
    "PROFILE_NAME",
    "allowed_syscalls",
    "default_profile",
    "denied_syscalls",
    "profile_json",
]

PROFILE_NAME: Final = "dockyard-default"

ARCHITECTURES: Final = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")

# ---------------------------------------------------------------------------------------
# Allowed to every container, without conditions. Each group is a subset of what Docker's
# default profile allows to every container; 32-bit names (``*32``, ``*64``, ``_llseek``,
# ``*_time64``) are there for i386 binaries, which the X86 architecture above admits.
# ---------------------------------------------------------------------------------------

# Starting, ending and waiting for processes; process identity and limits.
_PROCESSES = (
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "getpgrp",
    "setpgid",
    "getsid",
    "setsid",
    "set_tid_address",
    "restart_syscall",
    "uname",
    "sysinfo",
    "times",
    "getrusage",
    "getrlimit",
    "setrlimit",
    "ugetrlimit",
    "prlimit64",
    "umask",
    "getrandom",
    # prctl covers PR_SET_NO_NEW_PRIVS, PR_SET_NAME and the like; the kernel checks
    # capabilities for the privileged options itself.
    "prctl",
    # Filters can only be added, never removed, so a nested filter cannot loosen this one.
    "seccomp",
    "capget",
    "capset",
    "rseq",
    # Landlock only ever restricts the caller.
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
)

# Signals, including pidfds for a process's own children.
_SIGNALS = (
    "kill",
    "tkill",
    "tgkill",
    "pidfd_open",
    "pidfd_send_signal",
    "process_mrelease",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "sigprocmask",
    "sigreturn",
    "signalfd",
    "signalfd4",
    "pause",
    "alarm",
)

# User and group ids: a userns root may switch among its mapped ids only.
_CREDENTIALS = (
    "getuid",
    "getuid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getegid",
    "getegid32",
    "getresuid",
    "getresuid32",
    "getresgid",
    "getresgid32",
    "getgroups",
    "getgroups32",
    "setuid",
    "setuid32",
    "setgid",
    "setgid32",
    "setreuid",
    "setreuid32",
    "setregid",
    "setregid32",
    "setresuid",
    "setresuid32",
    "setresgid",
    "setresgid32",
    "setfsuid",
    "setfsuid32",
    "setfsgid",
    "setfsgid32",
    "setgroups",
    "setgroups32",
)

# Address space. mlock* is bounded by RLIMIT_MEMLOCK without CAP_IPC_LOCK.
_MEMORY = (
    "brk",
    "mmap",
    "mmap2",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "mincore",
    "msync",
    "mlock",
    "mlock2",
    "mlockall",
    "munlock",
    "munlockall",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "remap_file_pages",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "map_shadow_stack",
    # x86 thread-local storage and segment setup (glibc, Wine, 32-bit binaries).
    "arch_prctl",
    "get_thread_area",
    "set_thread_area",
    "modify_ldt",
)

# Threads and their synchronisation.
_THREADS = (
    "futex",
    "futex_time64",
    "futex_waitv",
    "futex_wait",
    "futex_wake",
    "futex_requeue",
    "get_robust_list",
    "set_robust_list",
)

# CPU scheduling and I/O priority. Raising priority or choosing a real-time policy needs
# CAP_SYS_NICE, which no container has; the kernel refuses those, lowering is harmless.
_SCHEDULING = (
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getattr",
    "sched_setattr",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "getpriority",
    "setpriority",
    "ioprio_get",
    "ioprio_set",
    "getcpu",
)

# Reading and writing through file descriptors.
_FILE_IO = (
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "read",
    "readv",
    "pread64",
    "preadv",
    "preadv2",
    "write",
    "writev",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "lseek",
    "_llseek",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "fcntl64",
    "flock",
    "ioctl",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "fallocate",
    "fadvise64",
    "fadvise64_64",
    "readahead",
    "truncate",
    "truncate64",
    "ftruncate",
    "ftruncate64",
    "copy_file_range",
    "sendfile",
    "sendfile64",
    "splice",
    "tee",
    "vmsplice",
)

# Names, directories and inode metadata. Device nodes from mknod need CAP_MKNOD in the
# initial user namespace, so inside ours only fifos and sockets can be made.
_FILE_NAMES = (
    "stat",
    "stat64",
    "lstat",
    "lstat64",
    "fstat",
    "fstat64",
    "fstatat64",
    "newfstatat",
    "statx",
    "statfs",
    "statfs64",
    "fstatfs",
    "fstatfs64",
    "access",
    "faccessat",
    "faccessat2",
    "getcwd",
    "chdir",
    "fchdir",
    # CAP_SYS_CHROOT is one of Docker's default capabilities; chroot cannot leave the
    # mount namespace and blocks creating user namespaces from inside it.
    "chroot",
    "getdents",
    "getdents64",
    "mkdir",
    "mkdirat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "readlink",
    "readlinkat",
    "mknod",
    "mknodat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "chown32",
    "fchown",
    "fchown32",
    "fchownat",
    "lchown",
    "lchown32",
    "utime",
    "utimes",
    "utimensat",
    "utimensat_time64",
    "futimesat",
)

# Extended attributes; trusted.* and security.* still need capabilities the kernel checks.
_XATTRS = (
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
)

# Waiting for many descriptors, and descriptors that stand for events.
_EVENTS = (
    "poll",
    "ppoll",
    "ppoll_time64",
    "select",
    "_newselect",
    "pselect6",
    "pselect6_time64",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_wait",
    "epoll_wait_old",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    # Useless without a group from fanotify_init, which is denied.
    "fanotify_mark",
)

# Clocks and timers. adjtimex and clock_adjtime are here for reading the clock state, as
# in Docker: their mode lives in a struct seccomp cannot read, but any change needs
# CAP_SYS_TIME in the initial user namespace, so the kernel refuses it.
_TIME = (
    "time",
    "gettimeofday",
    "clock_gettime",
    "clock_gettime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "nanosleep",
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
)

# Sockets, apart from socket() itself (see _SOCKET_FAMILY_RULES). socketcall is the i386
# multiplexer; its arguments are in memory, so the AF_VSOCK rule cannot reach it there.
_NETWORK = (
    "socketpair",
    "socketcall",
    "bind",
    "connect",
    "listen",
    "accept",
    "accept4",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "send",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "recv",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "recvmmsg_time64",
    "shutdown",
)

# Pipes and System V / POSIX IPC, confined by the container's IPC namespace.
_IPC = (
    "pipe",
    "pipe2",
    "ipc",
    "msgget",
    "msgctl",
    "msgsnd",
    "msgrcv",
    "semget",
    "semctl",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmget",
    "shmctl",
    "shmat",
    "shmdt",
    "mq_open",
    "mq_unlink",
    "mq_getsetattr",
    "mq_notify",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_timedreceive",
    "mq_timedreceive_time64",
)

# Linux AIO (io_submit and friends). io_uring is not here: see _DENIED.
_ASYNC_IO = (
    "io_setup",
    "io_destroy",
    "io_submit",
    "io_cancel",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
)

_ALLOWED: Final = frozenset(
    _PROCESSES
    + _SIGNALS
    + _CREDENTIALS
    + _MEMORY
    + _THREADS
    + _SCHEDULING
    + _FILE_IO
    + _FILE_NAMES
    + _XATTRS
    + _EVENTS
    + _TIME
    + _NETWORK
    + _IPC
    + _ASYNC_IO
)

# ---------------------------------------------------------------------------------------
# Never allowed, whatever the arguments. The default action already refuses them; naming
# them lets the tests prove that no group above lets one back in. Docker allows some of
# these to every container (ptrace, process_vm_readv/writev, name_to_handle_at, cachestat,
# and io_uring_* before Engine 25); we do not.
# ---------------------------------------------------------------------------------------
_DENIED: Final = frozenset(
    {
        # Namespaces: a new user namespace hands its creator every capability inside it,
        # the entry point of many kernel exploits; setns could join a host namespace.
        "unshare",
        "setns",
        # Mounts, old and new API.
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "quotactl",
        "quotactl_fd",
        # Kernel keyrings are not namespaced.
        "add_key",
        "keyctl",
        "request_key",
        # Tracing and reading other processes (CAP_SYS_PTRACE in Docker).
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "process_madvise",
        "pidfd_getfd",
        "kcmp",
        # eBPF and performance counters (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN).
        "bpf",
        "perf_event_open",
        "lookup_dcookie",
        # Kernel modules and kexec.
        "init_module",
        "finit_module",
        "delete_module",
        "create_module",
        "query_module",
        "get_kernel_syms",
        "kexec_load",
        "kexec_file_load",
        # File handles bypass path-based access checks (the "shocker" escape).
        "open_by_handle_at",
        "name_to_handle_at",
        # userfaultfd stretches kernel race windows; a favourite exploitation aid.
        "userfaultfd",
        # Host administration.
        "acct",
        "swapon",
        "swapoff",
        "reboot",
        "syslog",
        "vhangup",
        "sethostname",
        "setdomainname",
        "settimeofday",
        "stime",
        "clock_settime",
        "clock_settime64",
        # Raw hardware access and legacy x86 modes.
        "iopl",
        "ioperm",
        "vm86",
        "vm86old",
        # NUMA placement (CAP_SYS_NICE in Docker).
        "mbind",
        "set_mempolicy",
        "set_mempolicy_home_node",
        "get_mempolicy",
        "migrate_pages",
        "move_pages",
        # fanotify groups can watch whole mounts.
        "fanotify_init",
        # io_uring runs file and network operations outside seccomp's sight and has been
        # a steady source of kernel escapes; Docker stopped allowing it in Engine 25.
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        # Page-cache residency of any readable file: a side channel across tenants that
        # share image layers.
        "cachestat",
        # Obsolete interfaces nobody should need.
        "uselib",
        "ustat",
        "sysfs",
        "_sysctl",
        "nfsservctl",
    }
)

# ---------------------------------------------------------------------------------------
# Allowed only with certain arguments.
# ---------------------------------------------------------------------------------------

_LOW_32_BITS = 0xFFFF_FFFF

# socket(family, ...): every address family but AF_VSOCK (40), which talks to the
# hypervisor. As (mask, value) pairs on the low 32 bits of the family, since the kernel
# ignores the high ones: 0-31, 32-39, 41, 42-43, 44-47 (AF_MAX is 46 in Linux 6.18).
_AF_VSOCK = 40
_SOCKET_FAMILY_RANGES = (
    (0xFFFF_FFE0, 0),
    (0xFFFF_FFF8, 32),
    (0xFFFF_FFFF, 41),
    (0xFFFF_FFFE, 42),
    (0xFFFF_FFFC, 44),
)

# personality(persona): only the values Docker allows: PER_LINUX, PER_LINUX32,
# UNAME26, PER_LINUX32|UNAME26, and 0xffffffff, which queries without changing anything.
# Others, ADDR_NO_RANDOMIZE above all, would weaken the process's own hardening.
PERSONALITY_VALUES: Final = (0x0, 0x8, 0x20000, 0x20008, 0xFFFF_FFFF)

# clone(flags, ...): threads and forks, but no new namespaces. flags is an unsigned long,
# so all 64 bits reach the kernel and a plain mask is exact.
CLONE_NAMESPACE_FLAGS: Final = (
    0x0002_0000  # CLONE_NEWNS
    | 0x0200_0000  # CLONE_NEWCGROUP
    | 0x0400_0000  # CLONE_NEWUTS
    | 0x0800_0000  # CLONE_NEWIPC
    | 0x1000_0000  # CLONE_NEWUSER
    | 0x2000_0000  # CLONE_NEWPID
    | 0x4000_0000  # CLONE_NEWNET
)


def _arg(index: int, op: str, value: int, value_two: int = 0) -> dict[str, Any]:
    """One OCI argument comparison; for SCMP_CMP_MASKED_EQ, ``value`` is the mask."""
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def _conditional_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [_arg(0, "SCMP_CMP_MASKED_EQ", mask, value)],
        }
        for mask, value in _SOCKET_FAMILY_RANGES
    ]
    rules += [
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [_arg(0, "SCMP_CMP_EQ", value)],
        }
        for value in PERSONALITY_VALUES
    ]
    rules.append(
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [_arg(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0)],
        }
    )
    rules.append(
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.ENOSYS,
        }
    )
    return rules


def default_profile() -> dict[str, Any]:
    """The ``linux.seccomp`` object for a container's ``config.json``.

    A fresh dict on every call, so callers may change their copy. Unconditional allows come
    first, sorted, then the argument-filtered rules in a fixed order, so the result (and
    :func:`profile_json`) is the same on every call and every host.
    """
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": list(ARCHITECTURES),
        "syscalls": [
            {"names": sorted(_ALLOWED), "action": "SCMP_ACT_ALLOW"},
            *_conditional_rules(),
        ],
    }


def profile_json() -> str:
    """:func:`default_profile` as compact JSON with sorted keys: stable for hashing and diffs."""
    return json.dumps(default_profile(), sort_keys=True, separators=(",", ":"))


def allowed_syscalls() -> frozenset[str]:
    """Syscalls allowed whatever their arguments (excludes the argument-filtered ones)."""
    return _ALLOWED


def denied_syscalls() -> frozenset[str]:
    """Syscalls the profile refuses whatever their arguments; disjoint from the allowlist."""
    return _DENIED
