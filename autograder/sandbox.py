"""Isolation for student kernels: a bubblewrap command line, cgroup limits and rlimits.

A student's kernel runs inside ``bwrap`` as uid 60001 with no network, no capabilities, its own
PID/IPC/UTS namespaces, a read-only view of the system and of the Python environment, and one
writable folder (its scratch). The repository is never mounted, so ``solutions/`` and
``autograder/questions/`` are invisible, and so are other students' submissions and the results.
Memory and the number of processes are capped by a per-kernel cgroup (v1), CPU time, file size
and core dumps by rlimits. Where bubblewrap or cgroups are missing, kernels still run, with the
rlimits, and :attr:`Sandbox.isolation` says what is off so every report can state it.
"""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 60001
SANDBOX_GID = 60001
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    """Per-kernel limits (one kernel grades one submission)."""

    memory_bytes: int = 2 * 2**30  # a kernel with torch needs about 1.5 GB resident
    pids: int = 256  # processes and threads together (torch starts a few threads per core)
    cpu_seconds: int = 1800  # CPU time of the kernel process, all cells together
    cpus: float = 1.0  # CPU share (cgroup quota): one core per kernel, as with one worker per core
    file_bytes: int = 512 * 2**20  # largest file the kernel may write
    output_bytes: int = 64 * 2**10  # printed output kept per cell; the rest is discarded
    cell_timeout: float = 120.0  # wall time per notebook cell
    total_timeout: float = 900.0  # wall time for all the cells of one submission


def _python_prefixes():
    """Folders holding the interpreter and its packages: mounted read-only in the sandbox."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent}
    return sorted({p.resolve() for p in paths if p.exists()}, key=str)


def _system_mounts():
    """Read-only binds of the system: /usr and the /lib, /bin symlinks as on the host."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("lib", "lib64", "lib32", "bin", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ("ld.so.cache", "alternatives", "localtime", "nsswitch.conf", "ssl", "fonts"):
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


