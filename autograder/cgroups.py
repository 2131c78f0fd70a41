"""Per-kernel control groups: the host's cgroup layout (v1, v2, hybrid) and one group per kernel.

A kernel's group caps its memory (no swap), its number of processes and threads, and its CPU
share; the kernel joins it before it execs (see ``sandbox._LAUNCHER``), so everything it starts is
inside. Removing the group kills what is left. Which version is used depends on where the memory
and pids controllers are mounted: a v1 hierarchy each (older hosts, and hybrid hosts, whose v2
tree then has no memory controller), or the unified v2 tree. ``DESCENT_CGROUPS=off`` makes every
function here answer as on a host without writable cgroups.
"""

import errno
import functools
import os
import signal
import time
import types
import uuid
from pathlib import Path

CGROUPS_ENV = "DESCENT_CGROUPS"  # "off": behave as on a host without writable cgroups
PREFIX = "descent-"  # groups are named descent-<grader pid>-<random>
V2_LEAF = "descent.processes"  # where a cgroup-namespace root's own processes are moved (v2)
V1_CONTROLLERS = ("memory", "pids", "cpu")


def disabled():
    """Has ``DESCENT_CGROUPS=off`` (or 0/no/false) switched cgroups off?"""
    return os.environ.get(CGROUPS_ENV, "").strip().lower() in ("off", "0", "no", "false")


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _mkdir(path):
    """Create a group (cgroupfs fills it with its interface files)."""
    os.mkdir(path)


def _rmdir(path):
    """Remove a group (cgroupfs deletes a group's interface files with it)."""
    os.rmdir(path)


# -- where the hierarchies are ------------------------------------------------------------------
def read_mounts(mountinfo=None, proc_cgroup=None):
    """The cgroup hierarchies and this process's place in each.

    Returns ``{"v1": {controller: folder}, "v2": folder or None}``, each folder being this
    process's own group (where it may create children). ``mountinfo`` and ``proc_cgroup`` are the
    texts of /proc/self/mountinfo and /proc/self/cgroup (read when None).
    """
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    if proc_cgroup is None:
        proc_cgroup = Path("/proc/self/cgroup").read_text()
    own = {}  # controller list ("" for v2) -> path relative to the hierarchy's root
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            own[parts[1]] = parts[2]
    found = {"v1": {}, "v2": None}
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        tail = line.split(" - ", 1)[1].split()
        fstype, options = tail[0], (tail[2] if len(tail) > 2 else "")
        mount_root, mount_point = fields[3], fields[4]
        if fstype == "cgroup2":
            where = _own_folder(mount_point, mount_root, own.get(""))
            if where is not None and found["v2"] is None:
                found["v2"] = where
        elif fstype == "cgroup":
            names = [o for o in options.split(",") if o in V1_CONTROLLERS]
            for key, path in own.items():
                if key and set(names) & set(key.split(",")):
                    where = _own_folder(mount_point, mount_root, path)
                    for name in names:
                        if where is not None:
                            found["v1"].setdefault(name, where)
    return found


def _own_folder(mount_point, mount_root, path):
    """The folder of group ``path`` under a hierarchy mounted at ``mount_point`` (or None)."""
    if path is None:
        return None
    rel = os.path.relpath(path, mount_root) if mount_root != "/" else path.lstrip("/")
    if rel.startswith(".."):
        return None  # our group lies outside what this mount shows
    return Path(mount_point) / ("" if rel == "." else rel)


def layout(mounts=None):
    """ "v1", "v2", "hybrid" (v1 controllers and a v2 tree) or "none"."""
    mounts = read_mounts() if mounts is None else mounts
    v1, v2 = bool(mounts["v1"]), mounts["v2"] is not None
    return {(True, True): "hybrid", (True, False): "v1", (False, True): "v2"}.get((v1, v2), "none")


