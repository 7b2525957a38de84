"""shim.py - nemo's python runtime: import module:handler once, then serve framed requests on fd 3.

Started by nemo-sbx-runtime (already confined) as:
    python -I -S -B nemo-sbx-shim.py <code> <handler> <max_payload_bytes> [zygote <memory_mb>]
    python -I -S -B nemo-sbx-shim.py <code> <handler> <max_payload_bytes> packet <batch> <spin_us>
With "packet", the handler takes a batch, a list of bytes (the NF's packets), and returns a
list of bytes, str or None (no reply), one for each at most; it is fed by the NF's rings on
fds 5, 6, 7 (sandbox/runtime/packet.h) through nemo-sbx-pkt.so's loop.
With "zygote", the module is imported once and no request is served here: each empty REQUEST
frame with two fds attached makes an instance (nemo-sbx-zygote.so clones it with its own
namespaces, /proc, /tmp, session, no capabilities and the host's seccomp filter; python's
own before- and after-fork steps run around it, as os.fork runs them), which answers READY on
its own socket and serves from there. With status ZYG_PARK the instance is a ready fork: set
up, python's after-fork steps done, its files' pages mapped, it waits for its hand-over
(zygote.h) before READY.
The frames are those of include/nemo/function.h. The handler takes the request as bytes and
returns bytes, str or None; an exception is a function error with its text.

A handler may call another function of its namespace: `import nemo; nemo.call(name, payload)`
returns the callee's response as bytes (payload: bytes, str, or a dict sent as JSON) and
raises nemo.CallError (.code: NEMO_CALL_* or the callee's non-zero return, .output: its
message) when the call fails. It is the C runtime's nemo_call (call.c, in nemo-sbx-pkt.so,
loaded at the first call): the same leases and boxes (include/nemo/chain.h). While an
instance is leased to a caller, this loop serves the box's calls beside the socket's frames.

Two variables from the platform change that:
  NEMO_HANDLER_STYLE=dict  OpenWhisk's convention: main(args: dict) -> dict; the request is a
                           JSON object and the result is sent back as JSON.
  NEMO_LOG_LIMIT=<bytes>   what the function prints on stdout/stderr is kept, one
                           "<UTC time>Z stdout: <line>" per line, up to that many bytes, and
                           sent before the response: a 4-byte length, the lines, the response.
"""
import datetime
import io
import json
import os
import struct
import sys

MAGIC = 0x31464D4E
HDR = struct.Struct("<IHHII")
READY, INIT_ERROR, REQUEST, RESPONSE = 2, 3, 4, 5
CHAIN_SERVE, CHAIN_END = 8, 9
FD = 3


def send(kind, status, data=b""):
    buf = HDR.pack(MAGIC, kind, 0, len(data), status) + data
    view = memoryview(buf)
    while view:
        view = view[os.write(FD, view):]


