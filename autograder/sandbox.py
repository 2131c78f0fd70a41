"""Isolation for student kernels: a bubblewrap command line, per-kernel containment and rlimits.

A student's kernel runs inside ``bwrap`` as uid 60001 with no network (its own namespace, holding
only ``lo``, and no /etc/resolv.conf), no capabilities, no nested user namespaces (where bwrap has
``--disable-userns``), its own PID/IPC/UTS namespaces, a read-only view of the system and of the
Python environment, and one writable folder (its scratch). The repository is never mounted, and
``solutions`` and ``autograder`` are masked where an install put them in site-packages
(:meth:`Sandbox.verify_no_reference` proves it before a class is graded).

Memory, processes and CPU are capped by one containment per kernel, the best this host allows:

- ``v1``/``v2``: a cgroup of that version (:mod:`autograder.cgroups`);
- ``uid``: no writable cgroup but the grader is root: the kernel runs as its own host uid
  (60001 + slot) with RLIMIT_NPROC, RLIMIT_AS and a polled cap on its processes' memory;
- ``rlimits``: neither: per-process rlimits only.

CPU time, file size and core dumps are capped by rlimits everywhere. :attr:`Sandbox.isolation`
says exactly what is in force, so every report can state it.
"""

import atexit
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import pwd
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from autograder import cgroups

SANDBOX_UID = 60001  # the kernel's uid inside the sandbox
SANDBOX_GID = 60001
UID_BASE = 60001  # host uids of kernels in "uid" containment: UID_BASE + slot
UID_SLOTS = 1000
CGROUP_ROOT = Path("/sys/fs/cgroup")
HIDDEN_PACKAGES = ("solutions", "autograder")  # never importable in a kernel
CGROUPS_ENV = cgroups.CGROUPS_ENV
_UID_ENV = "DESCENT_KERNEL_UID"  # launcher -> prep stage: the host uid to switch to


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
    # How the limits are enforced, set by Sandbox ("v1", "v2", "uid", "rlimits"; "" = best cgroup)
    containment: str = dataclasses.field(default="", compare=False)


def _python_prefixes():
    """Folders holding the interpreter and its packages: mounted read-only in the sandbox."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent}
    resolved = sorted({p.resolve() for p in paths if p.exists()}, key=str)
    return [p for p in resolved if not any(q != p and q in p.parents for q in resolved)]


def _system_mounts():
    """Read-only binds of the system: /usr and the /lib, /bin symlinks as on the host.

    /etc/resolv.conf and /etc/hosts are left out: a name lookup has nowhere to go.
    """
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


def _site_folders(prefix):
    return sorted(
        p
        for pattern in ("lib*/python*/site-packages", "lib*/python*/dist-packages")
        for p in Path(prefix).glob(pattern)
        if p.is_dir()
    )


def _hidden_entries(site):
    """The entries of a site-packages folder that would make the reference importable."""
    names = set()
    for entry in os.listdir(site):
        stem = entry[:-3] if entry.endswith(".py") else entry
        if stem in HIDDEN_PACKAGES:
            names.add(entry)
    return names


def _reachable_by_others(path):
    """Can any uid read ``path``: every folder down to it searchable, the folder itself readable?"""
    path = Path(path)
    for folder in [*reversed(path.parents), path]:
        try:
            mode = folder.stat().st_mode
        except OSError:
            return False
        if not mode & 0o001:
            return False
    return bool(path.stat().st_mode & 0o004)


# -- cgroups: kept importable from here (the kernel creates one per start) ----------------------
class Cgroup:
    """The containment of one kernel: ``Cgroup(limits)`` picks it from ``limits.containment``.

    Every kind has the same methods: ``join_paths``, ``pids``, ``ran_out_of_memory``,
    ``reset_peak``, ``hit_memory_limit``, ``kill_all``, ``remove``.
    """

    def __new__(cls, limits, name=None):
        kind = limits.containment
        if kind == "uid":
            return UidSlot(limits)
        if kind in ("v1", "v2"):
            version, where = cgroups.available()
            if version != kind:
                raise OSError(f"cgroup {kind} is not usable here ({where})")
            return cgroups.create(limits, version, where, name)
        if kind == "":
            return cgroups.create(limits, name=name)
        raise OSError(f"containment {kind!r} has no per-kernel group")


def remove_stale_cgroups():
    """Remove groups left by a grader process that no longer runs (killed mid-grading)."""
    version, where = cgroups.choose()
    if version is not None:
        cgroups.remove_stale(version, where)


def cgroups_available():
    """Can a per-kernel cgroup (v1 or v2) be created here? False under ``DESCENT_CGROUPS=off``."""
    return cgroups.available()[0] is not None


# -- containment by host uid --------------------------------------------------------------------
def _lock_folder():
    folder = Path(tempfile.gettempdir()) / f"descent-uids-{os.geteuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.geteuid():
        raise OSError(f"{folder} is not a folder owned by this user")
    return folder


def _uid_in_use(uid):
    try:
        pwd.getpwuid(uid)
        return True  # a real account: never run a kernel as it
    except KeyError:
        return False


def processes_of(uid):
    """The pids of every process whose owner is ``uid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    found.append(int(name))
            except OSError:
                pass
    return found


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _anonymous_bytes(pid, page=PAGE_BYTES):
    """Resident memory of ``pid`` that is not file-backed (statm: resident - shared)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
        return max(0, int(fields[1]) - int(fields[2])) * page
    except (OSError, ValueError, IndexError):
        return 0


def _proportional_bytes(pid):
    """Anonymous memory of ``pid`` with pages shared after a fork split among the sharers (PSS):
    exact, but slower to read than statm, so read only to confirm a breach."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Pss_Anon", "Pss_Shmem", "Pss_File"):
            try:
                values[key] = int(rest.split()[0]) * 1024
            except (ValueError, IndexError):
                pass
    if "Pss_Anon" in values:
        return values["Pss_Anon"] + values.get("Pss_Shmem", 0)
    return values.get("Pss", 0) - values.get("Pss_File", 0)


