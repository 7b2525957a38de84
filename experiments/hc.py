"""hc.py - the benches' view of an NF's harvest channel (include/nemo/harvest_channel.h):
the lcore records' cycle counters, and the sleep-floor lease nemod's harvester writes.

A bench that runs the NF without nemod writes the lease itself, to measure what nemod's
floor gives a CPU-bound loop on the NF's core (bench_nf.py table 7, bench_harvest.py figure 0).
"""
import mmap
import struct


def _base(mm, idx):
    header_size, record_size = struct.unpack_from("<II", mm, 12)
    return header_size + idx * record_size


def cycles(path, idx=0):
    """Record idx's (total, busy, idle_poll, sleep, iterations, busy iterations, sleeps),
    cumulative, read whole under the record's sequence count; and the header's tsc_hz."""
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        tsc_hz = struct.unpack_from("<Q", mm, 24)[0]
        base = _base(mm, idx)
        for _ in range(1000):
            seq = struct.unpack_from("<Q", mm, base)[0]
            counts = struct.unpack_from("<7Q", mm, base + 64)
            if seq % 2 == 0 and struct.unpack_from("<Q", mm, base)[0] == seq:
                return counts, tsc_hz
        raise RuntimeError("harvest channel %s: record %d kept busy" % (path, idx))
    finally:
        mm.close()


def set_floor(path, floor_ns, lease_s, idx=0):
    """What nemod's harvester does while sandboxes wait: record idx's line 7, a sleep floor
    until a TSC (0: none). The lease here is one long one; nemod renews a short one every
    window."""
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
    try:
        tsc_hz = struct.unpack_from("<Q", mm, 24)[0]
        base = _base(mm, idx)
        now_tsc = struct.unpack_from("<Q", mm, base + 40)[0]  # the record's last publish
        until = now_tsc + int(lease_s * tsc_hz) if floor_ns else 0
        struct.pack_into("<Q", mm, base + 7 * 64, floor_ns)
        struct.pack_into("<Q", mm, base + 7 * 64 + 8, until)
    finally:
        mm.close()
