"""The containment of one kernel: cgroup layouts, the cgroup v2 protocol, and per-kernel uids.

The v2 protocol is tested against a fake cgroup tree in a temporary folder (which files are
written, in which order, and what is cleaned up after a crash); real groups are created only
where this host has a writable hierarchy of that version.
"""

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import cgroups, sandbox
from autograder.sandbox import CGROUPS_ENV, Limits, Sandbox, UidSlot, processes_of

HYBRID_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = "4:pids:/\n3:memory:/jobs/a1\n1:cpu:/\n0::/\n"
V2_MOUNTINFO = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V2_CGROUP = "0::/user.slice/session-3.scope\n"
V1_MOUNTINFO = "31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"


def test_layouts_are_told_apart():
    """Are hybrid, pure v2 and pure v1 hosts recognized, with this process's own folders?"""
    hybrid = cgroups.read_mounts(HYBRID_MOUNTINFO, HYBRID_CGROUP)
    assert cgroups.layout(hybrid) == "hybrid"
    assert hybrid["v1"]["memory"] == Path("/sys/fs/cgroup/memory/jobs/a1")
    assert hybrid["v1"]["pids"] == Path("/sys/fs/cgroup/pids")
    assert hybrid["v2"] == Path("/sys/fs/cgroup/unified")
    v2 = cgroups.read_mounts(V2_MOUNTINFO, V2_CGROUP)
    assert cgroups.layout(v2) == "v2" and not v2["v1"]
    assert v2["v2"] == Path("/sys/fs/cgroup/user.slice/session-3.scope")
    v1 = cgroups.read_mounts(V1_MOUNTINFO, "2:cpu,cpuacct:/x\n")
    assert cgroups.layout(v1) == "v1" and v1["v1"]["cpu"] == Path("/sys/fs/cgroup/cpu,cpuacct/x")
    assert cgroups.layout({"v1": {}, "v2": None}) == "none"


def test_this_hosts_layout_is_read():
    """Is this host's own layout one of the four, consistent with what is mounted?"""
    mounts = cgroups.read_mounts()
    kind = cgroups.layout(mounts)
    assert kind in ("v1", "v2", "hybrid", "none")
    assert (kind in ("v2", "hybrid")) == (mounts["v2"] is not None)


# -- a fake cgroupfs: mkdir fills a group with interface files, rmdir removes them ------------
class FakeCgroupFs:
    """Records every write, mkdir and rmdir the protocol makes, in order, and acts like the
    kernel where the protocol depends on it (subtree_control, no internal processes)."""

    FILES = {
        "cgroup.controllers": "cpu memory pids",
        "cgroup.subtree_control": "",
        "cgroup.procs": "",
        "cgroup.kill": "",
        "memory.max": "max",
        "memory.swap.max": "max",
        "memory.oom.group": "0",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        "pids.max": "max",
        "cpu.max": "max 100000",
    }

    def __init__(self, root, monkeypatch):
        self.root = Path(root)
        self.log = []
        self.namespace_root = self.root  # subtree_control here obeys the no-internal-process rule
        self._make(self.root)
        monkeypatch.setattr(cgroups, "_write", self.write)
        monkeypatch.setattr(cgroups, "_mkdir", self.mkdir)
        monkeypatch.setattr(cgroups, "_rmdir", self.rmdir)

    def _make(self, path):
        path.mkdir(exist_ok=True)
        for name, text in self.FILES.items():
            (path / name).write_text(text)

    def rel(self, path):
        return str(Path(path).relative_to(self.root))

    def mkdir(self, path):
        if Path(path).exists():
            raise FileExistsError(path)
        self.log.append(("mkdir", self.rel(path)))
        self._make(Path(path))

    def rmdir(self, path):
        if (Path(path) / "cgroup.procs").read_text().split():
            raise OSError(errno.EBUSY, "group still has processes")
        self.log.append(("rmdir", self.rel(path)))
        shutil.rmtree(path)

    def write(self, path, value):
        path = Path(path)
        self.log.append((self.rel(path), str(value)))
        if path.name == "cgroup.subtree_control":
            if (path.parent / "cgroup.procs").read_text().split():
                raise OSError(errno.EBUSY, "no internal processes")
            enabled = set(path.read_text().split())
            enabled |= {v[1:] for v in str(value).split() if v.startswith("+")}
            path.write_text(" ".join(sorted(enabled)))
        elif path.name == "cgroup.kill":
            (path.parent / "cgroup.procs").write_text("")
        elif path.name == "cgroup.procs":
            source = next(
                p for p in self.root.rglob("cgroup.procs") if str(value) in p.read_text().split()
            )
            source.write_text(" ".join(x for x in source.read_text().split() if x != str(value)))
            path.write_text(path.read_text() + f"{value}\n")
        else:
            path.write_text(str(value))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return FakeCgroupFs(tmp_path / "cgroup", monkeypatch)