class UidSlot:
    """A host uid for one kernel (no cgroup): UID_BASE + the first slot no other kernel holds.

    The slot is held by a lock file for the kernel's life (released if the grader dies), so
    graders on one host never share a uid; RLIMIT_NPROC then counts this kernel's processes
    alone. A thread sums the processes' anonymous resident memory every ``poll`` seconds and
    kills them all past ``limits.memory_bytes`` (best effort: a fast allocation may overshoot
    by what it gets in one interval; RLIMIT_AS bounds each process too).
    """

    version = "uid"
    controllers = ""

    def __init__(self, limits, poll=0.2, base=UID_BASE, slots=UID_SLOTS):
        self.limits = limits
        self.dirs = {}
        self.uid = self._lock = None
        folder = _lock_folder()
        for uid in range(base, base + slots):
            if _uid_in_use(uid):
                continue
            fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._lock = uid, fd
            break
        if self.uid is None:
            raise OSError(f"all {slots} kernel uids from {base} are in use")
        self.gid = self.uid
        self.kill_all()  # left by a grader that died while holding this slot
        self._oom = False
        self._peak = 0
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watchdog, args=(poll,), daemon=True)
        self._watch.start()

    def _watchdog(self, poll):
        while not self._stop.wait(poll):
            pids = processes_of(self.uid)
            used = sum(_anonymous_bytes(p) for p in pids)
            if used >= self.limits.memory_bytes:  # fork children share pages: confirm
                used = sum(_proportional_bytes(p) for p in pids)
            self._peak = max(self._peak, used)
            if used >= self.limits.memory_bytes:
                self._oom = True
                self.kill_all()

    def join_paths(self):
        return []

    def pids(self):
        return processes_of(self.uid) if self.uid is not None else []

    def ran_out_of_memory(self):
        return self._oom

    def reset_peak(self):
        self._peak = 0

    def hit_memory_limit(self, fraction=0.95):
        return self._oom or self._peak >= fraction * self.limits.memory_bytes

    def kill_all(self, rounds=100):
        return cgroups._kill_until_empty(self.pids, rounds)

    def remove(self):
        if self._lock is None:
            return
        self._stop.set()
        self.kill_all()
        os.close(self._lock)
        self._lock = None


# -- bubblewrap ---------------------------------------------------------------------------------
@functools.cache
def bwrap_supports(option):
    """Does the installed bwrap list ``option`` in its --help (e.g. ``--disable-userns``)?"""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in done.stdout + done.stderr


@functools.cache
def bwrap_available():
    """Can we start a bubblewrap sandbox here (binary present, namespaces allowed)?"""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    return Sandbox(bwrap=exe, cgroups=False)._probe("pass").returncode == 0


