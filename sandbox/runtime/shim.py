"""shim.py - nemo's python runtime: import module:handler once, then serve framed requests on fd 3.

Started by nemo-sbx-runtime (already confined) as:
    python -I -S -B nemo-sbx-shim.py <code> <handler> <max_payload_bytes>
The frames are those of include/nemo/function.h. The handler takes the request as bytes and
returns bytes, str or None; an exception is a function error with its text.
"""
import os
import struct
import sys

MAGIC = 0x31464D4E
HDR = struct.Struct("<IHHII")
READY, INIT_ERROR, REQUEST, RESPONSE = 2, 3, 4, 5
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

    mod = importlib.import_module(module)
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise LookupError("handler '%s' not found in module %s" % (func, module))
    return fn


def main():
    code, handler, max_payload = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        fn = load(code, handler)
    except BaseException as e:  # anything at import is a failed init, named
        msg = "code does not load: %s: %s" % (type(e).__name__, e)
        if isinstance(e, LookupError) and str(e).startswith("handler"):
            msg = str(e)
        send(INIT_ERROR, 0, msg.encode()[:500])
        return
    send(READY, 0)
    while True:
        hdr = recv_exact(HDR.size)
        if hdr is None:
            return
        magic, kind, _, length, _ = HDR.unpack(hdr)
        if magic != MAGIC or kind != REQUEST or length > max_payload:
            sys.exit(3)
        req = recv_exact(length) if length else b""
        try:
            out = fn(req)
            if out is None:
                out = b""
            elif isinstance(out, str):
                out = out.encode()
            else:
                out = bytes(out)
            send(RESPONSE, 0, out)
        except Exception as e:
            send(RESPONSE, 1, ("%s: %s" % (type(e).__name__, e)).encode()[:4096])


main()
