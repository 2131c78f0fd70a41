"""What student code can and cannot do inside the sandboxed kernel, with and without cgroups.

Every kernel test runs twice: with the per-kernel cgroup this host offers, and as on a host
without writable cgroups (``DESCENT_CGROUPS=off``: a host uid per kernel and rlimits). No test
sends anything off the machine: the only address used is 127.0.0.1, and a name is looked up only
after the kernel has shown it has no interface but ``lo`` and no /etc/resolv.conf.
"""

import json
import os
import socket
import textwrap
from pathlib import Path

import pytest

from autograder import reports, sandbox
from autograder.kernel_target import Kernel
from autograder.sandbox import (
    CGROUPS_ENV,
    SANDBOX_UID,
    ReferenceVisible,
    Sandbox,
    UidSlot,
    bwrap_available,
    bwrap_supports,
    cgroups_available,
    processes_of,
)

REPO = Path(__file__).resolve().parents[2]
MODES = ["cgroups", "no-cgroups"]

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot run here"),
]


def sandbox_for(mode):
    """The sandbox a grader detects here, or the one it detects with ``DESCENT_CGROUPS=off``."""
    with pytest.MonkeyPatch.context() as mp:
        if mode == "no-cgroups":
            mp.setenv(CGROUPS_ENV, "off")
        elif not cgroups_available():
            pytest.skip(f"no writable cgroups here (or {CGROUPS_ENV}=off)")
        return Sandbox.detect()


@pytest.fixture(scope="module", params=MODES)
def kernel(request):
    k = Kernel(sandbox_for(request.param), warm=()).start().wait_ready()
    k.mode = request.param
    yield k
    k.close()


def run(kernel, code, timeout=30):
    """Run ``code`` in the kernel (restarting it first if an earlier test killed it)."""
    if not kernel.alive():
        kernel.restart()
    return kernel.execute(textwrap.dedent(code), timeout)


def test_isolation_line_says_what_is_in_force(kernel):
    """Does the report line name bubblewrap and the containment actually used, read as on?"""
    line = kernel.sandbox.isolation
    assert line.startswith("bubblewrap; ")
    if kernel.mode == "cgroups":
        assert "cgroup v1 memory/pids" in line or "cgroup v2 memory/pids" in line
    elif os.geteuid() == 0:
        assert "per-kernel uid" in line and "no memory cgroup" in line
    assert reports.isolation_off({"isolation": line}) is None
    off = Sandbox.off().isolation
    assert off.startswith("ISOLATION OFF") and reports.isolation_off({"isolation": off}) == off


def test_runs_as_unprivileged_user(kernel):
    """Does student code run as uid 60001 with no capabilities, and, without cgroups, as a
    host uid of its own (not root's)?"""
    done = run(
        kernel,
        """
        import os
        print(os.getuid(), os.geteuid(), os.getgid())
        print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])
    """,
    )
    assert done.status == "ok", done
    ids, caps = done.output.split("\n")[:2]
    assert ids.split() == [str(SANDBOX_UID)] * 2 + [ids.split()[2]]
    assert int(caps, 16) == 0
    if isinstance(kernel.cgroup, UidSlot):
        assert kernel.cgroup.uid >= sandbox.UID_BASE
        assert len(processes_of(kernel.cgroup.uid)) >= 2  # bwrap and the kernel, on the host


def test_sees_only_loopback_and_no_resolver(kernel):
    """Does the kernel see no network interface but `lo`, and no /etc/resolv.conf or hosts?"""
    done = run(
        kernel,
        """
        import os, socket
        print(socket.if_nameindex())
        print(os.path.exists('/etc/resolv.conf'), os.path.exists('/etc/hosts'))
    """,
    )
    assert done.status == "ok", done
    names, files = done.output.strip().split("\n")
    assert names == "[(1, 'lo')]", done
    assert files == "False False"


def test_cannot_reach_a_listener_on_host_loopback(kernel):
    """Is a TCP server listening on the grader's 127.0.0.1 unreachable (and never contacted)?"""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        done = run(kernel, f"import socket; socket.create_connection(('127.0.0.1', {port}), 3)")
        with pytest.raises(TimeoutError):
            server.accept()
    assert done.status == "error" and done.ename == "ConnectionRefusedError", done