def recv_exact(n):
    parts = []
    while n:
        chunk = os.read(FD, n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


class LogLines(io.TextIOBase):
    """stdout or stderr of the function: whole lines with a timestamp, up to the limit."""

    def __init__(self, stream, sink):
        self.stream, self.sink, self.part = stream, sink, ""

    def writable(self):
        return True

    def write(self, text):
        self.part += text
        while "\n" in self.part:
            line, self.part = self.part.split("\n", 1)
            self.sink.add(self.stream, line)
        return len(text)

    def flush_part(self):
        if self.part:
            self.sink.add(self.stream, self.part)
            self.part = ""


class LogSink:
    def __init__(self, limit):
        self.limit, self.lines, self.size, self.dropped = limit, [], 0, 0

    def add(self, stream, line):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
        entry = "%sZ %s: %s" % (now, stream, line)
        n = len(entry.encode()) + 1
        if self.size + n > self.limit:
            self.dropped += 1
            return
        self.lines.append(entry)
        self.size += n

    def take(self, room):
        """The lines, at most `room` bytes of them, and a clean slate for the next request."""
        if self.dropped:
            self.add("stderr", "Logs were truncated: %d lines over the limit" % self.dropped)
        text = "\n".join(self.lines).encode()[: max(room, 0)]
        self.lines, self.size, self.dropped = [], 0, 0
        return text


def load(code, handler):
    if ":" in handler:
        module, func = handler.split(":", 1)
    else:
        module, func = os.path.basename(code).rsplit(".py", 1)[0], handler
    where = code if os.path.isdir(code) else os.path.dirname(code)
    if not os.path.exists(code):
        raise FileNotFoundError("no such file: %s" % code)
    sys.path.insert(0, where)
    import importlib
    import importlib.util

    if module == "__main__":
        # an OpenWhisk zip: its __main__.py, beside the other files it imports
        path = os.path.join(where, "__main__.py")
        spec = importlib.util.spec_from_file_location("__nemo_main__", path)
        if spec is None or not os.path.exists(path):
            raise FileNotFoundError("no __main__.py at the top of the archive")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        mod = importlib.import_module(module)
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise LookupError("handler '%s' not found in module %s" % (func, module))
    return fn


def end_of_call():
    """Kill every process the call left (kill(-1) from PID 1 spares PID 1) and reap them,
    until none is left (one forked in between is caught by the next round)."""
    while True:
        try:
            os.kill(-1, 9)
        except OSError:
            return
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def call_dict(fn, req):
    """OpenWhisk's convention: a JSON object in, a dict out, sent back as JSON."""
    args = json.loads(req) if req.strip() else {}
    if not isinstance(args, dict):
        raise TypeError("the action takes a JSON object, not %s" % type(args).__name__)
    out = fn(args)
    if not isinstance(out, dict):
        raise TypeError("The action did not return a dictionary.")
    return json.dumps(out).encode()


ZYGOTE_LIB = "/.nemo/nemo-sbx-zygote.so"
HOST_FILTER_FD = 4
ZYG_PARK = 3  # zygote.h: the REQUEST that asks for a ready fork


def zygote(memory_mb):
    """Make instances until the platform closes the socket; returns in each instance."""
    import ctypes
    import gc
    import signal
    import socket

    lib = ctypes.PyDLL(ZYGOTE_LIB)  # the GIL stays held: the instance goes on in python
    lib.nemo_zygote_fork.argtypes = [ctypes.c_int] * 3 + [ctypes.c_uint, ctypes.c_int]
    lib.nemo_zygote_fork_ready.argtypes = lib.nemo_zygote_fork.argtypes
    lib.nemo_zygote_park.argtypes = [ctypes.c_int]
    lib.nemo_zygote_prefault_source()  # its ready forks map the file pages it maps
    api = ctypes.pythonapi  # what os.fork does around its fork, around ours
    end_of_call()
    signal.signal(signal.SIGCHLD, lambda sig, frame: lib.nemo_zygote_reap())
    # what the import made is kept for good: a collection in a fork would otherwise walk
    # (and so copy) every page of the zygote's heap
    gc.collect()
    gc.freeze()
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(FD))
    send(READY, 0)
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, HDR.size, 2)
        if not msg:
            os._exit(0)
        if len(msg) != HDR.size or len(fds) != 2:
            os._exit(3)
        magic, kind, flags, length, status = HDR.unpack(msg)
        if magic != MAGIC or kind != REQUEST or flags or length or status not in (0, ZYG_PARK):
            os._exit(3)
        make = lib.nemo_zygote_fork_ready if status == ZYG_PARK else lib.nemo_zygote_fork
        api.PyOS_BeforeFork()
        pid = make(fds[0], fds[1], HOST_FILTER_FD, memory_mb, ctl.fileno())
        if pid == 0:
            api.PyOS_AfterFork_Child()  # random reseeded, threads state reset, as os.fork
            ctl.detach()  # closed already, not to be closed again under another's number
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            if status == ZYG_PARK:
                # a ready fork: its files' pages mapped, parked until its hand-over
                lib.nemo_zygote_park(1)
            return
        api.PyOS_AfterFork_Parent()


PKT_LIB = "/.nemo/nemo-sbx-pkt.so"  # sandbox/runtime/packet.h


