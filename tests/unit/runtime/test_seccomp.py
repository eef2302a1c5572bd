"""The default seccomp profile: its shape, and what it allows for given syscall arguments.

``_decide`` evaluates the profile the way libseccomp does on x86_64 (64-bit argument
comparisons, the rule's conditions ANDed, the default action when no rule matches), so the
argument filters can be checked without a kernel. tests/integration/runtime/
test_seccomp_kernel.py runs the same profile under crun.
"""

from __future__ import annotations

import errno
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.runtime import seccomp
from dockyard.runtime.seccomp import (
    CLONE_NAMESPACE_FLAGS,
    PERSONALITY_VALUES,
    PROFILE_NAME,
    allowed_syscalls,
    default_profile,
    denied_syscalls,
    profile_json,
)

# What Docker's default profile (moby profiles/seccomp/default.json, Engine 25 and later)
# allows to every container on x86_64, plus chroot, which it allows with CAP_SYS_CHROOT, a
# default capability. Our allowlist must stay inside this set.
_DOCKER_ALLOWS_EVERYONE = """
    accept accept4 access adjtimex alarm arch_prctl bind brk cachestat capget capset chdir
    chmod chown chown32 chroot clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
    clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range
    connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
    epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve
    execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
    fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64
    fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
    fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait
    futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
    geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid
    getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
    getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
    gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
    inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
    io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
    landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat
    listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
    map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
    mlock mlock2 mlockall mmap mmap2 modify_ldt mprotect mq_getsetattr mq_notify mq_open
    mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
    msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
    newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
    pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
    prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
    readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
    remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq
    rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
    rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
    sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
    sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
    sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop
    semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid
    setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
    setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
    setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address
    setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd
    signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64
    statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
    tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
    utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
"""
DOCKER_ALLOWS_EVERYONE = frozenset(_DOCKER_ALLOWS_EVERYONE.split())

# The calls the design promises never to allow (see the module docstring of seccomp.py).
_MUST_DENY = """
    unshare setns mount umount2 pivot_root keyctl add_key request_key bpf perf_event_open
    ptrace process_vm_readv process_vm_writev kexec_load kexec_file_load init_module
    finit_module delete_module open_by_handle_at name_to_handle_at userfaultfd acct swapon
    swapoff reboot settimeofday clock_settime stime quotactl lookup_dcookie iopl ioperm
    syslog vm86 vm86old mbind set_mempolicy move_pages migrate_pages fanotify_init fsopen
    fsconfig fsmount fspick move_mount open_tree mount_setattr io_uring_setup io_uring_enter
    io_uring_register sethostname setdomainname kcmp pidfd_getfd process_madvise
"""
MUST_DENY = frozenset(_MUST_DENY.split())

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET = 1, 2, 10, 16, 17
AF_ALG, AF_VSOCK, AF_KCM, AF_XDP, AF_MCTP = 38, 40, 41, 44, 45
SIGCHLD = 17
# What glibc passes for pthread_create when clone3 is unavailable.
CLONE_THREAD_FLAGS = 0x3D0F00
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (linux/sched.h).
NAMESPACE_FLAGS = (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)
ADDR_NO_RANDOMIZE = 0x0040000
READ_IMPLIES_EXEC = 0x0400000
U64 = (1 << 64) - 1


def _compare(cmp: dict[str, Any], args: tuple[int, ...]) -> bool:
    arg: int = args[cmp["index"]] & U64
    value: int = cmp["value"]
    value_two: int = cmp.get("valueTwo", 0)
    match cmp["op"]:
        case "SCMP_CMP_EQ":
            return arg == value
        case "SCMP_CMP_NE":
            return arg != value
        case "SCMP_CMP_MASKED_EQ":
            return arg & value == value_two
    raise AssertionError(f"operator not modelled: {cmp['op']}")


def _decide(profile: dict[str, Any], name: str, *args: int) -> tuple[str, int | None]:
    """(action, errno) the profile gives ``name(*args)``; args default to 0."""
    padded = (*args, *([0] * (6 - len(args))))
    for rule in profile["syscalls"]:
        if name in rule["names"] and all(_compare(c, padded) for c in rule.get("args", [])):
            return rule["action"], rule.get("errnoRet")
    return profile["defaultAction"], profile["defaultErrnoRet"]


def _allows(name: str, *args: int) -> bool:
    return _decide(default_profile(), name, *args)[0] == "SCMP_ACT_ALLOW"


def _names_with_action(action: str) -> set[str]:
    return {
        name
        for rule in default_profile()["syscalls"]
        if rule["action"] == action
        for name in rule["names"]
    }


def test_public_surface() -> None:
    assert set(seccomp.__all__) == {
        "ARCHITECTURES",
        "CLONE_NAMESPACE_FLAGS",
        "PERSONALITY_VALUES",
        "PROFILE_NAME",
        "allowed_syscalls",
        "default_profile",
        "denied_syscalls",
        "profile_json",
    }
    assert PROFILE_NAME == "dockyard-default"


