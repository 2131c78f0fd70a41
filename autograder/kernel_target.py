"""A student's sandboxed Jupyter kernel, and the grading target that calls into it.

:class:`Kernel` starts ``ipykernel`` inside the :mod:`autograder.sandbox` (IPC transport, the
kernel's folders bound at the same paths inside and out) and runs code with a wall-time limit,
keeping only a capped amount of what it prints. :class:`KernelTarget` is the transport of
``runner.grade_target``: the grader writes a request (``wire.dump``) into a folder the kernel may
read but not write, the kernel runs ``__descent_harness__.call(request, out)``, and the grader
copies ``out`` into a private folder (no symlinks followed, sizes checked) before reading it with
``wire.load``. Nothing the kernel sends is ever unpickled or evaluated here.

The kernel's messages never reach the grader's process directly: a small *relay* process (the
grader's own code, under its own address-space limit) holds the sockets to the kernel, drops
any frame larger than :data:`RELAY_MAX_FRAME` before reading it, and forwards only messages of
at most :data:`MAX_MESSAGE_BYTES` (a larger stream message is cut to its first characters, a
larger reply replaced by an error reply). ZeroMQ bounds frames but not the number of frames in
one message, so only a separate process can bound what a flooding kernel costs: the relay dies
at its limit, the grader sees it gone and reports the kernel as killed. The grader's own
sockets accept :data:`MAX_MESSAGE_BYTES` per frame and :data:`GRADER_RCVHWM` messages each.

:class:`Budget` is one wall-clock budget and restart allowance per notebook: cells, replays
after restarts, kernel starts and question calls all draw on it.
"""

import json
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from jupyter_client import KernelManager

from autograder import runner, spec
from autograder.sandbox import Cgroup, Sandbox

MAX_MESSAGE_BYTES = 4 * 2**20  # largest message the relay forwards to the grader
MAX_REPLY_BYTES = MAX_MESSAGE_BYTES  # (old name)
GRADER_RCVHWM = 8  # messages queued per grader socket: at most 2 x 8 x 4 MiB per kernel
RELAY_MAX_FRAME = 128 * 2**20  # a larger frame from the kernel is dropped unread (ZMQ_MAXMSGSIZE)
RELAY_RCVHWM = 2  # messages the relay queues from the kernel, per socket
RELAY_MEMORY_BYTES = 1536 * 2**20  # the relay's RLIMIT_AS: a flood beyond it kills only the relay
RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "relay.py")  # run as a script
IOPUB_MISSES = 3  # calls in a row without their output before the output channel counts as broken
MAX_RESTARTS = 6  # kernel restarts per notebook (after fatal cells or calls), then no more
MAX_COLLECT_BYTES = 256 * 2**20  # everything one call may return, files together
# The grader's own address-space limit (RLIMIT_AS, limit_grader_memory): a base for the process
# (torch imported: about 0.9 GiB of address space) plus, per kernel graded at once, room for one
# call's results read twice (student and reference) and the bounded message queues (64 MiB).
GRADER_BASE_BYTES = 4 * 2**30
GRADER_PER_KERNEL_BYTES = 1 * 2**30