@functools.cache
def _uid_containment_works():
    """Does a kernel start as a host uid of its own here (root, unprivileged bwrap allowed)?"""
    if os.geteuid() != 0 or not bwrap_available():
        return False
    probe = Sandbox(bwrap=shutil.which("bwrap"), containment="uid")
    done = probe._probe("import os; print(os.getuid())")
    return done.returncode == 0 and done.stdout.strip() == str(SANDBOX_UID)


@functools.cache
def _neutral_folder():
    """Empty folders (one per Python prefix) where a kernel's private mount namespace binds a
    prefix no other uid could reach (a venv under /root): bwrap, run as the kernel's uid, binds
    it from there."""
    folder = Path(tempfile.mkdtemp(prefix="descent-prefixes-"))
    folder.chmod(0o755)
    atexit.register(_remove_empty_tree, folder)
    return folder


def _remove_empty_tree(folder):
    """Remove the neutral folders at exit (they only ever serve as mount points, so are empty)."""
    for child in Path(folder).iterdir():
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        Path(folder).rmdir()


_REFERENCE_PROBE = """
import importlib, json, os, sys
found = {}
for name in ("solutions", "autograder.questions"):
    try:
        importlib.import_module(name)
        found[name] = "importable"
    except BaseException:
        pass
for path in sys.argv[1:]:
    if os.path.exists(path):
        found[path] = "visible"
print(json.dumps(found))
"""


class ReferenceVisible(RuntimeError):
    """The reference solutions or the question files can be reached from inside the sandbox."""


