#!/usr/bin/python3
"""bench_nf.py - make bench-nf: nemo-nf against dpdk-testpmd, and sleep against poll, in one run.

Prints eight tables, each with ratios against a baseline measured in the same run:
  1. capacity of the fwd chain on one lcore vs dpdk-testpmd io forwarding, same memif topology;
  2. CPU used by an idle NF, sleep vs poll;
  3. loss and p99 latency at 10/50/90 % of measured capacity, sleep vs poll;
  4. spare_ratio reported against offered load;
  5. idle detection, by time (now) vs by a count of 256 empty polls (before): at 30 % load
     with a sleep-floor lease set as nemod sets it and a CPU-bound loop on the NF's core,
     the idle_poll share and the harvest_ratio (the loop's CPU time / the NF's spare); then
     the latency with no lease;
  6. what timing the NF's own delay costs it (1 in 64 packets' nemo-gen stamps read, the
     default, and every packet's) against not timing it: capacity and busy cycles per packet
     at full load, interleaved.
  7. the sleep floor nemod asks while sandboxes work (--floors): the loop's share of the
     spare, the NF's sleeps per second and its own p99 (stamp to send) against the NF alone.
  8. a SCHED_FIFO lcore with the sleep policy alone at 30 % load, against SCHED_OTHER (and an
     older nemo-nf with --old-nf): latency, its share asleep, its busiest second's run time,
     and the sleeps its RT budget asked for.
  --only 5 runs the fifth alone (after a short capacity calibration); --only 6 the sixth.
The machine has 2 cores: nemo-gen runs on cpu 0, the NF lcore (or testpmd's forwarding core)
on cpu 1. Figures from a shared, noisy machine vary from run to run; ratios vary less.
"""
import argparse
import json
import mmap
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

import hc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
TMP = tempfile.mkdtemp(prefix="nemo-bench-nf-")
SOCK = os.path.join(TMP, "nf.memif")
PROCS = []
HC_MAGIC = 0x314843304F4D454E  # include/nemo/harvest_channel.h
HC_VERSION = 3


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for prefix in ("nemo-nf-bench", "nemo-bench-testpmd"):
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    try:
        os.unlink("/dev/shm/nemo-hc-bench")
    except FileNotFoundError:
        pass
    shutil.rmtree(TMP, ignore_errors=True)


def nf_config(idle, sched="other", delay_every=None):
    lcore = {"lcore": 1, "cpu": 1, "rx": [{"port": 0}], "chain": ["fwd"], "idle": idle,
             "sched": {"policy": sched, "nice": -20} if sched == "other"
             else {"policy": "fifo", "priority": 50}}
    cfg = {"name": "bench", "stats_interval_ms": 0, "memory_mb": 512,
           "ports": [{"vdev": "net_memif0,role=server,socket=%s,socket-abstract=no" % SOCK,
                      "rx_ring": 16384, "line_rate_pps": 25000000}],
           "lcores": [lcore]}
    if delay_every is not None:
        cfg["delay_sample_every"] = delay_every
    path = os.path.join(TMP, "nf-%s%s.json" % (idle if isinstance(idle, str) else
                                               "-".join(str(v) for v in idle.values()),
                                               "" if delay_every is None else
                                               "-d%d" % delay_every))
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def wait_for(path, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise RuntimeError("%s exited: %s" % (proc.args[0], proc.stdout.read()))
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + path)


