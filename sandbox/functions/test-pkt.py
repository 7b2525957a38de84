"""test-pkt.py - test packet function for python: a batch in, one answer per packet out."""
import os


def handle_batch(batch):
    """b"uid": its uid; b"none": no reply; b"raise": the whole batch fails; else upper case."""
    out = []
    for pkt in batch:
        if pkt == b"uid":
            out.append("uid=%d gid=%d" % (os.getuid(), os.getgid()))
        elif pkt == b"none":
            out.append(None)
        elif pkt == b"raise":
            raise ValueError("asked to fail")
        elif pkt.startswith(b"open:"):
            try:
                with open(pkt[5:].decode(), "rb"):
                    out.append("open %s: ok" % pkt[5:].decode())
            except OSError as e:
                out.append("open %s: %s" % (pkt[5:].decode(), e.strerror))
        else:
            out.append(pkt.upper())
    return out