class Sandbox:
    """How kernels are wrapped and limited. ``Sandbox.detect()`` uses whatever works here."""

    def __init__(self, bwrap=None, cgroups=True, limits=None, containment=None):
        self.bwrap = bwrap
        if containment is None:
            containment = "" if cgroups else "rlimits"
        self.containment = containment
        self.limits = dataclasses.replace(limits or Limits(), containment=containment)

    @classmethod
    def detect(cls, limits=None):
        """The strongest isolation this host allows (``DESCENT_CGROUPS=off``: no cgroups)."""
        exe = shutil.which("bwrap") if bwrap_available() else None
        version, _ = cgroups.available()
        if version is not None:
            containment = version
        elif exe and _uid_containment_works():
            containment = "uid"
        else:
            containment = "rlimits"
        return cls(bwrap=exe, limits=limits, containment=containment)

    @classmethod
    def off(cls, limits=None):
        """No bubblewrap, no cgroups: rlimits only (for development and machines without them)."""
        return cls(bwrap=None, limits=limits, containment="rlimits")

    @property
    def cgroups(self):
        """Does each kernel get a containment object (a cgroup, or a uid slot)?"""
        return self.containment in ("", "v1", "v2", "uid")

    @property
    def isolated(self):
        return bool(self.bwrap) and self.containment in ("", "v1", "v2", "uid")

    def _limits_in_force(self):
        kind = self.containment
        if kind in ("", "v1", "v2"):
            version, where = cgroups.available()
            if version is None:
                return f"no cgroup ({where}): memory and process count are not limited"
            if version == "v1":
                return "cgroup v1 " + "/".join(c for c in cgroups.V1_CONTROLLERS if c in where)
            has_cpu = "cpu" in cgroups._v2_enabled(where)
            return "cgroup v2 memory/pids" + ("/cpu" if has_cpu else "")
        if kind == "uid":
            return (
                f"per-kernel uid ({UID_BASE} + slot) with process and address-space rlimits "
                "and a polled memory cap, no memory cgroup"
            )
        if os.geteuid() != 0:
            return (
                f"process and address-space rlimits (shared uid {os.geteuid()}), no memory cgroup"
            )
        return "address-space rlimit only (root: no process cap), no memory cgroup"

    @property
    def isolation(self):
        """One line for the top of every report: what is in force for each kernel."""
        limits = self._limits_in_force()
        if not self.bwrap:
            return (
                "ISOLATION OFF: no bubblewrap: student code could read the grader's files and "
                f"network; {limits}"
            )
        extra = "; no nested user namespaces" if bwrap_supports("--disable-userns") else ""
        return f"bubblewrap; {limits}{extra}"

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

    def _prefix_sources(self):
        """(host path to bind from, path inside) for each Python prefix; in "uid" containment a
        prefix other uids cannot reach is bound from a neutral folder (see _PREP)."""
        pairs = []
        for i, prefix in enumerate(_python_prefixes()):
            if self.containment == "uid" and not _reachable_by_others(prefix):
                neutral = _neutral_folder() / str(i)
                neutral.mkdir(mode=0o755, exist_ok=True)
                pairs.append((str(neutral), str(prefix), True))
            else:
                pairs.append((str(prefix), str(prefix), False))
        return pairs

    def _python_mounts(self, pairs):
        """Binds of the prefixes, with solutions/ and autograder/ masked out of site-packages:
        such a folder becomes an empty tmpfs into which every other entry is bound again."""
        args = []
        for source, inside, _ in pairs:
            args += ["--ro-bind", source, inside]
        for source, inside, _ in pairs:
            for site in _site_folders(inside):
                hidden = _hidden_entries(site)
                if not hidden:
                    continue
                rel = site.relative_to(inside)
                args += ["--tmpfs", str(site)]
                for entry in sorted(set(os.listdir(site)) - hidden):
                    args += ["--ro-bind", str(Path(source) / rel / entry), str(site / entry)]
                args += ["--remount-ro", str(site)]
        return args

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
        ]
        if bwrap_supports("--disable-userns"):  # no user namespaces inside (bwrap 0.8+)
            cmd.append("--disable-userns")
        cmd += [
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--hostname",
            "sandbox",
        ]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # before binds below them
        cmd += _system_mounts()
        pairs = self._prefix_sources()
        cmd += self._python_mounts(pairs)
        for path in extra_ro:
            cmd += ["--ro-bind", str(path[0]), str(path[1])]
        for device in sorted(Path("/dev").glob("nvidia*")):  # CUDA, where the host has it
            cmd += ["--dev-bind", str(device), str(device)]
        if readonly != scratch:
            cmd += ["--ro-bind", str(readonly), str(readonly)]
        cmd += ["--bind", str(scratch), str(scratch), "--remount-ro", "/", "--chdir", "/tmp"]
        for key, value in self.env("/tmp").items():
            cmd += ["--setenv", key, value]
        cmd += ["--"] + list(argv)
        if self.containment != "uid":
            return cmd
        prep = {
            "binds": [[inside, source] for source, inside, neutral in pairs if neutral],
            "own": [str(scratch)],
            "share": [str(readonly)] if readonly != scratch else [],
            "tmp": tempfile.gettempdir(),
        }
        return [sys.executable, "-I", "-S", "-c", _PREP, json.dumps(prep)] + cmd

    def rlimits(self, cgroup):
        """(name, value) pairs for ``resource.setrlimit``, soft = hard."""
        limits = self.limits
        pairs = [
            ("RLIMIT_CPU", limits.cpu_seconds),
            ("RLIMIT_FSIZE", limits.file_bytes),
            ("RLIMIT_CORE", 0),
        ]
        if cgroup is not None and not isinstance(cgroup, UidSlot):
            # The cgroup caps memory; the grader's own lower RLIMIT_AS (limit_grader_memory)
            # must not reach the kernel, so the kernel gets the inherited hard limit back.
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            pairs.append(("RLIMIT_AS", hard))
        if cgroup is None or isinstance(cgroup, UidSlot):
            # without cgroups: an address-space cap per process and a process cap (weaker)
            pairs.append(("RLIMIT_AS", max(limits.memory_bytes * 4, 8 * 2**30)))  # torch maps a lot
            pairs.append(("RLIMIT_NOFILE", 4096))
            if isinstance(cgroup, UidSlot) or os.getuid() != 0:  # root ignores RLIMIT_NPROC
                pairs.append(("RLIMIT_NPROC", limits.pids))
        return pairs

    def launcher(self, cgroup):
        """A command prefix that joins ``cgroup``, sets the rlimits, then execs the rest.

        (A small exec'd launcher rather than Popen's preexec_fn, which is unsafe when the grader
        starts kernels from several threads.) With a :class:`UidSlot` the next stage (the prep
        stage of :meth:`wrap`) switches to its uid.
        """
        config = {
            "cgroups": cgroup.join_paths() if cgroup is not None else [],
            "rlimits": self.rlimits(cgroup),
            "uid": cgroup.uid if isinstance(cgroup, UidSlot) else None,
        }
        return [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(config)]

    # -- probes ----------------------------------------------------------------------------
    def _probe(self, code, args=(), timeout=60):
        """Run ``python -c code`` as a kernel would run (same wrapping and containment)."""
        scratch = tempfile.mkdtemp(prefix="descent-probe-")
        group = None
        try:
            if self.cgroups:
                group = Cgroup(self.limits)
            cmd = self.launcher(group) + self.wrap(
                [sys.executable, "-c", code, *args], scratch, scratch
            )
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            return subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env if self.bwrap else self.env(scratch),
                cwd=scratch,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess([], 1, "", str(exc))
        finally:
            if group is not None:
                group.remove()
            shutil.rmtree(scratch, ignore_errors=True)

    def verify_no_reference(self):
        """Prove that a kernel can import neither ``solutions`` nor ``autograder.questions`` nor
        see their folders; raise :class:`ReferenceVisible` otherwise. Returns a short line.

        Without bubblewrap nothing is hidden (isolation is off and every report says so), so
        there is nothing to prove.
        """
        if not self.bwrap:
            return "not checked: no bubblewrap (isolation off)"
        folders = []
        for name in ("solutions", "autograder.questions"):
            try:
                import importlib.util

                spec = importlib.util.find_spec(name)
            except ImportError:
                spec = None
            if spec is not None and spec.submodule_search_locations:
                folders += list(spec.submodule_search_locations)
        done = self._probe(_REFERENCE_PROBE, folders)
        try:
            found = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise ReferenceVisible(
                "could not run the check that the reference solutions are hidden from the "
                f"sandbox (exit {done.returncode}): {done.stderr.strip()[-500:]}"
            ) from None
        if found:
            what = ", ".join(f"{k} is {v}" for k, v in sorted(found.items()))
            raise ReferenceVisible(
                f"the reference is reachable inside the sandbox ({what}); refusing to grade. "
                "Install the grader so that solutions/ and autograder/ are not in a folder the "
                "sandbox mounts, or report this as a bug."
            )
        return "solutions and autograder.questions are not importable in the sandbox"