def test_name_lookup_fails_and_sends_nothing(kernel):
    """Does a name lookup fail without any query reaching a resolver on the host's loopback?

    The kernel first proves it has only `lo` and no resolver configured (so, were the sandbox
    broken, nothing would be tried); the host listens on 127.0.0.1 where a resolver would be.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as resolver:
        try:
            resolver.bind(("127.0.0.1", 53))  # where glibc sends queries with no resolv.conf
        except OSError:
            resolver.bind(("127.0.0.1", 0))
        port = resolver.getsockname()[1]
        done = run(
            kernel,
            f"""
            import os, socket
            assert [n for _, n in socket.if_nameindex()] == ['lo'], 'network visible'
            assert not os.path.exists('/etc/resolv.conf'), 'resolver visible'
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b'query', ('127.0.0.1', {port}))
            socket.getaddrinfo('descent-sandbox-test.invalid', 80)
        """,
        )
        resolver.settimeout(1.0)
        with pytest.raises(TimeoutError):
            resolver.recvfrom(512)
    assert done.status == "error" and done.ename == "gaierror", done


@pytest.mark.skipif(not bwrap_supports("--disable-userns"), reason="bwrap has no --disable-userns")
def test_no_nested_user_namespaces(kernel):
    """Can a process in the kernel not create a user namespace of its own?"""
    done = run(
        kernel,
        """
        import subprocess, sys
        code = ("import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
                "print(libc.unshare(0x10000000), ctypes.get_errno())")
        print(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True).stdout)
    """,
    )
    assert done.status == "ok", done
    result, errno = done.output.split()
    assert result == "-1" and int(errno) != 0, done


@pytest.mark.parametrize(
    "code",
    [
        "import solutions",
        "import solutions.descent",
        "import autograder",
        "import autograder.questions",
        f"open({str(REPO / 'solutions' / 'descent.py')!r}).read()",
        f"open({str(REPO / 'autograder' / 'questions' / '__init__.py')!r}).read()",
        f"import os; os.listdir({str(REPO / 'solutions')!r})",
        f"import os; os.listdir({str(REPO / 'autograder' / 'questions')!r})",
    ],
)
def test_solutions_and_questions_invisible(kernel, code):
    """Are the reference solutions and question files out of reach, by import and by path?"""
    assert (REPO / "solutions" / "descent.py").exists()
    done = run(kernel, code)
    assert done.status == "error", (code, done)


def test_other_students_invisible(kernel, tmp_path):
    """Is another student's submission folder (and the results) invisible in the sandbox?"""
    other = tmp_path / "submissions" / "bob"
    other.mkdir(parents=True)
    (other / "ch01_descent.ipynb").write_text("{}")
    done = run(
        kernel,
        f"""
        import os
        print(os.path.exists({str(other)!r}), os.path.exists({str(tmp_path)!r}))
    """,
    )
    assert done.output.split() == ["False", "False"], done


@pytest.mark.parametrize(
    "path", ["/usr/evil", "/etc/evil", "/work/main/evil", "/root/evil", "/evil"]
)
def test_cannot_write_outside_scratch(kernel, path):
    """Does writing anywhere but the kernel's own folders fail?"""
    done = run(kernel, f"open({path!r}, 'w').write('x')")
    assert done.status == "error", done
    assert not os.path.exists(path)


def test_private_tmp_and_readonly_requests(kernel):
    """Does the kernel's /tmp stay private, and can it not write where the grader's requests go?"""
    marker = "/tmp/descent-sandbox-marker"
    done = run(kernel, f"open({marker!r}, 'w').write('x')")
    assert done.status == "ok", done
    assert not os.path.exists(marker)
    done = run(kernel, f"open({os.path.join(kernel.ro, 'forged')!r}, 'w').write('x')")
    assert done.status == "error", done
    assert not os.path.exists(os.path.join(kernel.ro, "forged"))


@pytest.mark.slow
def test_fork_bomb_contained(kernel):
    """Is a fork bomb capped (pids cgroup, or RLIMIT_NPROC on the kernel's own uid) and fully
    cleaned up when the kernel is killed?"""
    if kernel.cgroup is None:
        pytest.skip("no per-kernel cgroup or uid here: nothing caps the processes")
    done = run(
        kernel,
        """
        import os
        children = 0
        for _ in range(100000):
            try:
                if os.fork() == 0:
                    while True:
                        try:
                            os.fork()
                        except OSError:
                            pass
                children += 1
            except OSError:
                break
        print(children)
    """,
        timeout=20,
    )
    assert done.status in ("ok", "timeout"), done
    bomb = kernel.cgroup.pids()
    assert 0 < len(bomb) <= kernel.limits.pids
    kernel.restart()
    assert not [p for p in bomb if _running(p)]
    assert run(kernel, "print(1 + 1)").output.strip() == "2"


def _running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_memory_bomb_is_out_of_memory(kernel):
    """Is allocating far beyond the memory limit reported as out of memory (not a crash)?"""
    done = run(kernel, "import numpy as np; x = np.ones(5 * 2**30 // 8)", timeout=60)
    assert done.status == "out of memory", done