class Cgroup:
    """A cgroup v1 set (memory, pids, cpu) for one kernel; the kernel joins it before exec."""

    def __init__(self, limits, name=None):
        self.name = name or f"descent-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self.dirs = {}
        for controller in ("memory", "pids", "cpu"):
            base = _own_cgroup(controller)
            if base is None:
                if controller == "cpu":  # optional: a CPU cap is a courtesy to other kernels
                    continue
                self.remove()
                raise OSError(f"cgroup controller {controller} is not writable")
            path = base / self.name
            path.mkdir()
            self.dirs[controller] = path
        mem = self.dirs["memory"]
        _write(mem / "memory.limit_in_bytes", limits.memory_bytes)
        if (mem / "memory.memsw.limit_in_bytes").exists():
            try:  # memory + swap: no escape into swap
                _write(mem / "memory.memsw.limit_in_bytes", limits.memory_bytes)
            except OSError:
                pass
        _write(self.dirs["pids"] / "pids.max", limits.pids)
        if "cpu" in self.dirs and limits.cpus:
            try:
                period = int((self.dirs["cpu"] / "cpu.cfs_period_us").read_text())
                _write(self.dirs["cpu"] / "cpu.cfs_quota_us", int(period * limits.cpus))
            except (OSError, ValueError):
                pass
        self._oom_at_start = self.oom_kills()

    def join_paths(self):
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_kills(self):
        """How many times the kernel hit its memory limit (OOM kills, or failures to charge)."""
        mem = self.dirs["memory"]
        try:
            control = (mem / "memory.oom_control").read_text()
            for line in control.splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
            return int((mem / "memory.failcnt").read_text())
        except (OSError, ValueError):
            return 0

    def ran_out_of_memory(self):
        return self.oom_kills() > self._oom_at_start

    def reset_peak(self):
        """Forget the peak memory use (called before each piece of code the kernel runs)."""
        try:
            _write(self.dirs["memory"] / "memory.max_usage_in_bytes", 0)
        except OSError:
            pass

    def hit_memory_limit(self, fraction=0.95):
        """Did the group reach its limit since :meth:`reset_peak`? Reclaim can stall for many
        seconds before the OOM kill, so a timeout at the limit is reported as out of memory."""
        mem = self.dirs["memory"]
        try:
            peak = int((mem / "memory.max_usage_in_bytes").read_text())
            limit = int((mem / "memory.limit_in_bytes").read_text())
        except (OSError, ValueError):
            return False
        return self.ran_out_of_memory() or peak >= fraction * limit

    def pids(self):
        if "pids" not in self.dirs:
            return []
        try:
            return [int(p) for p in (self.dirs["pids"] / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self, rounds=50):
        """SIGKILL every process in the group until it is empty (a fork bomb keeps forking)."""
        for _ in range(rounds):
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        return not self.pids()

    def remove(self):
        self.kill_all()
        for path in self.dirs.values():
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _own_cgroup(controller):
    """This process's cgroup folder for ``controller`` (v1), if we may create groups in it."""
    root = CGROUP_ROOT / controller
    if not root.is_dir():
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                base = root / path.lstrip("/")
                return base if os.access(base, os.W_OK) else None
    except OSError:
        return None
    return None


def remove_stale_cgroups():
    """Remove groups left by a grader process that no longer runs (killed mid-grading)."""
    for controller in ("memory", "pids", "cpu"):
        base = _own_cgroup(controller)
        if base is None:
            continue
        for path in base.glob("descent-*-*"):
            try:
                owner = int(path.name.split("-")[1])
                os.kill(owner, 0)
                continue  # its grader is still running
            except ProcessLookupError:
                pass
            except (ValueError, PermissionError):
                continue
            stale = Cgroup.__new__(Cgroup)
            stale.dirs = {controller: path}
            if controller == "pids":
                stale.kill_all()
            stale.remove()


@functools.cache
def cgroups_available():
    try:
        Cgroup(Limits()).remove()
        return True
    except OSError:
        return False


@functools.cache
def bwrap_available():
    """Can we start a bubblewrap sandbox here (binary present, namespaces allowed)?"""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    probe = Sandbox(bwrap=exe, cgroups=False)
    scratch = tempfile.mkdtemp(prefix="descent-probe-")
    cmd = probe.wrap([sys.executable, "-c", "pass"], scratch, scratch)
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return done.returncode == 0


@functools.cache
def _remove_stale_once():
    remove_stale_cgroups()


class Sandbox:
    """How kernels are wrapped and limited. ``Sandbox.detect()`` uses whatever works here."""

    def __init__(self, bwrap=None, cgroups=True, limits=None):
        self.bwrap = bwrap
        self.cgroups = cgroups
        self.limits = limits or Limits()

    @classmethod
    def detect(cls, limits=None):
        exe = shutil.which("bwrap") if bwrap_available() else None
        cgroups = cgroups_available()
        if cgroups:
            _remove_stale_once()
        return cls(bwrap=exe, cgroups=cgroups, limits=limits)

    @classmethod
    def off(cls, limits=None):
        """No bubblewrap, no cgroups: rlimits only (for development and machines without them)."""
        return cls(bwrap=None, cgroups=False, limits=limits)

    @property
    def isolated(self):
        return bool(self.bwrap) and self.cgroups

    @property
    def isolation(self):
        """One line for the top of every report."""
        if self.isolated:
            return "isolation on: bubblewrap sandbox, memory and process limits by cgroup"
        missing = []
        if not self.bwrap:
            missing.append("no bubblewrap: student code could read the grader's files and network")
        if not self.cgroups:
            missing.append("no cgroups: memory and process count are not limited")
        return "ISOLATION OFF: " + "; ".join(missing)

    def env(self, home):
        """The kernel's whole environment (nothing from the grader's leaks in)."""
        bindir = str(Path(sys.executable).parent)
        return {
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": "/tmp" if self.bwrap else home,
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": f"{home}/.matplotlib",
            "IPYTHONDIR": f"{home}/.ipython",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # deterministic cuBLAS (read at CUDA start)
        }

    def wrap(self, argv, scratch, readonly, extra_ro=()):
        """``argv`` in bubblewrap: ``scratch`` writable, ``readonly`` not (same paths inside)."""
        if not self.bwrap:
            return list(argv)
        cmd = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_GID),
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--hostname",
            "sandbox",
        ]
        cmd += _system_mounts()
        for prefix in _python_prefixes():
            cmd += ["--ro-bind", str(prefix), str(prefix)]
        for path in extra_ro:
            cmd += ["--ro-bind", str(path[0]), str(path[1])]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for device in sorted(Path("/dev").glob("nvidia*")):  # CUDA, where the host has it
            cmd += ["--dev-bind", str(device), str(device)]
        if readonly != scratch:
            cmd += ["--ro-bind", str(readonly), str(readonly)]
        cmd += ["--bind", str(scratch), str(scratch), "--remount-ro", "/", "--chdir", "/tmp"]
        for key, value in self.env("/tmp").items():
            cmd += ["--setenv", key, value]
        return cmd + ["--"] + list(argv)

    def rlimits(self, cgroup):
        """(name, value) pairs for ``resource.setrlimit``, soft = hard."""
        limits = self.limits
        pairs = [
            ("RLIMIT_CPU", limits.cpu_seconds),
            ("RLIMIT_FSIZE", limits.file_bytes),
            ("RLIMIT_CORE", 0),
        ]
        if cgroup is None:  # without cgroups: an address-space cap and a process cap (weaker)
            pairs.append(("RLIMIT_AS", max(limits.memory_bytes * 4, 8 * 2**30)))  # torch maps a lot
            if os.getuid() != 0:
                pairs.append(("RLIMIT_NPROC", limits.pids))
        return pairs

    def launcher(self, cgroup):
        """A command prefix that joins ``cgroup``, sets the rlimits, then execs the rest.

        (A small exec'd launcher rather than Popen's preexec_fn, which is unsafe when the grader
        starts kernels from several threads.)
        """
        config = {
            "cgroups": cgroup.join_paths() if cgroup is not None else [],
            "rlimits": self.rlimits(cgroup),
        }
        return [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(config)]


_LAUNCHER = """
import json, os, resource, sys
config = json.loads(sys.argv[1])
for path in config["cgroups"]:
    with open(path, "w") as f:
        f.write(str(os.getpid()))
for name, value in config["rlimits"]:
    resource.setrlimit(getattr(resource, name), (value, value))
os.execv(sys.argv[2], sys.argv[2:])
"""