def packet(fn, batch, spin_us):
    """Packet mode: fn(list of bytes) -> list of (bytes or None), one call per batch of the
    NF's ring (fds 5, 6, 7: packet.h), through the C loop of nemo-sbx-pkt.so. Never returns."""
    import ctypes

    class Packet(ctypes.Structure):  # struct nemo_packet, include/nemo/function.h
        _fields_ = [("data", ctypes.c_void_p), ("len", ctypes.c_uint32),
                    ("flags", ctypes.c_uint32), ("src_ip", ctypes.c_uint32),
                    ("dst_ip", ctypes.c_uint32), ("src_port", ctypes.c_uint16),
                    ("dst_port", ctypes.c_uint16), ("proto", ctypes.c_uint8),
                    ("pad", ctypes.c_uint8), ("rule", ctypes.c_uint16)]

    class Reply(ctypes.Structure):  # struct nemo_reply
        _fields_ = [("data", ctypes.c_void_p), ("cap", ctypes.c_uint32),
                    ("len", ctypes.c_uint32)]

    handler_t = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Packet), ctypes.POINTER(Reply),
                                 ctypes.c_uint)

    def on_batch(pkts, replies, n):
        try:
            out = fn([ctypes.string_at(pkts[i].data, pkts[i].len) for i in range(n)])
            if not isinstance(out, (list, tuple)) or len(out) > n:
                return 1  # a function error: the batch's replies are dropped
            for i, answer in enumerate(out):
                if answer is None:
                    continue
                data = answer.encode() if isinstance(answer, str) else bytes(answer)
                if len(data) <= replies[i].cap:
                    ctypes.memmove(replies[i].data, data, len(data))
                replies[i].len = len(data)  # over cap: flagged too big to the NF
            return 0
        except Exception:  # noqa: BLE001 - the function's error, counted for the batch
            return 1

    lib = ctypes.PyDLL(PKT_LIB)  # the GIL stays held: the handler is python
    lib.nemo_pkt_serve.argtypes = [handler_t, ctypes.c_uint, ctypes.c_uint]
    rc = lib.nemo_pkt_attach()
    if rc:
        send(INIT_ERROR, 0, ("fd 5 is not a function ring this runtime maps: %s"
                             % os.strerror(-rc)).encode())
        os._exit(0)
    callback = handler_t(on_batch)
    send(READY, 0)
    os._exit(lib.nemo_pkt_serve(callback, batch, spin_us))


class Calls:
    """nemo_call for python: call.c's caller and callee sides through ctypes (call.h)."""

    def __init__(self):
        import ctypes

        self.ct = ctypes
        lib = ctypes.PyDLL(PKT_LIB)  # the GIL stays held: the box's handler is python

        class Response(ctypes.Structure):  # struct nemo_response
            _fields_ = [("data", ctypes.c_void_p), ("cap", ctypes.c_size_t),
                        ("len", ctypes.c_size_t)]

        self.Response = Response
        self.run_t = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                                      ctypes.POINTER(Response))
        lib.nemo_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                  ctypes.POINTER(Response)]
        lib.nemo_call_error.restype = ctypes.c_char_p
        lib.nemo_call_enter.argtypes = [ctypes.c_uint64]
        lib.nemo_box_attach.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        lib.nemo_box_serve.argtypes = [self.run_t]
        lib.nemo_call_setup(FD)
        self.lib = lib
        self.run = None

    def call(self, name, payload):
        ct = self.ct
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        payload = bytes(payload)
        resp = self.Response()
        rc = self.lib.nemo_call(name.encode(), payload, len(payload), ct.byref(resp))
        out = ct.string_at(resp.data, resp.len) if resp.len else b""
        if rc:
            raise CallError(rc, self.lib.nemo_call_error().decode(errors="replace"), out)
        return out

    def enter(self):
        self.lib.nemo_call_enter(0)

    def leave(self):
        self.lib.nemo_call_leave()

    def attach(self, fds, serve_one):
        """CHAIN_SERVE: map the box; its calls run serve_one(bytes) -> (status, bytes)."""
        ct = self.ct

        def run(data, length, resp):
            status, out = serve_one(ct.string_at(data, length) if length else b"")
            r = resp.contents
            if len(out) <= r.cap:
                ct.memmove(r.data, out, len(out))
            r.len = len(out)  # over cap: the caller hears it was too large
            return status

        self.run = self.run_t(run)
        arr = (ct.c_int * len(fds))(*fds)
        return self.lib.nemo_box_attach(arr, len(fds)) == 0

    def fd(self):
        return self.lib.nemo_box_fd()

    def serve(self):
        self.lib.nemo_box_serve(self.run)

    def detach(self):
        self.lib.nemo_box_detach()


class CallError(Exception):
    """nemo.call failed: .code is a NEMO_CALL_* (< 0, include/nemo/function.h) or the
    callee's own non-zero return, .output what it answered (its message)."""

    def __init__(self, code, message, output=b""):
        super().__init__(message)
        self.code, self.output = code, output