@pytest.mark.slow
def test_ten_gigabyte_file_fails(kernel):
    """Does writing a 10 GB file stop at the file-size limit with an error?"""
    for folder in ("/tmp", kernel.rw):
        done = run(
            kernel,
            f"""
            import os
            block = b'x' * 2**24
            with open(os.path.join({folder!r}, 'big'), 'wb') as f:
                for _ in range(10 * 2**30 // len(block)):
                    f.write(block)
        """,
            timeout=60,
        )
        assert done.status == "error" and "large" in done.evalue.lower(), done
        run(kernel, f"import os; os.remove(os.path.join({folder!r}, 'big'))")


@pytest.mark.slow
def test_gigabyte_of_output_is_capped(kernel):
    """Does printing 1 GB keep only a capped prefix in the grader (and finish)?"""
    done = run(
        kernel,
        """
        import sys
        line = 'y' * 1023 + '\\n'
        for _ in range(2**20):
            sys.stdout.write(line)
    """,
        timeout=240,
    )
    if done.status == "died":  # the grader's relay may stop a kernel that floods it
        assert "more data than the grader accepts" in done.evalue, done
    else:
        assert done.status in ("ok", "timeout"), done
        assert done.output.startswith("yyy")
    assert len(done.output) <= kernel.limits.output_bytes + 200
    assert run(kernel, "print(1 + 1)").output.strip() == "2"


def test_unsandboxed_kernel_reports_isolation_off():
    """Without bubblewrap and cgroups, does a kernel still run and say isolation is off?"""
    sandbox = Sandbox.off()
    assert sandbox.isolation.startswith("ISOLATION OFF")
    with Kernel(sandbox, warm=()) as k:
        k.start().wait_ready()
        assert k.execute("print(6 * 7)", 30).output.strip() == "42"


# -- the reference stays hidden even when an install puts it in site-packages -------------------
@pytest.fixture
def installed_reference(tmp_path, monkeypatch):
    """A Python prefix as `pip install .` leaves it: solutions/ and autograder/ in site-packages
    beside an ordinary package; the sandbox mounts it like the real prefixes."""
    site = tmp_path / "prefix" / "lib" / "python3.11" / "site-packages"
    for package in ("solutions", "autograder/questions", "ordinary"):
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text("VALUE = 1\n")
    (site / "autograder" / "__init__.py").write_text("")
    (tmp_path / "prefix").chmod(0o755)
    real = sandbox._python_prefixes
    monkeypatch.setattr(sandbox, "_python_prefixes", lambda: [*real(), tmp_path / "prefix"])
    # the probe imports from that site-packages as an installed grader's kernel would
    monkeypatch.setattr(
        sandbox,
        "_REFERENCE_PROBE",
        f"import sys; sys.path.insert(0, {str(site)!r})\n" + sandbox._REFERENCE_PROBE,
    )
    return site


@pytest.mark.parametrize("mode", MODES)
def test_installed_reference_is_masked(installed_reference, mode):
    """With solutions/ in a mounted site-packages, is it not importable in the sandbox while the
    other packages there still are, and does the start-of-grading check pass?"""
    box = sandbox_for(mode)
    code = (
        f"import sys, json; sys.path.insert(0, {str(installed_reference)!r}); found = {{}}\n"
        "for name in ('solutions', 'autograder', 'autograder.questions', 'ordinary'):\n"
        "    try:\n        __import__(name); found[name] = True\n"
        "    except Exception:\n        found[name] = False\n"
        "print(json.dumps(found))"
    )
    done = box._probe(code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "solutions": False,
        "autograder": False,
        "autograder.questions": False,
        "ordinary": True,
    }
    assert "not importable" in box.verify_no_reference()


def test_unmasked_reference_refuses_to_grade(installed_reference, monkeypatch):
    """If the mask failed, does the start-of-grading check raise a clear error?"""
    monkeypatch.setattr(sandbox, "_hidden_entries", lambda site: set())
    with pytest.raises(ReferenceVisible, match="solutions is importable.*refusing to grade"):
        Sandbox.detect().verify_no_reference()


def test_grading_refused_when_reference_visible(installed_reference, monkeypatch, tmp_path, capsys):
    """Does `grade` refuse to start, exit 1 and say why, when a kernel could import the
    reference?"""
    from autograder import cli

    monkeypatch.setattr(sandbox, "_hidden_entries", lambda site: set())
    (tmp_path / "submissions" / "ann").mkdir(parents=True)
    out = tmp_path / "results"
    assert cli.main(["grade", str(tmp_path / "submissions"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "solutions is importable" in err and "refusing to grade" in err
    assert not (out / "grades.csv").exists()