def _v2_controllers(folder):
    try:
        return set((Path(folder) / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def _v2_enabled(folder):
    try:
        return set((Path(folder) / "cgroup.subtree_control").read_text().split())
    except OSError:
        return set()


def prepare_v2(folder, at_namespace_root=False):
    """Make ``folder`` a v2 parent whose children get memory, pids (and cpu if present).

    The "no internal processes" rule forbids enabling controllers for the children of a group that
    holds processes, except at the root of the whole hierarchy. At the root of a cgroup namespace
    (a container with its own cgroup tree) this process and its siblings are first moved into a
    leaf, ``descent.processes``, as container init systems do. Raises OSError when the folder
    cannot serve (missing controllers, not writable).
    """
    folder = Path(folder)
    wanted = [c for c in ("memory", "pids", "cpu") if c in _v2_controllers(folder)]
    if not {"memory", "pids"} <= set(wanted):
        raise OSError(f"cgroup v2 at {folder}: memory and pids controllers are not available")
    if not os.access(folder, os.W_OK):
        raise OSError(f"cgroup v2 at {folder} is not writable")
    missing = [c for c in wanted if c not in _v2_enabled(folder)]
    if not missing:
        return folder
    request = " ".join("+" + c for c in missing)
    try:
        _write(folder / "cgroup.subtree_control", request)
    except OSError as exc:
        if exc.errno != errno.EBUSY or not at_namespace_root:
            raise
        leaf = folder / V2_LEAF
        if not leaf.is_dir():
            _mkdir(leaf)
        for pid in (folder / "cgroup.procs").read_text().split():
            try:
                _write(leaf / "cgroup.procs", pid)
            except OSError:
                pass  # a process that just exited, or a kernel thread
        _write(folder / "cgroup.subtree_control", request)
    if not {"memory", "pids"} <= _v2_enabled(folder):
        raise OSError(f"cgroup v2 at {folder}: could not enable memory and pids for children")
    return folder


def _v2_parent(mounts):
    """A prepared v2 folder to create kernel groups in: our own group, else the tree's root."""
    own = mounts["v2"]
    if own is None:
        raise OSError("no cgroup v2 tree is mounted")
    candidates = [own]
    root = _tree_root(own)
    if root != own:
        candidates.append(root)  # root on a v2 host: kernel groups directly under the root
    errors = []
    for folder in candidates:
        try:
            return prepare_v2(folder, at_namespace_root=(folder == root))
        except OSError as exc:
            errors.append(str(exc))
    raise OSError("; ".join(errors))


def _tree_root(folder):
    """The mount point of the cgroup tree holding ``folder``."""
    folder = Path(folder)
    while folder.parent != folder and (folder.parent / "cgroup.controllers").exists():
        folder = folder.parent
    return folder


def choose(mounts=None):
    """Which version to use here: ("v1", {controller: folder}), ("v2", folder) or (None, why)."""
    if disabled():
        return None, f"{CGROUPS_ENV}=off"
    try:
        mounts = read_mounts() if mounts is None else mounts
    except OSError as exc:
        return None, f"cannot read the cgroup layout: {exc}"
    v1 = {c: p for c, p in mounts["v1"].items() if os.access(p, os.W_OK)}
    if "memory" in v1 and "pids" in v1:
        return "v1", v1
    if mounts["v1"].keys() & {"memory", "pids"}:
        why = "cgroup v1 memory/pids not writable"
    else:
        why = "no cgroup v1 memory/pids"
    try:
        return "v2", _v2_parent(mounts)
    except OSError as exc:
        return None, f"{why}; {exc}"


# -- one group per kernel -----------------------------------------------------------------------
def group_name():
    return f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:10]}"


class CgroupV1:
    """A cgroup v1 set (memory, pids, and cpu where mounted) for one kernel."""

    version = "v1"

    def __init__(self, limits, bases, name=None):
        self.name = name or group_name()
        self.dirs = {}
        try:
            for controller in V1_CONTROLLERS:
                if controller not in bases:
                    continue  # cpu is optional: a CPU cap is a courtesy to other kernels
                path = Path(bases[controller]) / self.name
                _mkdir(path)
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
        except (OSError, KeyError) as exc:
            self.remove()
            raise OSError(f"cannot create cgroup v1 {self.name}: {exc}") from None
        self._oom_at_start = self.oom_kills()

    @property
    def controllers(self):
        return "/".join(self.dirs)

    def join_paths(self):
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_kills(self):
        """How many times the kernel hit its memory limit (OOM kills, or failures to charge)."""
        mem = self.dirs.get("memory")
        if mem is None:
            return 0
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
        return _kill_until_empty(self.pids, rounds)

    def remove(self):
        self.kill_all()
        for path in self.dirs.values():
            _remove_dir(path)