# Runs on the host as the grader, single-threaded, right before the kernel's command.
_LAUNCHER = """
import json, os, resource, sys
config = json.loads(sys.argv[1])
for path in config["cgroups"]:
    with open(path, "w") as f:
        f.write(str(os.getpid()))
for name, value in config["rlimits"]:
    resource.setrlimit(getattr(resource, name), (value, value))
if config["uid"] is not None:
    os.environ["DESCENT_KERNEL_UID"] = str(config["uid"])
os.execv(sys.argv[2], sys.argv[2:])
"""

# "uid" containment, still as root on the host: a private mount namespace binds the prefixes other
# uids cannot reach at neutral folders, the kernel's folders are handed to its uid (scratch owned,
# read-only folder group-readable), then every id is switched to that uid and bwrap is exec'd.
# Fails closed: without a uid it does not run the kernel at all.
_PREP = """
import ctypes, json, os, stat, sys
config = json.loads(sys.argv[1])
uid = int(os.environ.pop("DESCENT_KERNEL_UID", "0"))
if uid <= 0:
    sys.exit("descent prep: no kernel uid given; not starting the kernel")
if config["binds"]:
    libc = ctypes.CDLL(None, use_errno=True)
    MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
    if libc.unshare(0x00020000) != 0:
        sys.exit(f"descent prep: unshare(CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())}")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        sys.exit(f"descent prep: making mounts private failed: {os.strerror(ctypes.get_errno())}")
    for source, target in config["binds"]:
        if libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None) != 0:
            err = os.strerror(ctypes.get_errno())
            sys.exit(f"descent prep: bind {source} -> {target} failed: {err}")
tmp = os.path.realpath(config["tmp"])
def reach(path):
    # every folder above a kernel folder must be searchable; only the grader's own temporary
    # folders (mode 0700 from mkdtemp) are opened, to search (x) only
    parent = os.path.dirname(os.path.realpath(path))
    while parent.startswith(tmp + os.sep):
        mode = os.stat(parent).st_mode
        if not mode & 0o001:
            os.chmod(parent, stat.S_IMODE(mode) | 0o001)
        parent = os.path.dirname(parent)
for path in config["own"]:
    reach(path)
    os.chown(path, uid, uid)
    os.chmod(path, 0o700)
for path in config["share"]:
    reach(path)
    for top, dirs, files in os.walk(path):
        os.chown(top, -1, uid)
        os.chmod(top, 0o2750)
        for name in files:
            full = os.path.join(top, name)
            os.chown(full, -1, uid, follow_symlinks=False)
            if not os.path.islink(full):
                os.chmod(full, stat.S_IMODE(os.lstat(full).st_mode) | 0o040)
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
os.execv(sys.argv[2], sys.argv[2:])
"""