def test_top_level_is_an_oci_seccomp_object() -> None:
    profile = default_profile()
    assert set(profile) == {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == errno.EPERM == 1
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_every_rule_is_well_formed() -> None:
    ops = {"SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_MASKED_EQ"}
    for rule in default_profile()["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}
        assert rule["names"]
        assert all(isinstance(n, str) and n for n in rule["names"])
        assert rule["action"] in {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"}
        assert ("errnoRet" in rule) == (rule["action"] == "SCMP_ACT_ERRNO")
        for cmp in rule.get("args", []):
            assert set(cmp) == {"index", "value", "valueTwo", "op"}
            assert 0 <= cmp["index"] <= 5
            assert cmp["op"] in ops
            assert 0 <= cmp["value"] <= U64
            assert 0 <= cmp["valueTwo"] <= U64


def test_unconditional_allowlist_is_one_sorted_rule_without_repeats() -> None:
    first = default_profile()["syscalls"][0]
    assert first["action"] == "SCMP_ACT_ALLOW"
    assert "args" not in first
    assert first["names"] == sorted(set(first["names"]))
    assert set(first["names"]) == allowed_syscalls()


def test_no_syscall_has_rules_with_different_actions() -> None:
    # libseccomp picks among overlapping rules of different actions by its own precedence;
    # keeping them disjoint makes _decide (first match) exact.
    assert not _names_with_action("SCMP_ACT_ALLOW") & _names_with_action("SCMP_ACT_ERRNO")


def test_unconditional_rules_and_conditional_rules_do_not_overlap() -> None:
    conditional = {n for r in default_profile()["syscalls"] if "args" in r for n in r["names"]}
    assert conditional == {"socket", "personality", "clone"}
    assert not conditional & allowed_syscalls()


def test_allowlist_is_no_wider_than_dockers_default() -> None:
    assert allowed_syscalls() <= DOCKER_ALLOWS_EVERYONE, sorted(
        allowed_syscalls() - DOCKER_ALLOWS_EVERYONE
    )


def test_allowlist_keeps_what_docker_allows_everyone_except_named_denials() -> None:
    # Anything Docker allows that we refuse must be a deliberate entry in denied_syscalls().
    missing = DOCKER_ALLOWS_EVERYONE - allowed_syscalls()
    assert missing <= denied_syscalls(), sorted(missing - denied_syscalls())


def test_denied_syscalls_are_never_allowed() -> None:
    assert denied_syscalls() >= MUST_DENY
    assert not denied_syscalls() & _names_with_action("SCMP_ACT_ALLOW")
    for name in sorted(denied_syscalls()):
        assert _decide(default_profile(), name) == ("SCMP_ACT_ERRNO", errno.EPERM), name


@pytest.mark.parametrize("name", ["fork", "execve", "openat", "read", "mmap", "futex", "chroot"])
def test_everyday_syscalls_are_allowed(name: str) -> None:
    assert _allows(name)


def test_unlisted_syscall_gets_eperm() -> None:
    assert _decide(default_profile(), "no_such_syscall") == ("SCMP_ACT_ERRNO", errno.EPERM)


def test_clone3_fails_with_enosys_so_libc_falls_back_to_clone() -> None:
    assert _decide(default_profile(), "clone3") == ("SCMP_ACT_ERRNO", errno.ENOSYS)


@pytest.mark.parametrize("flags", [SIGCHLD, CLONE_THREAD_FLAGS, 0, 0x80 | SIGCHLD])
def test_clone_without_namespace_flags_is_allowed(flags: int) -> None:
    assert _allows("clone", flags)


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS)
def test_clone_with_any_namespace_flag_is_denied(flag: int) -> None:
    assert not _allows("clone", flag | SIGCHLD)
    assert not _allows("clone", flag | CLONE_THREAD_FLAGS)


def test_clone_mask_is_dockers() -> None:
    assert CLONE_NAMESPACE_FLAGS == 0x7E020000 == sum(NAMESPACE_FLAGS)


@given(st.integers(min_value=0, max_value=U64))
def test_clone_is_allowed_exactly_without_namespace_flags(flags: int) -> None:
    assert _allows("clone", flags) == (flags & CLONE_NAMESPACE_FLAGS == 0)


@pytest.mark.parametrize("persona", PERSONALITY_VALUES)
def test_personality_values_docker_allows(persona: int) -> None:
    assert _allows("personality", persona)


@pytest.mark.parametrize(
    "persona",
    [ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, 0x8 | ADDR_NO_RANDOMIZE, 0x1, 1 << 32, 0x8 | 1 << 32],
)
def test_other_personalities_are_denied(persona: int) -> None:
    assert not _allows("personality", persona)


@pytest.mark.parametrize(
    "family", [0, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_ALG, AF_KCM, AF_XDP, 45]
)
def test_socket_families_are_allowed(family: int) -> None:
    assert _allows("socket", family)


def test_every_family_but_vsock_is_allowed() -> None:
    assert [f for f in range(46) if not _allows("socket", f)] == [AF_VSOCK]
    assert AF_MCTP == 45


@pytest.mark.parametrize("high", [0, 1 << 32, 0xFFFF_FFFF << 32, 1 << 63])
def test_vsock_is_denied_whatever_the_high_register_bits(high: int) -> None:
    # The kernel reads socket()'s family as an int; a NE 40 test on 64 bits would let
    # 0x1_0000_0028 through.
    assert not _allows("socket", high | AF_VSOCK)


@given(st.integers(min_value=0, max_value=U64))
def test_socket_decision_depends_only_on_the_low_32_bits(family: int) -> None:
    low = family & 0xFFFF_FFFF
    assert _allows("socket", family) == (low < 48 and low != AF_VSOCK)


def test_profile_is_a_fresh_copy_each_time() -> None:
    first = default_profile()
    first["syscalls"][0]["names"].append("ptrace")
    first["architectures"].clear()
    assert "ptrace" not in default_profile()["syscalls"][0]["names"]
    assert default_profile()["architectures"]
    assert "ptrace" not in allowed_syscalls()


def test_profile_json_is_compact_deterministic_and_round_trips() -> None:
    text = profile_json()
    assert text == profile_json()
    assert json.loads(text) == default_profile()
    assert ", " not in text
    assert ": " not in text
    assert "\n" not in text
    assert text.startswith('{"architectures":')