class CgroupV2:
    """One cgroup v2 group for one kernel: memory.max, memory.swap.max = 0, pids.max, cpu.max.

    Files are written in this order, after ``mkdir``: memory.max, memory.swap.max,
    memory.oom.group (one OOM kill takes the whole kernel), pids.max, cpu.max. Removal writes
    ``cgroup.kill`` (kernel 5.14+; SIGKILL to each process otherwise), then ``rmdir``.
    """

    version = "v2"

    def __init__(self, limits, parent, name=None):
        self.name = name or group_name()
        self.path = Path(parent) / self.name
        _mkdir(self.path)
        self.dirs = {"unified": self.path}
        self.has_cpu = False
        period = 100_000
        steps = [  # (file, value, optional: absent when that feature is off)
            ("memory.max", limits.memory_bytes, False),
            ("memory.swap.max", 0, True),  # no escape into swap
            ("memory.oom.group", 1, True),  # one OOM kill takes the whole kernel
            ("pids.max", limits.pids, False),
        ]
        if limits.cpus:
            steps.append(("cpu.max", f"{int(period * limits.cpus)} {period}", True))
        current = None
        try:
            for current, value, optional in steps:
                if optional and not (self.path / current).exists():
                    continue
                _write(self.path / current, value)
                self.has_cpu = self.has_cpu or current == "cpu.max"
        except OSError as exc:
            self.remove()
            raise OSError(f"cannot set {current} of cgroup v2 {self.path}: {exc}") from None
        self._oom_at_start = self._event("oom_kill")
        self._max_at_reset = self._event("max")

    @property
    def controllers(self):
        return "memory/pids/cpu" if self.has_cpu else "memory/pids"

    def join_paths(self):
        return [str(self.path / "cgroup.procs")]

    def _event(self, key):
        try:
            for line in (self.path / "memory.events").read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def oom_kills(self):
        return self._event("oom_kill")

    def ran_out_of_memory(self):
        return self.oom_kills() > self._oom_at_start

    def reset_peak(self):
        """Remember how often the group has met memory.max so far (``max`` in memory.events)."""
        self._max_at_reset = self._event("max")

    def hit_memory_limit(self, fraction=0.95):
        """Has the group met memory.max since :meth:`reset_peak` (or been OOM-killed)?"""
        return self.ran_out_of_memory() or self._event("max") > self._max_at_reset

    def pids(self):
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self, rounds=50):
        try:
            _write(self.path / "cgroup.kill", 1)
        except OSError:
            pass  # before 5.14: signal each process
        return _kill_until_empty(self.pids, rounds)

    def remove(self):
        self.kill_all()
        _remove_dir(self.path)


def _kill_until_empty(list_pids, rounds):
    for _ in range(rounds):
        pids = list_pids()
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    return not list_pids()


def _remove_dir(path, rounds=50):
    for _ in range(rounds):
        try:
            _rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)  # the last processes are still exiting


def create(limits, version=None, where=None, name=None):
    """A group for one kernel with the version chosen here (or given with its folder)."""
    if version is None:
        version, where = choose()
        if version is None:
            raise OSError(f"no writable cgroups: {where}")
    if version == "v1":
        return CgroupV1(limits, where, name)
    if version == "v2":
        return CgroupV2(limits, where, name)
    raise ValueError(f"unknown cgroup version {version!r}")


def remove_stale(version, where):
    """Remove groups left by a grader process that no longer runs (killed mid-grading)."""
    folders = list(where.values()) if version == "v1" else [where]
    for base in folders:
        for path in sorted(Path(base).glob(f"{PREFIX}*-*")):
            try:
                owner = int(path.name[len(PREFIX) :].split("-")[0])
                os.kill(owner, 0)
                continue  # its grader is still running
            except ProcessLookupError:
                pass
            except (ValueError, PermissionError):
                continue
            if version == "v2":
                stale = CgroupV2.__new__(CgroupV2)
                stale.path = path
                stale.remove()
            else:
                procs = path / "cgroup.procs"
                _kill_until_empty(lambda p=procs: _read_pids(p), 50)
                _remove_dir(path)


def _read_pids(path):
    try:
        return [int(p) for p in Path(path).read_text().split()]
    except (OSError, ValueError):
        return []


def available():
    """("v1"|"v2", folder) when a kernel group can be created and removed here, else (None, why)."""
    if disabled():
        return None, f"{CGROUPS_ENV}=off"
    return _available_cached()


@functools.cache
def _available_cached():
    version, where = choose()
    if version is None:
        return None, where
    trial = types.SimpleNamespace(memory_bytes=2**30, pids=64, cpus=1.0)
    try:
        create(trial, version, where).remove()
    except OSError as exc:
        return None, str(exc)
    remove_stale(version, where)
    return version, where
