"""What student code can and cannot do inside the sandboxed kernel (bubblewrap + cgroups)."""

import os
import socket
import textwrap
from pathlib import Path

import pytest

from autograder.kernel_target import Kernel
from autograder.sandbox import SANDBOX_UID, Sandbox, bwrap_available, cgroups_available

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot run here"),
    pytest.mark.skipif(not cgroups_available(), reason="cgroup v1 memory/pids not writable"),
]


@pytest.fixture(scope="module")
def kernel():
    k = Kernel(Sandbox.detect(), warm=()).start().wait_ready()
    yield k
    k.close()


def run(kernel, code, timeout=30):
    """Run ``code`` in the kernel (restarting it first if an earlier test killed it)."""
    if not kernel.alive():
        kernel.restart()
    return kernel.execute(textwrap.dedent(code), timeout)


def test_runs_as_unprivileged_user(kernel):
    """Does student code run as uid 60001 with no capabilities?"""
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


def test_no_network_to_localhost(kernel):
    """Is a server listening on the grader's 127.0.0.1 unreachable from the kernel?"""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        done = run(
            kernel,
            f"""
            import socket
            socket.create_connection(('127.0.0.1', {port}), timeout=3)
        """,
        )
    finally:
        server.close()
    assert done.status == "error" and done.ename in ("ConnectionRefusedError", "OSError"), done


def test_no_network_outside(kernel):
    """Can the kernel reach an outside address or resolve a name? (It must not.)"""
    done = run(
        kernel,
        """
        import socket
        socket.create_connection(('93.184.215.14', 80), timeout=3)
    """,
    )
    assert done.status == "error", done
    done = run(kernel, "import socket; socket.getaddrinfo('example.com', 80)")
    assert done.status == "error", done
    done = run(kernel, "import socket; print(socket.if_nameindex())")
    assert done.output.strip() in ("[(1, 'lo')]", "[]"), done


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


def test_fork_bomb_contained(kernel):
    """Is a fork bomb capped by the pids cgroup and fully cleaned up when the kernel is killed?"""
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


def test_memory_bomb_is_out_of_memory(kernel):
    """Is allocating far beyond the memory limit reported as out of memory (not a crash)?"""
    done = run(kernel, "import numpy as np; x = np.ones(5 * 2**30 // 8)", timeout=60)
    assert done.status == "out of memory", done


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
    assert done.status in ("ok", "timeout"), done
    assert len(done.output) <= kernel.limits.output_bytes + 200
    assert done.output.startswith("yyy")


def test_unsandboxed_kernel_reports_isolation_off():
    """Without bubblewrap and cgroups, does a kernel still run and say isolation is off?"""
    sandbox = Sandbox.off()
    assert sandbox.isolation.startswith("ISOLATION OFF")
    with Kernel(sandbox, warm=()) as k:
        k.start().wait_ready()
        assert k.execute("print(6 * 7)", 30).output.strip() == "42"