def start_nf(idle, sched="other", delay_every=None, nf=None):
    p = subprocess.Popen([nf or os.path.join(BIN, "nemo-nf"), "--config",
                          nf_config(idle, sched, delay_every)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    PROCS.append(p)
    wait_for("/dev/shm/nemo-hc-bench", p)
    wait_for(SOCK, p)
    return p


def start_testpmd():
    # testpmd exits when its stdin closes: keep a pipe open until we stop it
    p = subprocess.Popen(["dpdk-testpmd", "--no-huge", "-m", "1024", "-l", "0,1",
                          "--file-prefix", "nemo-bench-testpmd", "--no-pci", "--vdev",
                          "net_memif0,role=server,socket=%s,socket-abstract=no" % SOCK, "--",
                          "--forward-mode=io", "--auto-start", "--nb-cores=1",
                          "--total-num-mbufs=65536"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    PROCS.append(p)
    # its memif socket exists before the port starts; a client that connects too early is
    # refused for good, so wait until testpmd has started the port and waits for the link
    p.lines = []
    threading.Thread(target=lambda: p.lines.extend(p.stdout), daemon=True).start()
    end = time.time() + 30
    while not any("Checking link statuses" in line for line in p.lines):
        if p.poll() is not None or time.time() > end:
            raise RuntimeError("dpdk-testpmd did not start:\n" + "".join(p.lines))
        time.sleep(0.05)
    return p


def stop(p):
    testpmd = hasattr(p, "lines")
    if p.poll() is None:
        if testpmd:
            p.stdin.close()
        else:
            p.send_signal(signal.SIGINT)
    if testpmd:
        p.wait(30)
        out = "".join(p.lines)
    else:
        out, _ = p.communicate(timeout=30)
    PROCS.remove(p)
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    return out


def gen(rate, seconds, measure_spare=False, nice=0):
    """Run nemo-gen; with measure_spare, also the NF's spare_ratio over the middle of the run."""
    out = os.path.join(TMP, "gen.json")
    args = (["nice", "-n", str(nice)] if nice else []) + [os.path.join(BIN, "nemo-gen"), "--socket", SOCK, "--duration", str(seconds),
            "--cpu", "0", "--quiet", "--json", out, "--flows", "64"]
    args += ["--max"] if rate == "max" else ["--rate", str(int(rate))]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    spare = None
    if measure_spare:
        time.sleep(1.0)
        spare = window_spare(max(1.0, seconds - 2.5))
    text, _ = p.communicate()
    # a generator that crashed could not remove its own runtime folder
    shutil.rmtree("/var/run/dpdk/nemo-gen-%d" % p.pid, ignore_errors=True)
    if p.returncode != 0:
        raise RuntimeError("nemo-gen failed:\n" + text)
    with open(out) as f:
        r = json.load(f)
    r["spare_ratio"] = spare
    return r


def cpu_seconds(pid):
    """CPU time of all threads of pid, from schedstat (ns precision)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            total += int(f.read().split()[0])
    return total / 1e9


def read_record(idx=0):
    """(total, busy) cycles of lcore record idx, read from the harvest channel's shm object.

    Reading the mapping costs microseconds; starting dpdk-telemetry.py would cost a
    Python start-up on the generator's CPU and disturb what is measured.
    """
    with open("/dev/shm/nemo-hc-bench", "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        magic, version, header_size, record_size = struct.unpack_from("<QIII", mm, 0)
        if magic != HC_MAGIC or version != HC_VERSION:
            raise RuntimeError("harvest channel: magic %#x version %d" % (magic, version))
        base = header_size + idx * record_size
        for _ in range(1000):
            seq = struct.unpack_from("<Q", mm, base)[0]
            total, busy = struct.unpack_from("<QQ", mm, base + 64)
            if seq % 2 == 0 and struct.unpack_from("<Q", mm, base)[0] == seq:
                return total, busy
        raise RuntimeError("harvest channel: record kept busy")
    finally:
        mm.close()


def read_cycles(idx=0):
    """(total, busy, idle_poll, sleep, sleeps) of lcore record idx, and the header's tsc_hz."""
    c, tsc_hz = hc.cycles("/dev/shm/nemo-hc-bench", idx)
    return (c[0], c[1], c[2], c[3], c[6]), tsc_hz


def set_floor(floor_ns, lease_s, idx=0):
    """The sleep floor nemod's harvester leases (hc.set_floor), on this bench's NF."""
    hc.set_floor("/dev/shm/nemo-hc-bench", floor_ns, lease_s, idx)


def start_loop():
    """A CPU-bound loop on the NF's core, standing in for the sandboxes. The NF at SCHED_FIFO
    preempts it whatever its weight; nice -20 keeps the machine's other work (a shared host)
    from taking the spare it is there to measure."""
    return subprocess.Popen(["nice", "-n", "-20", "taskset", "-c", "1", "sh", "-c",
                             "while :; do :; done"])


def task_cpu_s(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0]) / 1e9


def harvest_run(idle, rate, seconds, floor_ns):
    """NF with idle settings `idle` at SCHED_FIFO, `rate` pps, a floor lease (0: none) and,
    with a lease, the loop beside it. Returns the generator's result and the NF's shares."""
    p = start_nf(idle, "fifo")
    loop = None
    try:
        if floor_ns:
            set_floor(floor_ns, seconds + 10)
            loop = start_loop()
        out = os.path.join(TMP, "gen.json")
        # the generator is the instrument: nice -20 keeps a busy host from stalling it
        g = subprocess.Popen(["nice", "-n", "-20", os.path.join(BIN, "nemo-gen"), "--socket",
                              SOCK, "--duration",
                              str(seconds), "--cpu", "0", "--quiet", "--json", out,
                              "--flows", "64", "--rate", str(int(rate))],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        (a, hz), l0 = read_cycles(), task_cpu_s(loop.pid) if loop else 0
        time.sleep(max(1.0, seconds - 2.0))
        (b, _), l1 = read_cycles(), task_cpu_s(loop.pid) if loop else 0
        text, _ = g.communicate()
        shutil.rmtree("/var/run/dpdk/nemo-gen-%d" % g.pid, ignore_errors=True)
        if g.returncode != 0:
            raise RuntimeError("nemo-gen failed:\n" + text)
        with open(out) as f:
            r = json.load(f)
    finally:
        if loop:
            loop.kill()
            loop.wait()
        log = stop(p)
    for k in ("lat_p50_us", "lat_p99_us"):  # none when no packet came back
        r[k] = r.get(k) if r.get(k) is not None else float("nan")
    d = [b[i] - a[i] for i in range(5)]
    total = max(1, d[0])
    spare_s = (d[0] - d[1]) / hz
    own = {}
    for line in log.splitlines():  # the NF's own delay over the run, from its exit summary
        f = line.split()
        if len(f) >= 9 and f[0] in ("wait", "send", "total") and f[1] == "p50":
            own[f[0]] = (float(f[2]), float(f[5]), float(f[8]))
    nan = float("nan")
    r.update(nf_p50_us=own.get("total", (nan,) * 3)[0], nf_p99_us=own.get("total", (nan,) * 3)[1],
             nf_p999_us=own.get("total", (nan,) * 3)[2], sleeps_s=d[4] / max(1, d[0]) * hz)
    r.update(busy=d[1] / total, idle_poll=d[2] / total, sleep=d[3] / total,
             mean_sleep_us=d[3] / max(1, d[4]) / hz * 1e6,
             harvest=(l1 - l0) / spare_s if spare_s > 0 and loop else float("nan"),
             wake=next((line.split("wake-up cost ")[1].split(" (")[0] for line in log.splitlines()
                        if "timed sleeps" in line), "?"))
    return r


def figure5(capacity, seconds, reps, rate=None):
    rate = rate or 0.3 * capacity
    floor_ns = 350000  # nemod: nf_delay_budget_us 500 x the predicted spare 0.7, under 400 us
    modes = (("count (before)", {"policy": "sleep", "detect": "count", "empty_polls": 256,
                                 "min_sleep_us": 20}),
             ("time (now)", {"policy": "sleep", "min_sleep_us": 20}))
    print("\n5. idle detection at %.2f Mpps (%.0f %% of the capacity), NF at SCHED_FIFO; "
          "interleaved, %d reps" % (rate / 1e6, 100.0 * rate / capacity, reps))
    print("   with a %d us sleep-floor lease and a CPU-bound loop on the NF's core:" %
          (floor_ns // 1000))
    print("   %-15s %8s %7s %8s %8s %7s %9s %7s %11s %8s %8s %10s" %
          ("detect", "rx Mpps", "lost", "p50 us", "p99 us", "busy %", "idle_poll", "sleep %",
           "mean sleep", "harvest", "bound", "wake-up"))
    res = {m: [] for m, _ in modes}
    for _ in range(reps):
        for m, idle in modes:
            r = harvest_run(idle, rate, seconds, floor_ns)
            res[m].append(r)
            spare = 1 - r["busy"]
            print("   %-15s %8.3f %7d %8.1f %8.1f %7.1f %8.2f%% %7.1f %8.0f us %8.3f %8.3f %10s" %
                  (m, r["rx_pps"] / 1e6, r["lost"], r["lat_p50_us"], r["lat_p99_us"],
                   100 * r["busy"], 100 * r["idle_poll"], 100 * r["sleep"], r["mean_sleep_us"],
                   r["harvest"], r["sleep"] / spare if spare > 0 else 0, r["wake"]))
    med = {m: sorted(x["harvest"] for x in v)[len(v) // 2] for m, v in res.items()}
    medp = {m: sorted(x["idle_poll"] for x in v)[len(v) // 2] for m, v in res.items()}
    (mb, _), (mn, _) = modes
    print("   median idle_poll share: before %.2f %%, now %.2f %%; median harvest_ratio: before "
          "%.3f, now %.3f (now / before %.3f)" % (100 * medp[mb], 100 * medp[mn], med[mb],
                                                 med[mn], med[mn] / med[mb] if med[mb] else 0))
    print("   (harvest = the loop's CPU time / the NF's spare over the middle of the run; "
          "bound = sleep / spare: only sleep can be harvested; the loop shares the spare with "
          "whatever else runs on cpu 1)")
    print("\n   no lease, nothing beside the NF: latency")
    print("   %-15s %8s %7s %8s %8s %7s %9s %7s %11s" %
          ("detect", "rx Mpps", "lost", "p50 us", "p99 us", "busy %", "idle_poll", "sleep %",
           "mean sleep"))
    lat = {m: [] for m, _ in modes}
    for _ in range(reps):
        for m, idle in modes:
            r = harvest_run(idle, rate, seconds, 0)
            lat[m].append(r["lat_p50_us"])
            print("   %-15s %8.3f %7d %8.1f %8.1f %7.1f %8.2f%% %7.1f %8.0f us" %
                  (m, r["rx_pps"] / 1e6, r["lost"], r["lat_p50_us"], r["lat_p99_us"],
                   100 * r["busy"], 100 * r["idle_poll"], 100 * r["sleep"],
                   r["mean_sleep_us"]))
    p50 = {m: sorted(x for x in v if x == x)[len([x for x in v if x == x]) // 2]
           if any(x == x for x in v) else float("nan") for m, v in lat.items()}
    print("   median p50: before %.1f us, now %.1f us (now / before %.3f)" %
          (p50[mb], p50[mn], p50[mn] / p50[mb] if p50[mb] else 0))


def read_busy_rx(idx=0):
    """(busy cycles, rx packets) of lcore record idx, untorn."""
    with open("/dev/shm/nemo-hc-bench", "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        header_size, record_size = struct.unpack_from("<II", mm, 12)
        base = header_size + idx * record_size
        for _ in range(1000):
            seq = struct.unpack_from("<Q", mm, base)[0]
            busy = struct.unpack_from("<Q", mm, base + 64 + 8)[0]
            rx = struct.unpack_from("<Q", mm, base + 128)[0]
            if seq % 2 == 0 and struct.unpack_from("<Q", mm, base)[0] == seq:
                return busy, rx
        raise RuntimeError("harvest channel: record kept busy")
    finally:
        mm.close()


def null_rate(every, seconds):
    """Packets per second one `fwd` lcore (poll, SCHED_OTHER -20) moves from a net_null port
    to itself: no generator, the NF's own loop sets the rate. Its packets carry no stamp, so
    a sampled one costs the look (rdtsc, its first line, the magic) and is counted unstamped."""
    cfg = {"name": "bench", "stats_interval_ms": 0, "memory_mb": 512,
           "delay_sample_every": every, "ports": [{"vdev": "net_null0"}],
           "lcores": [{"lcore": 1, "cpu": 1, "rx": [{"port": 0}], "chain": ["fwd"],
                       "idle": "poll", "sched": {"policy": "other", "nice": -20}}]}
    path = os.path.join(TMP, "nf-null-%d.json" % every)
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = subprocess.Popen([os.path.join(BIN, "nemo-nf"), "--config", path],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    PROCS.append(p)
    wait_for("/dev/shm/nemo-hc-bench", p)
    time.sleep(0.5)
    a, ta = read_busy_rx(), time.time()
    time.sleep(seconds)
    b, tb = read_busy_rx(), time.time()
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    PROCS.remove(p)
    return (b[1] - a[1]) / (tb - ta), (b[0] - a[0]) / max(1, b[1] - a[1])


def figure6(seconds, reps):
    """Capacity and busy cycles per packet with the NF's own delay timed (1 in 64, the
    default; every packet) against not timed, interleaved so that drift favours none."""
    modes = (("off (0)", 0), ("1 in 64", 64), ("every packet", 1))
    print("\n6. what timing the NF's own delay costs (delay_sample_every), fwd poll, generator "
          "--max at nice -20; interleaved, %d reps of %.0f s" % (reps, seconds))
    print("   %-14s %10s %14s %12s   %s" % ("sampling", "Mpps", "busy cyc/pkt", "timed",
                                            "runs (Mpps)"))
    res = {m: [] for m, _ in modes}
    for _ in range(reps):
        for m, every in modes:
            p = start_nf("poll", delay_every=every)
            g = subprocess.Popen(["nice", "-n", "-20", os.path.join(BIN, "nemo-gen"),
                                  "--socket", SOCK, "--duration", str(seconds), "--cpu", "0",
                                  "--quiet", "--json", os.path.join(TMP, "gen6.json"),
                                  "--flows", "64", "--max"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(1.5)  # past the link, the probe and the ring warm-up
            a = read_busy_rx()
            time.sleep(max(1.0, seconds - 2.5))
            b = read_busy_rx()
            text, _ = g.communicate()
            shutil.rmtree("/var/run/dpdk/nemo-gen-%d" % g.pid, ignore_errors=True)
            log = stop(p)
            if g.returncode != 0:
                raise RuntimeError("nemo-gen failed:\n" + text)
            with open(os.path.join(TMP, "gen6.json")) as f:
                r = json.load(f)
            timed = next((int(line.split(": ")[1].split()[0]) for line in log.splitlines()
                          if "own delay, 1 in" in line), 0)
            res[m].append((r["rx_pps"], (b[0] - a[0]) / max(1, b[1] - a[1]), timed))
    med = lambda v, k: sorted(x[k] for x in v)[len(v) // 2]
    base_pps, base_cpp = med(res[modes[0][0]], 0), med(res[modes[0][0]], 1)
    for m, _ in modes:
        v = res[m]
        print("   %-14s %10.3f %14.1f %12d   %s" % (m, med(v, 0) / 1e6, med(v, 1), med(v, 2),
                                                 " ".join("%.2f" % (x[0] / 1e6) for x in v)))
    for m, _ in modes[1:]:
        print("   %s against off: capacity ratio %.3f, busy cycles per packet ratio %.3f" % (
            m, med(res[m], 0) / base_pps, med(res[m], 1) / base_cpp))
    print("   (busy cycles per packet from the harvest channel over the middle of each run; "
          "timed = packets whose delay the NF timed, from its exit summary)")
    print("   without the generator (net_null in and out, the NF's loop alone sets the rate; "
          "its packets carry no stamp, so each sampled one is looked at and counted unstamped):")
    null = {m: [] for m, _ in modes}
    for _ in range(reps):
        for m, every in modes:
            null[m].append(null_rate(every, 2.0))
    for m, _ in modes:
        print("   %-14s %10.3f %14.1f   %s" % (m, med(null[m], 0) / 1e6, med(null[m], 1),
                                             " ".join("%.2f" % (x[0] / 1e6) for x in null[m])))
    for m, _ in modes[1:]:
        print("   %s against off: rate ratio %.3f, busy cycles per packet ratio %.3f" % (
            m, med(null[m], 0) / med(null[modes[0][0]], 0),
            med(null[m], 1) / med(null[modes[0][0]], 1)))


def figure7(capacity, seconds, reps, rate=None, floors=(400, 500, 600)):
    """The sleep floor nemod asks while sandboxes work, against what it costs the NF: at 30 %
    load with the CPU-bound loop beside the NF, per floor, the loop's share of the spare, the
    NF's sleeps per second (each costs this host ~20 us of the NF thread's CPU, outside its
    loop) and its own p99 (stamp to send) against the NF alone with no lease."""
    rate = rate or 0.3 * capacity
    idle = {"policy": "sleep", "min_sleep_us": 20}
    print("\n7. the sleep floor at %.2f Mpps (%.0f %% of the capacity), NF at SCHED_FIFO, a "
          "CPU-bound loop beside it; NF alone (no lease, no loop) as the baseline; interleaved, "
          "%d reps" % (rate / 1e6, 100.0 * rate / capacity, reps))
    print("   %-12s %8s %7s %9s %9s %9s %9s %8s %10s %9s" % (
        "floor", "rx Mpps", "lost", "NF p50", "NF p99", "NF p99.9", "e2e p99", "busy %",
        "sleeps/s", "harvest"))
    res = {f: [] for f in (0,) + tuple(floors)}
    for _ in range(reps):
        for f in res:
            r = harvest_run(idle, rate, seconds, f * 1000)
            res[f].append(r)
            print("   %-12s %8.3f %7d %9.1f %9.1f %9.1f %9.1f %8.1f %10.0f %9.3f" % (
                "%d us" % f if f else "alone", r["rx_pps"] / 1e6, r["lost"], r["nf_p50_us"],
                r["nf_p99_us"], r["nf_p999_us"], r["lat_p99_us"], 100 * r["busy"],
                r["sleeps_s"], r["harvest"]))
    med = lambda v, k: sorted(x[k] for x in v)[len(v) // 2]
    base = med(res[0], "nf_p99_us")
    for f in floors:
        v = res[f]
        print("   floor %d us: median harvest %.3f, sleeps/s %.0f, NF p99 %.1f us (delta %+.1f us "
              "against alone), p99.9 %.1f us" % (f, med(v, "harvest"), med(v, "sleeps_s"),
                                                 med(v, "nf_p99_us"),
                                                 med(v, "nf_p99_us") - base,
                                                 med(v, "nf_p999_us")))
    print("   (NF p* = the NF's own delay, nemo-gen's stamp to the NF's send, from its exit "
          "summary; harvest = the loop's CPU time / the NF's spare)")


def lcore_run_ns(pid):
    """The run time (ns, schedstat) of pid's SCHED_FIFO thread: its lcore."""
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/sched" % (pid, t)) as f:
                fifo = any(x.startswith("policy") and int(x.split(":")[1]) == 1 for x in f)
            if fifo:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    return int(f.read().split()[0])
        except (OSError, ValueError):
            continue
    return None


def figure8(capacity, seconds, reps, old_nf=None):
    """A SCHED_FIFO lcore with the sleep policy alone at 30 % load: the RT budget keeps it out
    of RT throttling. Against the same lcore at SCHED_OTHER (never throttled), and, with
    --old-nf, a nemo-nf built before the budget, interleaved."""
    rate = 0.3 * capacity
    runs = [("fifo", "fifo", None), ("other -20", "other", None)]
    if old_nf:
        runs.insert(1, ("fifo, --old-nf", "fifo", old_nf))
    print("\n8. the NF alone at 30 %% load (%.2f Mpps), idle policy sleep, by scheduling class; "
          "%d reps interleaved" % (rate / 1e6, reps))
    print("   %-16s %9s %9s %10s %8s %12s %12s" % ("lcore", "p50 us", "p99 us", "p99.9 us",
                                                   "asleep", "max run/1 s", "budget sleeps"))
    for _ in range(reps):
        for tag, sched, nf in runs:
            p = start_nf("sleep", sched, nf=nf)
            samples, done = [], threading.Event()

            def sample(pid=p.pid):
                while not done.is_set():
                    ns = lcore_run_ns(pid)
                    if ns is not None:
                        samples.append((time.monotonic(), ns))
                    time.sleep(0.05)
            th = threading.Thread(target=sample)
            th.start()
            (a, _), r = read_cycles(), None
            try:
                r = gen(rate, seconds)
                b, _ = read_cycles()
            finally:
                done.set()
                th.join()
                log = stop(p)
            # the largest share of any second the lcore ran (RT throttling caps a period at
            # sched_rt_runtime_us); only the FIFO thread is sampled, so other runs show "-"
            worst = None
            for i, (t0, n0) in enumerate(samples):
                for t1, n1 in samples[i:]:
                    if t1 - t0 >= 1.0:
                        worst = max(worst or 0.0, (n1 - n0) / 1e9 / (t1 - t0))
                        break
            m = re.search(r"RT budget: .*?, (\d+) sleeps asked", log)
            print("   %-16s %9.1f %9.1f %10.1f %7.1f%% %12s %12s" %
                  (tag, r["lat_p50_us"], r["lat_p99_us"], r["lat_p999_us"],
                   100.0 * (b[3] - a[3]) / max(1, b[0] - a[0]),
                   "%.3f" % worst if worst is not None else "-",
                   m.group(1) if m else "-"))
    print("   (max run/1 s: the FIFO lcore thread's run time over its busiest second, from "
          "schedstat every 50 ms; RT throttling stops it at sched_rt_runtime_us of each "
          "sched_rt_period_us. budget sleeps: those the RT budget alone asked for)")


def window_spare(seconds):
    """spare_ratio of the NF lcore over the next `seconds` (DESIGN.md: spare / total)."""
    t0, b0 = read_record()
    time.sleep(seconds)
    t1, b1 = read_record()
    total, busy = t1 - t0, b1 - b0
    return (total - busy) / total if total else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5, help="length of each traffic run")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the capacity runs")
    ap.add_argument("--only", default="12345678", help="which tables, e.g. 5")
    ap.add_argument("--old-nf", default=None,
                    help="table 8: an older nemo-nf binary to interleave with this one")
    ap.add_argument("--floors", default="400,500,600",
                    help="table 7's sleep floors in us, comma-separated")
    ap.add_argument("--rate5", type=float, default=0,
                    help="table 5's rate in pps (default: 30 %% of the measured capacity)")
    a = ap.parse_args()
    # a SIGTERM (kill, a CI timeout) ends the run through the same cleanup as its end
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print("bench-nf: %s, %d cpus, %.0f s per run, %d reps, load average %s" %
          (os.uname().nodename, os.cpu_count(), a.seconds, a.reps,
           " ".join("%.2f" % x for x in os.getloadavg())))
    if "1" not in a.only:
        if "6" in a.only:
            figure6(a.seconds, a.reps)
        if "5" not in a.only and "7" not in a.only and "8" not in a.only:
            return
        # the fifth table needs the NF's capacity: a short calibration instead of table 1
        p = start_nf("poll")
        capacity = max(gen("max", 2, nice=-20)["rx_pps"] for _ in range(2))
        stop(p)
        print("capacity (nemo-nf fwd poll, generator at nice -20, best of 2 x 2 s): %.3f Mpps"
              % (capacity / 1e6))
        if "5" in a.only:
            figure5(capacity, a.seconds, a.reps, a.rate5)
        if "7" in a.only:
            figure7(capacity, a.seconds, a.reps, a.rate5,
                    tuple(int(x) for x in a.floors.split(",")))
        if "8" in a.only:
            figure8(capacity, a.seconds, a.reps, a.old_nf)
        return

    # 1. capacity, interleaved so that drift favours neither
    caps = {"testpmd io": [], "nemo-nf fwd poll": [], "nemo-nf fwd sleep": []}
    for _ in range(a.reps):
        p = start_testpmd()
        caps["testpmd io"].append(gen("max", a.seconds)["rx_pps"])
        stop(p)
        for idle in ("poll", "sleep"):
            p = start_nf(idle)
            caps["nemo-nf fwd %s" % idle].append(gen("max", a.seconds)["rx_pps"])
            stop(p)
    base = sorted(caps["testpmd io"])[len(caps["testpmd io"]) // 2]
    print("\n1. capacity, 64-byte frames, one forwarding core (median of %d)" % a.reps)
    print("   %-20s %12s %8s   %s" % ("forwarder", "Mpps", "ratio", "runs (Mpps)"))
    for name, v in caps.items():
        med = sorted(v)[len(v) // 2]
        print("   %-20s %12.3f %8.3f   %s" % (name, med / 1e6, med / base,
                                             " ".join("%.2f" % (x / 1e6) for x in v)))
    capacity = sorted(caps["nemo-nf fwd poll"])[a.reps // 2]

    # 2. idle CPU
    print("\n2. CPU used by the NF process with no traffic (3 s window)")
    idle_cpu = {}
    for idle in ("poll", "sleep"):
        p = start_nf(idle)
        time.sleep(0.5)
        c0 = cpu_seconds(p.pid)
        time.sleep(3)
        idle_cpu[idle] = (cpu_seconds(p.pid) - c0) / 3 * 100
        stop(p)
    print("   poll  %6.1f %% of a core" % idle_cpu["poll"])
    print("   sleep %6.1f %% of a core  (%.3f x poll)" %
          (idle_cpu["sleep"], idle_cpu["sleep"] / idle_cpu["poll"]))

    # 3 and 4. loss, latency and spare at shares of capacity
    print("\n3. loss and latency at shares of the measured capacity (%.2f Mpps)" %
          (capacity / 1e6))
    print("   %5s %6s %12s %10s %10s %10s %10s %8s" %
          ("load", "mode", "offered pps", "sent", "lost", "p50 us", "p99 us", "spare"))
    rows = []
    for share in (0.1, 0.3, 0.5, 0.7, 0.9):
        res = {}
        for idle in ("poll", "sleep"):
            p = start_nf(idle)
            r = gen(capacity * share, a.seconds, measure_spare=True)
            stop(p)
            res[idle] = (r, r["spare_ratio"])
            print("   %4.0f%% %6s %12.0f %10d %10d %10.1f %10.1f %8.4f" %
                  (share * 100, idle, capacity * share, r["sent"], r["lost"], r["lat_p50_us"],
                   r["lat_p99_us"], r["spare_ratio"]))
        rows.append((share, res))
    print("\n   sleep vs poll: packets sleep lost that poll delivered, and the p99 difference")
    for share, res in rows:
        rp, rs = res["poll"][0], res["sleep"][0]
        extra = max(0, rs["lost"] - rp["lost"])
        print("   %4.0f%%  extra loss %d (%.4f %%), p99 %+.1f us (sleep %.1f, poll %.1f)" %
              (share * 100, extra, 100.0 * extra / max(1, rs["sent"]),
               rs["lat_p99_us"] - rp["lat_p99_us"], rs["lat_p99_us"], rp["lat_p99_us"]))

    print("\n4. spare_ratio reported by nemo-nf (sleep mode) against offered load")
    print("   %5s %12s %12s %14s" % ("load", "offered pps", "spare_ratio", "1 - load"))
    for share, res in rows:
        print("   %4.0f%% %12.0f %12.4f %14.2f" % (share * 100, capacity * share,
                                                res["sleep"][1], 1 - share))
    print("\n   (spare_ratio = spare / total on the NF lcore, read from /nemo/lcores over the "
          "middle of each run; in poll mode the idle_poll cycles are spare too)")
    if "5" in a.only:
        figure5(capacity, a.seconds, a.reps, a.rate5)
    if "6" in a.only:
        figure6(a.seconds, a.reps)
    if "7" in a.only:
        figure7(capacity, a.seconds, a.reps, a.rate5, tuple(int(x) for x in a.floors.split(",")))
    if "8" in a.only:
        figure8(capacity, a.seconds, a.reps, a.old_nf)


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