LIMITS = Limits(memory_bytes=3 * 2**30, pids=128, cpus=0.5)


def test_v2_group_files_written_in_order(fake):
    """Does a kernel's v2 group get memory.max, no swap, one OOM group, pids.max and cpu.max,
    in that order, right after its folder is made?"""
    parent = cgroups.prepare_v2(fake.root)
    group = cgroups.CgroupV2(LIMITS, parent, name="descent-1-abc")
    assert fake.log == [
        ("cgroup.subtree_control", "+memory +pids +cpu"),
        ("mkdir", "descent-1-abc"),
        ("descent-1-abc/memory.max", str(3 * 2**30)),
        ("descent-1-abc/memory.swap.max", "0"),
        ("descent-1-abc/memory.oom.group", "1"),
        ("descent-1-abc/pids.max", "128"),
        ("descent-1-abc/cpu.max", "50000 100000"),
    ]
    assert group.join_paths() == [str(fake.root / "descent-1-abc" / "cgroup.procs")]
    assert group.controllers == "memory/pids/cpu"


def test_v2_remove_kills_then_removes(fake):
    """Is a group emptied with cgroup.kill before its folder is removed?"""
    group = cgroups.CgroupV2(LIMITS, cgroups.prepare_v2(fake.root), name="descent-1-abc")
    (group.path / "cgroup.procs").write_text("4242\n")  # a process the kernel started
    fake.log.clear()
    group.remove()
    assert fake.log == [("descent-1-abc/cgroup.kill", "1"), ("rmdir", "descent-1-abc")]
    assert not group.path.exists()


def test_v2_failed_setup_leaves_no_group(fake, monkeypatch):
    """If a limit cannot be written, is the half-made group removed and the error raised?"""
    write = fake.write

    def refuse_pids(path, value):
        if Path(path).name == "pids.max":
            raise PermissionError(errno.EACCES, "read-only")
        write(path, value)

    monkeypatch.setattr(cgroups, "_write", refuse_pids)
    with pytest.raises(OSError, match="pids.max"):
        cgroups.CgroupV2(LIMITS, cgroups.prepare_v2(fake.root), name="descent-1-abc")
    assert not (fake.root / "descent-1-abc").exists()
    assert fake.log[-1] == ("rmdir", "descent-1-abc")


def test_v2_memory_events_tell_limit_and_oom(fake):
    """Are meeting memory.max (since the last reset) and an OOM kill read from memory.events?"""
    group = cgroups.CgroupV2(LIMITS, cgroups.prepare_v2(fake.root), name="descent-1-abc")
    events = group.path / "memory.events"
    assert not group.hit_memory_limit() and not group.ran_out_of_memory()
    events.write_text("max 2\noom 0\noom_kill 0\n")
    assert group.hit_memory_limit() and not group.ran_out_of_memory()
    group.reset_peak()
    assert not group.hit_memory_limit()
    events.write_text("max 3\noom 1\noom_kill 1\n")
    assert group.hit_memory_limit() and group.ran_out_of_memory()


def test_v2_namespace_root_processes_moved_to_a_leaf(fake):
    """At the root of a cgroup namespace holding processes, are they moved into a leaf before
    the controllers are enabled (the no-internal-process rule), and only there?"""
    (fake.root / "cgroup.procs").write_text("1\n77\n")
    with pytest.raises(OSError):
        cgroups.prepare_v2(fake.root, at_namespace_root=False)
    fake.log.clear()
    cgroups.prepare_v2(fake.root, at_namespace_root=True)
    assert fake.log == [
        ("cgroup.subtree_control", "+memory +pids +cpu"),
        ("mkdir", cgroups.V2_LEAF),
        (f"{cgroups.V2_LEAF}/cgroup.procs", "1"),
        (f"{cgroups.V2_LEAF}/cgroup.procs", "77"),
        ("cgroup.subtree_control", "+memory +pids +cpu"),
    ]
    assert (fake.root / "cgroup.procs").read_text().split() == []
    assert set((fake.root / "cgroup.subtree_control").read_text().split()) == {
        "cpu",
        "memory",
        "pids",
    }