def _mapped_bytes():
    """This process's address space now (VmSize), 0 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def limit_grader_memory(kernels):
    """Lower this process's RLIMIT_AS to what it maps now plus GRADER_BASE_BYTES + kernels x
    GRADER_PER_KERNEL_BYTES (never raise it); return the soft limit in force. Past it an
    allocation raises MemoryError, which a call turns into the student's error: the host is never
    driven out of memory. Counting what is already mapped keeps room for a CUDA driver, which
    reserves far more address space than it uses; the hard limit is left as it was, so the
    sandbox gives kernels their own limits back."""
    limit = _mapped_bytes() + GRADER_BASE_BYTES + max(1, int(kernels)) * GRADER_PER_KERNEL_BYTES
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        soft = limit
    return soft


MAX_COLLECT_FILES = 2000


class BudgetSpent(RuntimeError):
    """The notebook used up its wall-clock budget or its kernel restarts."""


class Budget:
    """One notebook's wall-clock seconds and kernel restarts, shared by everything it runs.

    Cell runs, replays after a restart, kernel starts and question calls all take their time
    limit from :meth:`cap`; :meth:`restart` counts restarts. A cell that hangs only after a
    restart therefore costs at most what is left of the budget, never one more timeout each.
    """

    def __init__(self, seconds, restarts=MAX_RESTARTS):
        self.seconds = float(seconds)
        self.restarts = int(restarts)
        self.used_restarts = 0
        self.deadline = time.monotonic() + self.seconds

    def left(self):
        return max(0.0, self.deadline - time.monotonic())

    @property
    def spent(self):
        return self.left() <= 0

    def cap(self, timeout):
        """``timeout`` shortened to what is left (0 when nothing is)."""
        return min(float(timeout), self.left())

    def why(self):
        if self.used_restarts >= self.restarts and not self.spent:
            return f"the kernel was restarted {self.restarts} times, the most for one notebook"
        return f"the notebook used up its {self.seconds:g} s time budget"

    def restart(self):
        """Take one restart; BudgetSpent if none (or no time) is left."""
        if self.used_restarts >= self.restarts or self.spent:
            raise BudgetSpent(self.why())
        self.used_restarts += 1


@dataclass
class Execution:
    """What happened to one piece of code run in the kernel."""

    status: str  # "ok", "error", "timeout", "died" or "out of memory"
    ename: str = ""
    evalue: str = ""
    output: str = ""
    seconds: float = 0.0

    @property
    def fatal(self):
        return self.status in ("timeout", "died", "out of memory")

    def describe(self, limit=None):
        if self.status == "error":
            return f"raised {self.ename}: {self.evalue}".strip()
        if self.status == "timeout":
            return f"ran past its time limit ({limit:g} s)" if limit else "ran past its time limit"
        if self.status == "out of memory":
            return "ran out of memory (the kernel was killed)"
        if self.status == "died":
            return self.evalue or "killed the kernel"
        return "ran"


class _Capped:
    """Keeps the first ``limit`` characters written to it and counts the rest."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.kept = 0
        self.dropped = 0

    @property
    def full(self):
        return self.kept >= self.limit

    def add(self, text):
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))

    def text(self):
        tail = f"\n[... {self.dropped} more characters not kept]" if self.dropped else ""
        return "".join(self.parts) + tail


class _KernelManager(KernelManager):
    """A KernelManager whose kernel command is given whole (wrapped in bubblewrap)."""

    descent_cmd = None

    def format_kernel_cmd(self, extra_arguments=None):
        return list(self.descent_cmd)

    def _connect_control_socket(self):
        """No control socket: the grader never sends on it, and an unread socket from the
        kernel would only queue what a hostile kernel sends. Kernels are stopped by signal."""
        self._control_socket = None


def _grader_context():
    """A ZMQ context whose sockets accept bounded frames and queues (see the module doc)."""
    context = zmq.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES + 2**16)
    context.setsockopt(zmq.RCVHWM, GRADER_RCVHWM)
    context.setsockopt(zmq.LINGER, 0)
    return context


