"""test-tenant.py - one tenant's hostile moves against its neighbours (tests/test_sandbox.c)."""
import json
import os
import random
import time


def nap(req):
    """A call that stays in flight for a while: the neighbour of the hostile calls."""
    time.sleep(float(req or b"0.5"))
    return "rested"


def kill_group(req):
    """kill(0, 9) and kill(-1, 9): every process this sandbox may reach."""
    for target in (0, -1):
        try:
            os.kill(target, 9)
        except OSError:
            pass
    return "still here"


def background(req):
    """Leave a process spinning behind and answer at once."""
    pid = os.fork()
    if pid == 0:
        while True:
            pass
    return "left %d spinning" % pid


def search(req):
    """Every file this sandbox can see: names against the needles, contents too outside /usr."""
    needles = [n.encode() for n in json.loads(req)["needles"]]
    found, files, names = [], 0, 0
    for top, dirs, entries in os.walk("/", onerror=lambda e: None):
        if top in ("/proc/sys", "/proc/sysrq-trigger"):
            dirs[:] = []
        for entry in entries + dirs:
            names += 1
            for n in needles:
                if n in entry.encode():
                    found.append(os.path.join(top, entry))
        # /usr is the host's distribution, bound read-only: names only (reading it all
        # would take minutes), the rest is read whole
        if top == "/usr" or top.startswith("/usr/"):
            continue
        for entry in entries:
            path = os.path.join(top, entry)
            try:
                with open(path, "rb") as f:
                    data = f.read(1 << 20)
            except OSError:
                continue
            files += 1
            for n in needles:
                if n in data:
                    found.append(path)
    seen = [p for p in ("/etc/passwd", "/var/lib/nemo", "/home", "/root", "/work", "/var",
                        "/etc") if os.path.exists(p)]
    return json.dumps({"found": sorted(set(found)), "files": files, "names": names,
                       "host_paths_seen": seen})


CALLS = [0]


def corrupt(req):
    """Count calls, then wreck module state: the json module and this module's globals."""
    CALLS[0] += 1
    out = "calls=%d json=%s" % (CALLS[0], json.dumps([1]))
    json.dumps = None
    globals()["time"] = None
    return out


def open_fds(req):
    """The fds this instance holds: nothing of nemod's, of the launcher's or of its zygote's."""
    held = []
    for fd in range(1024):
        try:
            os.fstat(fd)
        except OSError:
            continue
        held.append(str(fd))
    return " ".join(held)


def draw(req):
    """A draw from random: seeded at load (in a zygote, before any fork), again in each fork."""
    return repr(random.random())