def test_v2_without_memory_controller_is_refused(fake):
    """Is a v2 tree without the memory controller (a hybrid host's) not used?"""
    (fake.root / "cgroup.controllers").write_text("hugetlb")
    with pytest.raises(OSError, match="memory and pids"):
        cgroups.prepare_v2(fake.root)


def test_v2_stale_groups_removed_after_a_crash(fake):
    """After a grader died mid-grading, are its groups killed and removed, while those of a
    grader still running stay?"""
    parent = cgroups.prepare_v2(fake.root)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = cgroups.CgroupV2(LIMITS, parent, name=f"descent-{dead.pid}-stale")
    live = cgroups.CgroupV2(LIMITS, parent, name=f"descent-{os.getpid()}-live")
    (stale.path / "cgroup.procs").write_text("31337\n")
    fake.log.clear()
    cgroups.remove_stale("v2", parent)
    assert fake.log == [
        (f"descent-{dead.pid}-stale/cgroup.kill", "1"),
        ("rmdir", f"descent-{dead.pid}-stale"),
    ]
    assert live.path.exists() and not stale.path.exists()


def test_cgroups_off_by_environment(monkeypatch):
    """Does DESCENT_CGROUPS=off make the grader act as on a host without writable cgroups?"""
    monkeypatch.setenv(CGROUPS_ENV, "off")
    assert cgroups.choose() == (None, f"{CGROUPS_ENV}=off")
    assert not sandbox.cgroups_available()
    with pytest.raises(OSError):
        cgroups.create(LIMITS)
    assert Sandbox.detect().containment in ("uid", "rlimits")


# -- real groups, where this host has them ----------------------------------------------------
def _real(version):
    found, where = cgroups.available()
    if found != version:
        pytest.skip(f"no writable cgroup {version} here (this host: {found or where})")
    return where


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_real_group_contains_and_is_removed(version):
    """Does a real group get its limits, hold a process that joins it, and kill it on removal?"""
    where = _real(version)
    group = cgroups.create(LIMITS, version, where)
    try:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        for path in group.join_paths():
            cgroups._write(path, child.pid)
        assert child.pid in group.pids()
        if version == "v2":
            assert (group.path / "memory.max").read_text().strip() == str(3 * 2**30)
            assert (group.path / "pids.max").read_text().strip() == "128"
        else:
            limit = group.dirs["memory"] / "memory.limit_in_bytes"
            assert int(limit.read_text()) == 3 * 2**30
            assert (group.dirs["pids"] / "pids.max").read_text().strip() == "128"
    finally:
        group.remove()
    assert child.wait(timeout=10) == -9
    assert not any(Path(d).exists() for d in group.dirs.values())


# -- per-kernel uids, where the grader is root ------------------------------------------------
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="per-kernel uids need root")


@needs_root
def test_uid_slots_are_distinct_and_released():
    """Do two kernels get different host uids, and is a uid free again once its kernel is gone?"""
    first, second = UidSlot(LIMITS), UidSlot(LIMITS)
    try:
        assert first.uid != second.uid
        assert min(first.uid, second.uid) >= sandbox.UID_BASE
        freed = first.uid
        first.remove()
        third = UidSlot(LIMITS)
        assert third.uid == freed
        third.remove()
    finally:
        first.remove()
        second.remove()


SYSTEM_PYTHON = "/usr/bin/python3"  # runnable by any uid (the venv's may sit under /root)


@needs_root
@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="no /usr/bin/python3")
def test_uid_slot_kills_leftovers_and_watches_memory():
    """Are processes left on a slot's uid (by a grader that died) killed when it is taken, and
    does going past the memory limit kill the uid's processes and read as out of memory?"""
    probe = UidSlot(LIMITS)
    uid = probe.uid
    probe.remove()
    stray = subprocess.Popen(["sleep", "60"], user=uid, group=uid)
    slot = UidSlot(Limits(memory_bytes=200 * 2**20), poll=0.05)
    try:
        assert slot.uid == uid
        assert stray.wait(timeout=10) == -9
        hog = subprocess.Popen(
            [SYSTEM_PYTHON, "-c", "x = bytearray(400 * 2**20); import time; time.sleep(60)"],
            user=uid,
            group=uid,
        )
        assert hog.wait(timeout=30) == -9
        assert slot.ran_out_of_memory() and slot.hit_memory_limit()
    finally:
        slot.remove()
    time.sleep(0.1)
    assert processes_of(uid) == []