class Kernel:
    """One sandboxed kernel for one submission; :meth:`restart` gives a fresh process."""

    def __init__(self, sandbox=None, warm=("numpy", "torch")):
        self.sandbox = sandbox if sandbox is not None else Sandbox.detect()
        self.limits = self.sandbox.limits
        self.warm = tuple(warm)
        self.base = tempfile.mkdtemp(prefix="descent-kernel-")
        self.ro = os.path.join(self.base, "ro")  # the grader writes, the kernel reads
        self.rw = os.path.join(self.base, "rw")  # the kernel writes
        self.private = os.path.join(self.base, "private")  # never visible to the kernel
        for path in (self.ro, self.rw, self.private):
            os.mkdir(path, 0o700)
        self.km = self.kc = self.cgroup = self.relay = None
        self.starts = 0
        self.budget = None  # a Budget, set by whoever grades a notebook on this kernel
        self.flooded = False
        self._iopub_misses = 0  # calls in a row whose "idle" never came
        self.console = None
        self.start_seconds = []
        self._started_at = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        """Launch the kernel process (returns at once; :meth:`wait_ready` waits for it)."""
        self.starts += 1
        self._started_at = time.perf_counter()
        self.cgroup = Cgroup(self.limits) if self.sandbox.cgroups else None
        self.flooded = False
        self._iopub_misses = 0
        tag = secrets.token_hex(8)  # neutral: nothing in a name tells the kernel how often it ran
        km = _KernelManager(transport="ipc", ip=os.path.join(self.rw, tag))
        km.connection_file = os.path.join(self.ro, f"{tag}.json")
        km.session.packer = "json"
        km.session.unpacker = "json"
        argv = [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            km.connection_file,
            "--HistoryManager.enabled=False",
            "--IPKernelApp.quiet=True",
        ]
        km.descent_cmd = self.sandbox.launcher(self.cgroup) + self.sandbox.wrap(
            argv, self.rw, self.ro
        )
        env = (
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            if self.sandbox.bwrap
            else (self.sandbox.env(self.rw))
        )
        km.start_kernel(
            env=env,
            cwd=self.rw,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.km = km
        self.console = _Capped(16 * 2**10)  # what the process writes outside Jupyter's streams
        pipe = km.provisioner.process.stdout
        threading.Thread(target=_drain_pipe, args=(pipe, self.console), daemon=True).start()
        front = os.path.join(self.private, "r" + tag)
        self.relay = self._start_relay(km, front)
        kc = km.client(ip=front, context=_grader_context())
        kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        self.kc = kc
        if self.warm:  # queued now, runs while the kernel would otherwise wait for work
            kc.execute("import " + ", ".join(self.warm), silent=True, store_history=False)
        return self

    def _start_relay(self, km, front):
        config = {
            "kernel_shell": f"ipc://{km.ip}-{km.shell_port}",
            "kernel_iopub": f"ipc://{km.ip}-{km.iopub_port}",
            "grader_shell": f"ipc://{front}-{km.shell_port}",
            "grader_iopub": f"ipc://{front}-{km.iopub_port}",
            "key": km.session.key.decode(),
            "frame": RELAY_MAX_FRAME,
            "hwm": RELAY_RCVHWM,
            "forward": MAX_MESSAGE_BYTES,
            "prefix": self.limits.output_bytes,
            "memory": RELAY_MEMORY_BYTES,
            "parent": os.getpid(),
        }
        return subprocess.Popen(
            [sys.executable, "-I", RELAY, json.dumps(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def relay_alive(self):
        return self.relay is not None and self.relay.poll() is None

    def wait_ready(self, timeout=90):
        if self.budget is not None:
            timeout = max(1.0, self.budget.cap(timeout))
        try:
            self.kc.wait_for_ready(timeout=timeout)
        except RuntimeError as exc:
            console = self.console.text().strip()[-2000:] if self.console else ""
            raise RuntimeError(f"the sandboxed kernel did not start: {exc}\n{console}") from None
        if self._started_at is not None:
            self.start_seconds.append(time.perf_counter() - self._started_at)
            self._started_at = None
        return self

    def alive(self):
        return self.km is not None and self.km.is_alive() and self.relay_alive()

    def kill(self):
        """Stop the kernel and everything it started."""
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:  # noqa: BLE001 -- a dead kernel's channels may already be gone
                pass
            self.kc = None
        if self.km is not None:
            proc = getattr(self.km.provisioner, "process", None)
            if proc is not None and not self.sandbox.bwrap:
                try:  # without a cgroup, its process group is the best handle on its children
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:  # noqa: BLE001
                if proc is not None:
                    proc.kill()
            self.km = None
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait()
            self.relay = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None

    def restart(self):
        """A fresh kernel process; BudgetSpent (the kernel left stopped) if the notebook's
        budget allows no more restarts."""
        if self.budget is not None:
            try:
                self.budget.restart()
            except BudgetSpent:
                self.kill()
                raise
        self.kill()
        for folder in (self.rw, self.ro):  # nothing of the last run is left, nor trusted
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        self.start().wait_ready()

    def close(self):
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- running code --------------------------------------------------------------------
    def ran_out_of_memory(self):
        return self.cgroup is not None and self.cgroup.ran_out_of_memory()

    def _death(self, started):
        seconds = time.perf_counter() - started
        if self.km is not None and not self.relay_alive():
            self.flooded = True
            self.kill()  # the kernel drowned the relay: it is stopped, as if it had died
            why = "was stopped: it sent the grader more data than the grader accepts"
            return Execution("died", evalue=why, seconds=seconds)
        status = "out of memory" if self.ran_out_of_memory() else "died"
        return Execution(status, seconds=seconds)

    def execute(self, code, timeout):
        """Run ``code``; return an :class:`Execution`. The kernel is not restarted here.

        ``timeout`` is shortened to what is left of the notebook's :attr:`budget`.
        """
        started = time.perf_counter()
        if self.budget is not None:
            timeout = self.budget.cap(timeout)
        if not self.alive():
            return self._death(started)
        kc = self.kc
        if self.cgroup is not None:
            self.cgroup.reset_peak()
        try:
            msg_id = kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        except (ValueError, TypeError) as exc:  # e.g. a lone surrogate cannot be sent as UTF-8
            why = f"the code cannot be sent to the kernel ({type(exc).__name__})"
            return Execution("error", "InvalidSource", why, seconds=0.0)
        shell, iopub = kc.shell_channel.socket, kc.iopub_channel.socket
        poller = zmq.Poller()
        poller.register(shell, zmq.POLLIN)
        poller.register(iopub, zmq.POLLIN)
        output = _Capped(self.limits.output_bytes)
        deadline = started + timeout
        reply = None
        idle = False
        while reply is None:
            left = deadline - time.perf_counter()
            if left <= 0:
                self._drain(iopub, msg_id, output)
                if self.cgroup is not None and self.cgroup.hit_memory_limit():
                    return Execution("out of memory", output=output.text(), seconds=timeout)
                return Execution("timeout", output=output.text(), seconds=timeout)
            events = dict(poller.poll(int(min(left, 0.25) * 1000) + 1))
            if iopub in events:
                idle = self._drain(iopub, msg_id, output) or idle
            if shell in events:
                reply = self._reply(shell, msg_id)
            if reply is None and not self.alive():
                return self._death(started)
        idle = self._drain(iopub, msg_id, output) or idle
        # The output may trail the reply. A flood can break the output channel for a while
        # (the relay's socket reconnects); only once several calls in a row lost their output
        # is the channel taken as broken, and each call then waits less for it.
        wait = 1.0 if self._iopub_misses < IOPUB_MISSES else 0.1
        settle = min(deadline, time.perf_counter() + wait)
        while not idle and time.perf_counter() < settle:
            if iopub.poll(50):
                idle = self._drain(iopub, msg_id, output) or idle
        self._iopub_misses = 0 if idle else self._iopub_misses + 1
        seconds = time.perf_counter() - started
        if not isinstance(reply, dict) or reply.get("status") != "ok":
            reply = reply if isinstance(reply, dict) else {}
            return Execution(
                "error",
                str(reply.get("ename", "Error"))[:200],
                str(reply.get("evalue", ""))[:2000],
                output.text(),
                seconds,
            )
        return Execution("ok", output=output.text(), seconds=seconds)

    def _reply(self, shell, msg_id):
        """The execute_reply to ``msg_id`` if one is waiting (other replies are dropped)."""
        session = self.kc.session
        for _ in range(1000):  # a kernel flooding the shell channel must not hold us here
            try:
                frames = shell.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None
            if sum(len(f) for f in frames) > MAX_REPLY_BYTES:
                continue
            try:
                _, parts = session.feed_identities(frames)
                msg = session.deserialize(parts)
            except Exception:  # noqa: BLE001 -- a malformed or forged message is ignored
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                content = msg.get("content")
                return content if isinstance(content, dict) else {}
        return None

    def _drain(self, iopub, msg_id, output):
        """Read everything waiting on iopub; keep (capped) what our request printed.

        True once the kernel's "idle" status for our request has been read (all its output
        has been sent by then).
        """
        session = self.kc.session
        idle = False
        for _ in range(10_000):  # then the caller checks its deadline
            try:
                frames = iopub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return idle
            size = sum(len(f) for f in frames)
            if output.full and size > 4096:  # a status message is small: keep looking for it
                output.dropped += size
                continue
            try:
                _, parts = session.feed_identities(frames)
                msg = session.deserialize(parts, content=False)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"].get("msg_type")
                if kind == "status":
                    content = session.unpack(msg["content"])
                    idle = idle or content.get("execution_state") == "idle"
                elif kind == "stream" and not output.full:
                    if len(parts[4]) > MAX_REPLY_BYTES:  # hmac, 3 dicts, content
                        output.add(_stream_prefix(parts[4], output.limit))
                        continue
                    content = session.unpack(msg["content"])
                    output.add(str(content.get("text", "")))
                elif kind == "stream":
                    output.dropped += size
            except Exception:  # noqa: BLE001 -- output is for information only
                continue
        return idle

    # -- requests and results --------------------------------------------------------------
    def new_call(self):
        """Fresh folders for one call: (request folder, read-only; out folder, writable)."""
        token = secrets.token_hex(8)
        request = os.path.join(self.ro, "calls", token)
        os.makedirs(request)
        return request, os.path.join(self.rw, "out-" + token)

    def collect(self, out):
        """Copy ``out`` (written by the kernel) to a private folder, refusing links and
        special files and capping sizes; return the private folder (or None if unusable)."""
        dest = tempfile.mkdtemp(dir=self.private)
        total = [0, 0]
        try:
            fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return dest
        try:
            _copy_tree(fd, dest, total, depth=0)
        except (OSError, ValueError):
            shutil.rmtree(dest, ignore_errors=True)
            os.mkdir(dest)
        finally:
            os.close(fd)
        return dest


def _stream_prefix(raw, limit):
    """The start of a stream message too large to parse, read from its JSON bytes as text."""
    start = raw.find(b'"text"', 0, 4096)
    if start < 0:
        return "[a large block of output was not kept]\n"
    start = raw.find(b'"', start + 6) + 1
    text = raw[start : start + limit].decode("utf-8", "replace")
    return text.replace("\\n", "\n").replace('\\"', '"')


def _drain_pipe(pipe, keep):
    """Read the kernel process's stdout/stderr to the end, keeping a capped prefix."""
    try:
        with pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                if not keep.full:
                    keep.add(chunk.decode("utf-8", "replace"))
                else:
                    keep.dropped += len(chunk)
    except (OSError, ValueError):
        pass


def _copy_tree(dir_fd, dest, total, depth):
    if depth > 2:
        raise ValueError("too deep")
    for name in os.listdir(dir_fd):
        total[1] += 1
        if total[1] > MAX_COLLECT_FILES:
            raise ValueError("too many files")
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:
            continue  # a symlink or something we may not open: not copied
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                os.mkdir(os.path.join(dest, name))
                _copy_tree(fd, os.path.join(dest, name), total, depth + 1)
            elif stat.S_ISREG(info.st_mode):
                total[0] += info.st_size
                if total[0] > MAX_COLLECT_BYTES:
                    raise ValueError("too large")
                with open(os.path.join(dest, name), "wb") as f, os.fdopen(os.dup(fd), "rb") as src:
                    shutil.copyfileobj(src, f)
        finally:
            os.close(fd)


class KernelTarget:
    """``runner``'s target for a student kernel.

    ``prepare(kernel)`` brings a (re)started kernel back to the state to grade: it re-runs the
    submission's good cells. ``describe_missing(name)`` explains a function the notebook does
    not define. After a call times out or kills the kernel, the next call restarts it first.
    """

    def __init__(
        self,
        kernel,
        chapter,
        prepare=None,
        describe_missing=None,
        call_timeout=None,
        host_cuda=None,
    ):
        self.kernel = kernel
        self.chapter = chapter
        self.prepare = prepare or (lambda k: None)
        self.describe_missing = describe_missing
        self.call_timeout = call_timeout
        self.host_cuda = host_cuda
        self.restarts = 0
        self.names = sorted({n for q in chapter.questions for n in q.functions})
        self._broken = False
        self.environment = {}
        self.defined_names = set()
        self.install()

    def install(self):
        """Inject the harness into the kernel and ask which names the notebook defined."""
        harness_src, drivers_src = runner.kernel_sources(self.chapter.id)
        code = _INSTALL.format(
            harness=repr(harness_src), drivers=repr(drivers_src), chapter=repr(self.chapter.id)
        )
        done = self.kernel.execute(code, 120)
        if done.status != "ok":
            raise RuntimeError(f"the grading harness could not be installed: {done.describe()}")
        try:
            found = self._call("driver:__descent_defined__", [self.names], {}, 60)
            self.defined_names = {n for n in found if isinstance(n, str)}
        except Exception:  # noqa: BLE001 -- a notebook that broke the harness defines nothing
            self.defined_names = set()
        try:
            env = self._call("driver:__descent_environment__", [], {}, 60)
            self.environment = env if isinstance(env, dict) else {}
        except Exception:  # noqa: BLE001
            self.environment = {}

    @property
    def cuda(self):
        kernel_cuda = bool(self.environment.get("cuda"))
        return kernel_cuda if self.host_cuda is None else kernel_cuda and self.host_cuda

    def defined(self, name):
        return name in self.defined_names

    def missing_reason(self, name):
        if self.describe_missing is not None:
            return self.describe_missing(name)
        return f"`{name}` is not defined in the notebook"

    def _recover(self):
        """Restart the kernel and bring it back; KernelDied if the notebook's budget (time or
        restarts) does not allow it: the question is the student's loss, never the grader's."""
        self.restarts += 1
        try:
            self.kernel.restart()
            self.prepare(self.kernel)
            self.install()
        except BudgetSpent as exc:
            raise spec.KernelDied(f"not run: {exc}", spec.CRASHED) from None
        except RuntimeError as exc:  # the harness could not be installed again
            raise spec.KernelDied(f"not run: the kernel could not be restarted ({exc})") from None
        self._broken = False

    def call(self, target, args, kwargs, timeout, forbid=()):
        budget = self.kernel.budget
        if budget is not None and budget.spent:
            raise spec.StudentTimeout(f"not run: {budget.why()}")
        if self._broken:
            self._recover()
        if self.call_timeout is not None:
            timeout = min(timeout or self.call_timeout, self.call_timeout)
        return self._call(target, args, kwargs, timeout or spec.DEFAULT_CALL_TIMEOUT, forbid)

    def _call(self, target, args, kwargs, timeout, forbid=()):
        from autograder import wire

        request, out = self.kernel.new_call()
        wire.dump(runner.request(target, args, kwargs, forbid), os.path.join(request, "request"))
        done = self.kernel.execute(f"__descent_harness__.call({request!r}, {out!r})", timeout)
        shutil.rmtree(request, ignore_errors=True)
        name = target.removeprefix("driver:")
        if done.status == "timeout":
            self._broken = True
            budget = self.kernel.budget
            if budget is not None and budget.spent:
                raise spec.StudentTimeout(f"`{name}` ran past the end of {budget.why()[4:]}")
            raise spec.StudentTimeout(f"`{name}` ran past the {timeout:g} s limit")
        if done.status == "out of memory":
            self._broken = True
            raise spec.KernelDied(f"`{name}` ran out of memory", spec.OUT_OF_MEMORY)
        if done.status == "died":
            self._broken = True
            raise spec.KernelDied(f"`{name}` {done.describe()}", spec.CRASHED)
        private = self.kernel.collect(out)
        shutil.rmtree(out, ignore_errors=True)
        try:
            if done.status == "error":
                raise spec.StudentError(
                    {"type": done.ename, "mro": [done.ename], "message": done.evalue}, target
                )
            try:
                return runner.read_status(private, target)
            except MemoryError:  # the grader's own limit: the result is the student's loss
                info = {"type": "MemoryError", "mro": ["MemoryError"], "message": "too large"}
                raise spec.StudentError(info, target) from None
        finally:
            shutil.rmtree(private, ignore_errors=True)


# Run in the kernel after the notebook's cells: fresh module objects, as runner.make_harness.
_INSTALL = """
def __descent_install__():
    import builtins, sys, types
    h = types.ModuleType("_descent_harness")
    builtins.exec(builtins.compile({harness}, "<descent-harness>", "exec"), h.__dict__)
    d = types.ModuleType("_descent_drivers_" + {chapter})
    builtins.exec(builtins.compile({drivers}, "<descent-drivers>", "exec"), d.__dict__)
    harness = h.Harness(d, builtins.globals())

    def environment(ns):
        info = harness.environment()
        torch = sys.modules.get("torch")
        if torch is not None:
            info["torch_deterministic"] = bool(torch.are_deterministic_algorithms_enabled())
            info["cudnn_deterministic"] = bool(torch.backends.cudnn.deterministic)
            info["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
        return info

    harness.drivers["__descent_defined__"] = lambda ns, names: [n for n in names if n in ns]
    harness.drivers["__descent_environment__"] = environment
    return harness
__descent_harness__ = __descent_install__()
del __descent_install__
"""


class KernelPool:
    """Kernels started ahead of time; each is handed out once (``take``) and never reused.

    ``grade_notebook(path, kernel=pool.take())`` grades on a kernel that is already up; the pool
    starts a replacement at once. Close the pool (or use it as a context manager) when done.
    """

    def __init__(self, size=1, sandbox=None, warm=("numpy", "torch"), limit_memory=False):
        self.size = max(0, int(size))
        # ``limit_memory``: hold this process to limit_grader_memory(size). Off by default: the
        # limit is inherited by every child (a browser in the same test session would fail).
        self.memory_limit = limit_grader_memory(self.size) if limit_memory else None
        self.sandbox = sandbox if sandbox is not None else Sandbox.detect()
        self.warm = warm
        self._lock = threading.Lock()
        self._ready = []
        self._closed = False
        for _ in range(self.size):
            self._ready.append(self._spawn())

    def _spawn(self):
        return Kernel(self.sandbox, warm=self.warm).start()

    def take(self):
        """A started kernel for one submission (the caller closes it; grade_notebook does)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the kernel pool is closed")
            kernel = self._ready.pop(0) if self._ready else self._spawn()
            if self.size:
                self._ready.append(self._spawn())
        return kernel

    def close(self):
        with self._lock:
            self._closed = True
            kernels, self._ready = self._ready, []
        for kernel in kernels:
            kernel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