class Nemo:
    """What stands behind the `nemo` module: call.c is loaded at the first call or lease."""

    def __init__(self):
        self.calls = None
        self.in_call = False

    def load(self):
        if self.calls is None:
            self.calls = Calls()
            if self.in_call:
                self.calls.enter()
        return self.calls


def install_nemo_module(state):
    """`import nemo` in a function: nemo.call(name, payload) and nemo.CallError."""
    import types

    mod = types.ModuleType("nemo")
    mod.call = lambda name, payload=b"": state.load().call(name, payload)
    mod.CallError = CallError
    sys.modules["nemo"] = mod


def main():
    code, handler, max_payload = sys.argv[1], sys.argv[2], int(sys.argv[3])
    is_zygote = len(sys.argv) > 5 and sys.argv[4] == "zygote"
    is_packet = len(sys.argv) > 6 and sys.argv[4] == "packet"
    dict_style = os.environ.get("NEMO_HANDLER_STYLE") == "dict"
    log_limit = int(os.environ.get("NEMO_LOG_LIMIT", "0") or 0)
    sink = None
    if log_limit > 0:
        sink = LogSink(log_limit)
        sys.stdout = LogLines("stdout", sink)
        sys.stderr = LogLines("stderr", sink)
    state = Nemo()
    install_nemo_module(state)  # before the import: the module may import nemo at its top
    try:
        fn = load(code, handler)
    except BaseException as e:  # anything at import is a failed init, named
        msg = "code does not load: %s: %s" % (type(e).__name__, e)
        if isinstance(e, LookupError) and str(e).startswith("handler"):
            msg = str(e)
        send(INIT_ERROR, 0, msg.encode()[:500])
        return
    if is_packet:
        packet(fn, int(sys.argv[5]), int(sys.argv[6]))
    if is_zygote:
        zygote(int(sys.argv[5]))
    import select
    import socket

    # fd 3 itself (a dup would be one more fd in the instance): it lives as long as we do
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=FD)

    def run(req, boxed=False):
        """The handler on one request: (status, response bytes). A call from a box runs
        within that call already (call.c entered it with its seq: calls made now are its)."""
        state.in_call = True
        if state.calls and not boxed:
            state.calls.enter()
        try:
            if dict_style:
                out = call_dict(fn, req)
            else:
                out = fn(req)
            if out is None:
                out = b""
            elif isinstance(out, str):
                out = out.encode()
            else:
                out = bytes(out)
            status = 0
        except Exception as e:
            status = 1
            msg = "%s: %s" % (type(e).__name__, e)
            out = (json.dumps({"error": msg}) if dict_style else msg).encode()[:4096]
        finally:
            state.in_call = False
            if state.calls and not boxed:
                state.calls.leave()
        return status, out

    def run_boxed(req):
        """A call from another function: what it printed is not kept."""
        status, out = run(req, boxed=True)
        end_of_call()
        if sink is not None:
            sys.stdout.flush_part()
            sys.stderr.flush_part()
            sink.take(0)
        return status, out

    send(READY, 0)
    while True:
        box = state.calls.fd() if state.calls else -1
        if box >= 0:
            ready, _, _ = select.select([FD, box], [], [])
            if box in ready:
                state.calls.serve()
            if FD not in ready:
                continue
        hdr, fds, _, _ = socket.recv_fds(ctl, HDR.size, 3)
        if len(hdr) < HDR.size and hdr:
            hdr += recv_exact(HDR.size - len(hdr)) or b""
        if not hdr:
            return
        magic, kind, _, length, _ = HDR.unpack(hdr)
        if magic != MAGIC or length > max_payload:
            sys.exit(3)
        if kind == CHAIN_SERVE:
            if not state.load().attach(fds, run_boxed):
                sys.exit(3)
            continue
        for f in fds:
            os.close(f)
        if kind == CHAIN_END:
            if state.calls:
                state.calls.detach()
            continue
        if kind != REQUEST:
            sys.exit(3)
        req = recv_exact(length) if length else b""
        status, out = run(req)
        end_of_call()
        if sink is not None:
            sys.stdout.flush_part()
            sys.stderr.flush_part()
            logs = sink.take(max_payload - len(out) - 4)
            out = struct.pack("<I", len(logs)) + logs + out
        send(RESPONSE, status, out)


main()
