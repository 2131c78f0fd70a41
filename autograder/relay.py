"""The relay between a student's kernel and the grader (run as a script by kernel_target).

``python -I autograder/relay.py CONFIG`` (CONFIG is JSON). It imports only ZeroMQ, limits its
own address space, connects a DEALER to the kernel's shell and a SUB to its iopub, and binds a
ROUTER and a PUB at paths that only the grader can reach. Everything the grader sends goes to
the kernel unchanged; from the kernel it forwards:

- a frame larger than ``frame`` bytes: never (ZMQ_MAXMSGSIZE drops it before it is read);
- a message of at most ``forward`` bytes: unchanged;
- a larger stream message: cut to its first ``prefix`` characters and signed again;
- a larger execute_reply: replaced by an error reply to the same request;
- anything else larger: dropped.

ZeroMQ bounds frames but not the frames of one message, so a kernel can still make this
process grow; at ``memory`` bytes it dies, and the grader, seeing it gone, stops the kernel.
It exits when the grader (its parent) is gone.
"""

import hashlib
import hmac
import json
import os
import resource
import sys

DELIM = b"<IDS|MSG>"
NOTE = "\n[... a block of output too large to keep was cut here]\n"


def text_after(raw, key, limit):
    """The JSON string value after ``key`` in the first 4 KiB of ``raw``, cut to ``limit``."""
    head = bytes(raw[:4096])
    start = head.find(key)
    quote = head.find(b'"', start + len(key)) if start >= 0 else -1
    if quote < 0:
        return None
    return bytes(raw[quote + 1 : quote + 1 + limit]).decode("utf-8", "replace")


class Relay:
    def __init__(self, cfg):
        import zmq

        self.zmq = zmq
        self.cfg = cfg
        self.key = cfg["key"].encode()
        self.ctx = zmq.Context()
        self.ctx.setsockopt(zmq.LINGER, 0)
        self.k_shell = self.socket(zmq.DEALER, cfg["hwm"])
        self.k_iopub = self.socket(zmq.SUB, cfg["hwm"])
        self.k_iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.g_shell = self.socket(zmq.ROUTER, 64)
        self.g_iopub = self.socket(zmq.PUB, 64)
        self.g_shell.bind(cfg["grader_shell"])
        self.g_iopub.bind(cfg["grader_iopub"])
        self.k_shell.connect(cfg["kernel_shell"])
        self.k_iopub.connect(cfg["kernel_iopub"])
        self.client = b""

    def socket(self, kind, hwm):
        sock = self.ctx.socket(kind)
        sock.setsockopt(self.zmq.MAXMSGSIZE, self.cfg["frame"])
        sock.setsockopt(self.zmq.RCVHWM, hwm)
        sock.setsockopt(self.zmq.SNDHWM, hwm)
        return sock

    def sign(self, parts):
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode()

    def shrink(self, frames, channel):
        """A message too large to forward: a cut stream message, an error reply, or None."""
        raw = [f.buffer for f in frames]
        try:
            d = [bytes(r[:16]) for r in raw].index(DELIM)
        except ValueError:
            return None
        if len(raw) < d + 6 or any(len(r) > 65536 for r in raw[d + 2 : d + 5]):
            return None
        header, parent = bytes(raw[d + 2]), bytes(raw[d + 3])
        try:
            kind = json.loads(header).get("msg_type")
        except (ValueError, AttributeError):
            return None
        if channel == "iopub" and kind == "stream":
            name = (text_after(raw[d + 5], b'"name"', 16) or "stdout").split('"')[0]
            text = text_after(raw[d + 5], b'"text"', self.cfg["prefix"]) or ""
            text = text.replace("\\n", "\n").replace('\\"', '"') + NOTE
            content = {"name": name, "text": text}
        elif channel == "shell" and kind == "execute_reply":
            content = {
                "status": "error",
                "ename": "MessageTooLarge",
                "evalue": "the kernel's reply was larger than the grader accepts",
                "traceback": [],
                "execution_count": 0,
            }
        else:
            return None
        parts = [header, parent, b"{}", json.dumps(content).encode()]
        return [bytes(r) for r in raw[:d]] + [DELIM, self.sign(parts)] + parts

    def forward(self, src, dest, channel, prefix=()):
        """Move one message from the kernel to the grader; False when none is waiting."""
        zmq = self.zmq
        try:
            frames = src.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        if sum(len(f.buffer) for f in frames) > self.cfg["forward"]:
            try:
                frames = self.shrink(frames, channel)
            except Exception:  # noqa: BLE001 -- whatever the kernel sent, the relay goes on
                frames = None
        if frames is not None:
            try:
                dest.send_multipart(list(prefix) + list(frames), zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the grader's queue is full: dropped
        return True

    def to_kernel(self):
        try:
            frames = self.g_shell.recv_multipart(self.zmq.NOBLOCK)
        except self.zmq.Again:
            return False
        self.client = frames[0]
        self.k_shell.send_multipart(frames[1:])
        return True

    def run(self):
        poller = self.zmq.Poller()
        steps = {
            self.g_shell: self.to_kernel,
            self.k_shell: lambda: self.forward(
                self.k_shell, self.g_shell, "shell", prefix=[self.client]
            ),
            self.k_iopub: lambda: self.forward(self.k_iopub, self.g_iopub, "iopub"),
        }
        for sock in steps:
            poller.register(sock, self.zmq.POLLIN)
        parent = self.cfg["parent"]
        while os.getppid() == parent:
            for sock, _ in poller.poll(500):
                for _ in range(64):  # then the other sockets get their turn
                    if not steps[sock]():
                        break


def main(argv):
    cfg = json.loads(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (cfg["memory"], cfg["memory"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    Relay(cfg).run()


if __name__ == "__main__":
    main(sys.argv)
