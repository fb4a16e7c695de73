"""Python helpers for integration tests of simulated guests: a xensim
daemon in a temporary rundir, `xensim xl` / `xensim guest` calls, the
guest's JSON status, and a small xenstore client speaking the wire
protocol directly (fast enough for thousands of stop/continue cycles).
Every wait is bounded and woken by xenstore watch events; conditions on
the guest's counters (no event source) are polled with a bound."""
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

XS_READ, XS_WATCH, XS_UNWATCH, XS_WRITE, XS_RM = 2, 4, 5, 11, 13
XS_WATCH_EVENT, XS_ERROR = 15, 16


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


class Xs:
    """One connection to xenstored; watch events are queued while waiting
    for replies."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.events = []
        self.req = 0
        self.watched = set()

    def _msg(self, timeout):
        while len(self.buf) < 16 or len(self.buf) < 16 + struct.unpack("<IIII", self.buf[:16])[3]:
            r, _, _ = select.select([self.s], [], [], timeout)
            if not r:
                return None
            d = self.s.recv(65536)
            if not d:
                fail("xenstored closed the connection")
            self.buf += d
        t, rid, tx, ln = struct.unpack("<IIII", self.buf[:16])
        body = self.buf[16:16 + ln]
        self.buf = self.buf[16 + ln:]
        return t, body

    def call(self, typ, payload):
        self.req += 1
        self.s.sendall(struct.pack("<IIII", typ, self.req, 0, len(payload)) + payload)
        while True:
            m = self._msg(30)
            if m is None:
                fail("xenstored did not answer within 30 s")
            if m[0] == XS_WATCH_EVENT:
                self.events.append(m[1])
                continue
            return m

    def read(self, path):
        t, body = self.call(XS_READ, path.encode() + b"\0")
        return None if t == XS_ERROR else body.decode(errors="replace")

    def write(self, path, value):
        t, body = self.call(XS_WRITE, path.encode() + b"\0" + value.encode())
        if t == XS_ERROR:
            fail("xenstore write %s: %s" % (path, body))

    def watch(self, path, token="t"):
        """Once per path: later waits re-read on any event."""
        if path in self.watched:
            return
        self.watched.add(path)
        t, body = self.call(XS_WATCH, path.encode() + b"\0" + token.encode() + b"\0")
        if t == XS_ERROR:
            fail("xenstore watch %s: %s" % (path, body))

    def wait_event(self, timeout):
        if self.events:
            self.events.pop(0)
            return True
        m = self._msg(timeout)
        if m is None:
            return False
        if m[0] == XS_WATCH_EVENT:
            return True
        fail("unexpected xenstore message type %d" % m[0])

    def wait(self, path, pred, bound=30, what=None):
        """Until pred(value of path) holds; the watch is set up before the
        first read so no change slips between them."""
        self.watch(path)
        end = time.monotonic() + bound
        while True:
            v = self.read(path)
            if pred(v):
                return v
            left = end - time.monotonic()
            if left <= 0 or not self.wait_event(left):
                v = self.read(path)
                if pred(v):
                    return v
                fail("%s is %r, expected %s" % (path, v, what or "a change"))

    def wait_value(self, path, want, bound=30):
        return self.wait(path, lambda v: v == want, bound, repr(want))


class Sim:
    def __init__(self):
        self.build = os.environ.get("RSDM_BUILD")
        if not self.build:
            print("RSDM_BUILD not set")
            sys.exit(1)
        self.bin = os.path.join(self.build, "bin")
        self.xensim = os.path.join(self.bin, "xensim")
        self.tmp = tempfile.mkdtemp(prefix="guesttest.")
        self.run = os.path.join(self.tmp, "run")
        self.env = dict(os.environ, XENSIM_RUNDIR=self.run,
                        XENSTORED_PATH=self.run + "/xenstored/socket")
        self.pidfile = os.path.join(self.tmp, "pid")
        r = subprocess.run([self.xensim, "run", "--rundir", self.run, "--daemon",
                            "--pidfile", self.pidfile], env=self.env, capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            fail("xensim run: " + r.stderr)
        self.xs = Xs(self.run + "/xenstored/socket")
        self.dm_pids = []

    def create(self, cfg):
        """xl create; returns the domid (its dm is remembered for cleanup)."""
        d = int(self.xl("create", cfg).stdout.strip())
        self.note_dm(d)
        return d

    def note_dm(self, d):
        pid = self.xs.read("/local/domain/%d/image/device-model-pid" % d)
        if pid:
            self.dm_pids.append(int(pid))

    def dump(self):
        """On failure: every domain's hypervisor and workload state."""
        r = self.cmd("domain", "list", expect=None)
        print(r.stdout)
        for line in r.stdout.splitlines()[1:]:
            d = line.split()[0]
            print("guest %s: %s" % (d, self.cmd("guest", "status", d, "--json",
                                                expect=None).stdout.strip()))

    def close(self, keep=False):
        for pid in self.dm_pids:   # dms of a test that failed half-way
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        try:
            pid = int(open(self.pidfile).read())
            os.kill(pid, 15)
            subprocess.run(["timeout", "20", "tail", "--pid=%d" % pid, "-f", "/dev/null"])
        except (OSError, ValueError):
            pass
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def cmd(self, *args, expect=0, timeout=120):
        r = subprocess.run([self.xensim] + [str(a) for a in args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if expect is not None and r.returncode != expect:
            fail("xensim %s: exit %d (expected %d), stderr: %s" %
                 (" ".join(str(a) for a in args), r.returncode, expect, r.stderr))
        return r

    def xl(self, *args, expect=0):
        return self.cmd("xl", "--rundir", self.run, *args, expect=expect)

    def status(self, domid):
        return json.loads(self.cmd("guest", "status", domid, "--json").stdout)

    def info(self, domid):
        return json.loads(self.cmd("domain", "info", domid, "--json").stdout)

    def poll(self, what, fn, bound=60):
        """fn() until it returns a true value (bounded): for conditions on
        the guest's counters, which have no event to wait on."""
        end = time.monotonic() + bound
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > end:
                fail("timed out after %d s waiting for %s" % (bound, what))
            time.sleep(0.05)

    def cfg(self, name, workload, vcpus=2, memory=16, extra="", serial_file=False,
            dialect="qemu-xen-traditional", dm_args=()):
        """An xl.cfg for rsdm-sim with its serial on a socket the runner
        connects to (or, serial_file, appended to a file), in the dialect
        given (device_model_version), dm_args added to
        device_model_args_hvm; returns (path, console socket or file)."""
        con = os.path.join(self.tmp, name + ".con")
        serial = "file:" + con if serial_file else "unix:%s,server" % con
        path = os.path.join(self.tmp, name + ".cfg")
        with open(path, "w") as f:
            f.write('name = "%s"\ntype = "hvm"\nmemory = %d\nvcpus = %d\n'
                    'serial = "%s"\n'
                    'device_model_override = "%s"\n'
                    'device_model_version = "%s"\n'
                    'device_model_args_hvm = [ %s"--save-dir", "%s" ]\n'
                    'xensim_workload = "%s"\n%s' %
                    (name, memory, vcpus, serial, os.path.join(self.bin, "rsdm-sim"), dialect,
                     "".join('"%s", ' % a for a in dm_args),
                     os.path.join(self.run, "xl", "lib"), workload, extra))
        return path, con


def stream_lines(log):
    """The guest's numbered lines in a console log, as integers."""
    data = open(log, "rb").read().decode(errors="replace")
    lines = data.split("\n")
    if lines and lines[-1] != "" and len(lines[-1]) < 9:
        lines = lines[:-1]   # a line still being written
    return [int(l[1:]) for l in lines if len(l) == 9 and l[0] == "g" and l[1:].isdigit()]


def check_stream(log, what):
    """Every guest line exactly once and in order from 0."""
    nums = stream_lines(log)
    for i, n in enumerate(nums):
        if n != i:
            fail("%s: console line %d carries number %d (lost, repeated or reordered)" %
                 (what, i, n))
    return len(nums)


class Qmp:
    """A QMP client on a dm's monitor socket: capabilities negotiated,
    commands answered in order, events kept (in arrival order) for the
    test to inspect.  Every read is bounded."""

    def __init__(self, path, timeout=20):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")
        self.events = []
        greeting = self._line()
        if "QMP" not in greeting:
            fail("QMP %s: no greeting: %r" % (path, greeting))
        self.cmd("qmp_capabilities")

    def _line(self):
        line = self.f.readline()
        if not line:
            fail("QMP: the dm closed the connection")
        return json.loads(line)

    def cmd(self, name, **args):
        """The command's return value; an error answer fails the test."""
        r = self.exec(name, **args)
        if "error" in r:
            fail("QMP %s: %s" % (name, r["error"]))
        return r["return"]

    def exec(self, name, **args):
        """The whole answer ({"return": ...} or {"error": ...})."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\r\n")
        self.f.flush()
        while True:
            r = self._line()
            if "event" in r:
                self.events.append(r)
                continue
            return r

    def wait_event(self, name, bound=20):
        """Until an event called name has arrived (kept in self.events)."""
        end = time.monotonic() + bound
        while not any(e["event"] == name for e in self.events):
            left = end - time.monotonic()
            if left <= 0:
                fail("QMP: no %s event within %d s (got %s)" %
                     (name, bound, [e["event"] for e in self.events]))
            self.s.settimeout(left)
            try:
                r = self._line()
            except socket.timeout:
                continue
            if "event" in r:
                self.events.append(r)

    def close(self):
        self.f.close()
        self.s.close()
