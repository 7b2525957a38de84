#!/usr/bin/python3
"""bench_packet.py - make bench-packet: packets -> function -> reply, and the NF beside it.

Five tables, each against a baseline measured in the same run (printed in the order 1, 2, 3, 5, 4):
  1. what the fn module costs the NF when no rule matches: cycles per packet of fn > fwd
     against fwd alone (and acl > fwd, a module that classifies every packet), in-process;
     then the capacity of the two chains end to end, busy-polling, interleaved;
  2. packets -> function -> reply: nemo-gen sends UDP to port 9000, the fn module hands each
     datagram to the C echo function (nemo-pktfn, pinned to the NF's core at SCHED_IDLE, the
     stand-in for a sandbox in the core's harvest cgroup), the NF sends the replies back;
     reply rate and latency at several offered rates, with no sleep-floor lease and with one
     (what nemod holds while sandboxes wait on the core);
  3. the NF at 30 % load with the function beside it: of 64 flows, as many as give the
     function about --fn-pps go to it, the rest are forwarded; the NF's losses and the p99 of
     the forwarded frames against the NF alone at the same forwarded rate;
  5. table 3 with the function where nemod runs it: the packet-triggered echo in a sandbox
     on the NF's core, nemod harvesting the NF's channel and holding its sleep floor;
  4. the same C functions (pkt-echo.so, and pkt-sensor.so, a small computation) in nemod:
     packet-triggered (nemod's `packet` trigger, a sandbox on the NF's core), called per
     request over HTTP (POST /function/NAME, wrk) and over MQTT (nemod's MQTT trigger,
     bench_api_mqtt --load): calls per second and latency, and the ratios packet/HTTP and
     packet/MQTT.
The machine has 2 cores: nemo-gen runs on cpu 0, the NF lcore and the function on cpu 1.
Other jobs share it: the load average is printed, and only ratios within a run mean much.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_nf as bn  # noqa: E402  the harvest-channel readers and the NF helpers
import nemo_experiment as ne  # noqa: E402  nemod, its broker and the run's janitor

ROOT = bn.ROOT
BIN = bn.BIN
TMP = bn.TMP
SOCK = bn.SOCK
FN_SOCK = os.path.join(TMP, "nf.fn")
ECHO = os.path.join(ROOT, "build", "functions", "pkt-echo.so")
SENSOR = os.path.join(ROOT, "build", "functions", "pkt-sensor.so")
FN_PROCS = []


def cleanup():
    for p in FN_PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()
    ne.JANITOR.clean()
    bn.cleanup()


NF_OTHER = {"policy": "other", "nice": -20}
NF_FIFO = {"policy": "fifo", "priority": 50}  # as nemo runs an NF beside sandboxes (bench-harvest)


def nf_config(idle, fn_rules, name, functions=None, sched=None):
    chain = ["fwd"]
    if fn_rules is not None:
        chain = [{"module": "fn", "functions": functions or [{"name": "echo", "slots": 4096}],
                  "rules": fn_rules}, "fwd"]
    cfg = {"name": "bench", "stats_interval_ms": 0, "memory_mb": 512, "fn_socket": FN_SOCK,
           "ports": [{"vdev": "net_memif0,role=server,socket=%s,socket-abstract=no" % SOCK,
                      "rx_ring": 16384, "line_rate_pps": 25000000}],
           "lcores": [{"lcore": 1, "cpu": 1, "rx": [{"port": 0}], "chain": chain,
                       "idle": {"policy": idle, "min_sleep_us": 20},
                       "sched": sched or NF_OTHER}]}
    path = os.path.join(TMP, "nf-%s.json" % name)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def start_nf(idle, fn_rules, name, functions=None, sched=None):
    p = subprocess.Popen([os.path.join(BIN, "nemo-nf"), "--config",
                          nf_config(idle, fn_rules, name, functions, sched)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    bn.PROCS.append(p)
    bn.wait_for("/dev/shm/nemo-hc-bench", p)
    bn.wait_for(SOCK, p)
    if fn_rules is not None:
        bn.wait_for(FN_SOCK, p)
    return p


FN_SCHED = {"idle": ["chrt", "-i", "0"], "nice0": ["nice", "-n", "0"]}


def start_fn(sched="idle", batch=64):
    """The echo function's host on the NF's core. SCHED_IDLE stands for the harvest cgroup's
    cpu.idle: it runs when the NF sleeps and nothing else wants the core. nice0 is the control
    on a shared host, where other jobs' threads on cpu 1 outrank a SCHED_IDLE task."""
    p = subprocess.Popen(FN_SCHED[sched] + ["taskset", "-c", "1",
                          os.path.join(BIN, "nemo-pktfn"), "--socket", FN_SOCK,
                          "--function", "echo", "--code", ECHO, "--batch", str(batch)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    FN_PROCS.append(p)
    time.sleep(0.3)
    if p.poll() is not None:
        raise RuntimeError("nemo-pktfn exited: " + p.stdout.read())
    return p


def stop_fn(p):
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=10)
    FN_PROCS.remove(p)
    return out


def gen(rate, seconds, flows=64, dport=None, warm=True):
    out = os.path.join(TMP, "gen.json")
    args = ["nice", "-n", "-20", os.path.join(BIN, "nemo-gen"), "--socket", SOCK,
            "--duration", str(seconds), "--cpu", "0", "--quiet", "--json", out,
            "--flows", str(flows)]
    if dport:
        args += ["--dport", str(dport)]
    if not warm:
        args += ["--no-warm"]
    args += ["--max"] if rate == "max" else ["--rate", str(int(rate))]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    text, _ = p.communicate()
    shutil.rmtree("/var/run/dpdk/nemo-gen-%d" % p.pid, ignore_errors=True)
    if p.returncode != 0:
        raise RuntimeError("nemo-gen failed:\n" + text)
    with open(out) as f:
        return json.load(f)


def nf_count(log, after, key):
    i = log.find(after)
    if i < 0:
        return -1
    j = log.find(key + " ", i)
    if j < 0:
        return -1
    return int(log[j + len(key) + 1:].split()[0].rstrip(","))


def drop_reasons(log):
    """The summary's drops other than fn_full ("tx_full 59"), or "" for none."""
    line = next((x for x in log.splitlines() if x.strip().startswith("drops:")), "")
    words = line.split()[1:]
    return " ".join("%s %s" % (words[i], words[i + 1]) for i in range(0, len(words) - 1, 2)
                    if words[i] != "fn_full")


def med(v):
    v = sorted(v)
    return v[len(v) // 2]


def fmt(x, spec="%8.1f"):
    return spec % x if x is not None else "%8s" % "-"


def table1(seconds, reps):
    print("\n1. the fn module with no rule matching")
    print("   in-process, bursts of 32 through each chain on cpu 1 (bench_packet_cost):")
    out = subprocess.run([os.path.join(BIN, "bench_packet_cost"), "1"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        print("   " + line)
    print("   end to end: capacity, 64-byte frames, busy-polling, %d reps interleaved" % reps)
    res = {"fwd": [], "fn > fwd": []}
    nomatch = [{"proto": "udp", "dport": 7, "function": "echo", "reply": True}]
    for _ in range(reps):
        for name, rules in (("fwd", None), ("fn > fwd", nomatch)):
            p = start_nf("poll", rules, "t1")
            res[name].append(gen("max", seconds)["rx_pps"])
            bn.stop(p)
    base = med(res["fwd"])
    for name, v in res.items():
        print("     %-10s %8.3f Mpps  %6.3f x fwd   runs %s" %
              (name, med(v) / 1e6, med(v) / base, " ".join("%.2f" % (x / 1e6) for x in v)))
    return base


def fn_run(rate, seconds, floor_ns, rules, flows=64, sched="idle"):
    """NF (sleep) with the echo function; returns gen's result, the NF log and shares."""
    p = start_nf("sleep", rules, "fn")
    f = start_fn(sched)
    try:
        if floor_ns:
            bn.set_floor(floor_ns, seconds + 30)
        (a, hz), c0 = bn.read_cycles(), bn.task_cpu_s(f.pid)
        r = gen(rate, seconds, flows)
        (b, _), c1 = bn.read_cycles(), bn.task_cpu_s(f.pid)
    finally:
        fout = stop_fn(f)
        log = bn.stop(p)
    spare_s = (b[0] - a[0] - (b[1] - a[1])) / hz
    r["harvest"] = (c1 - c0) / spare_s if spare_s > 0 else float("nan")
    r["busy"] = (b[1] - a[1]) / max(1, b[0] - a[0])
    r["fn_full"] = max(0, nf_count(log, "drops:", "fn_full"))
    r["handed"] = nf_count(log, "function 'echo'", "handed")
    r["replied"] = nf_count(log, "function 'echo'", "replied")
    r["wakes"] = nf_count(log, "function 'echo'", "wakes")
    # the NF's own losses: drops other than fn_full, and its rx ring overflowing
    r["nf_drops"] = max(0, nf_count(log, "summary", "dropped")) - r["fn_full"]
    r["imissed"] = nf_count(log, "port 0 (", "imissed")
    r["why"] = drop_reasons(log)
    m = re.search(r"(\d+) batches, (\d+) packets", fout)
    r["batch"] = int(m.group(2)) / int(m.group(1)) if m and int(m.group(1)) else float("nan")
    return r


def table2(seconds, rates, floor_us, scheds):
    echo_all = [{"proto": "udp", "dport": 9000, "function": "echo", "reply": True}]
    print("\n2. packets -> C echo function -> reply; the function on the NF's core at "
          "SCHED_IDLE")
    print("   %-6s %-7s %9s %10s %10s %8s %9s %9s %9s %7s %8s %7s" %
          ("fn", "lease", "offered", "sent", "replies/s", "lost %", "p50 us", "p99 us",
           "fn_full", "batch", "harvest", "busy %"))
    best = {}
    for sched, floor in [(x, f) for x in scheds for f in (0, floor_us)]:
        for rate in rates:
            r = fn_run(rate, seconds, floor * 1000, echo_all, sched=sched)
            rps = r["replies"] / r["duration_s"] if r["duration_s"] else 0
            lost = 100.0 * r["lost"] / max(1, r["sent"])
            print("   %-6s %-7s %9s %10d %10.0f %8.3f %9s %9s %9d %7.1f %8.3f %7.1f" %
                  (sched, "%d us" % floor if floor else "none",
                   "max" if rate == "max" else "%.0fk" % (rate / 1e3), r["sent"], rps, lost,
                   fmt(r.get("reply_lat_p50_us")), fmt(r.get("reply_lat_p99_us")),
                   r["fn_full"], r["batch"], r["harvest"], 100 * r["busy"]))
            key = (sched, "none" if not floor else "%d us lease" % floor)
            best[key] = max(best.get(key, 0), rps)
    print("   highest reply rate (goal: 1 000 000 /s from the NF's own core):")
    for key, v in best.items():
        print("     fn %-6s %-12s %10.0f /s" % (key[0], key[1], v))
    print("   (harvest = the function's CPU time / the NF's spare; lost = sent - replies, "
          "mostly fn_full: the ring was full when the function did not get the core)")


def split_flows(capacity, fn_pps, flows=64):
    """The NF at 30 % load beside the function (tables 3 and 5): flow i has src port 1024 + i;
    flows 0..k-1 go to the function, k chosen so that it gets about fn_pps while the forwarded
    rest stays at 30 % of capacity. Returns (forwarded rate, k, the fn rules, total rate)."""
    nf_rate = 0.3 * capacity
    k = max(1, min(flows - 1, round(flows * fn_pps / (nf_rate + fn_pps))))
    fn_rules = [{"proto": "udp", "dport": 9000, "sport": "1024-%d" % (1024 + k - 1),
                 "function": "echo", "reply": True}]
    return nf_rate, k, fn_rules, nf_rate * flows / (flows - k)


def nf_alone(nf_rate, seconds, flows, name, sched=None):
    """The NF alone at nf_rate: (generator's result, NF drops, rx overflow, drop reasons)."""
    p = start_nf("sleep", None, name, sched=sched)
    r = gen(nf_rate, seconds, flows)
    log = bn.stop(p)
    return (r, max(0, nf_count(log, "summary", "dropped")), nf_count(log, "port 0 (", "imissed"),
            drop_reasons(log))


def med_p99(rows):
    """The median of the rows' forwarded p99 (their second field), where there is one."""
    return med([x[1] for x in rows if x[1] is not None] or [float("nan")])


def table3(seconds, capacity, reps, floor_us, fn_pps):
    flows = 64
    nf_rate, k, fn_rules, total = split_flows(capacity, fn_pps, flows)
    print("\n3. the NF at 30 %% load (%.2f Mpps forwarded, capacity %.2f Mpps) beside the "
          "function (%d of %d flows, %.0f kpps), %d us lease; %d reps interleaved" %
          (nf_rate / 1e6, capacity / 1e6, k, flows, (total - nf_rate) / 1e3, floor_us, reps))
    print("   %-14s %10s %9s %9s %9s %9s %9s %10s %10s %10s %8s" %
          ("run", "sent", "NF drops", "imissed", "fwd p50", "fwd p99", "p99.9", "replies/s",
           "reply p50", "reply p99", "harvest"))
    rows = {"NF alone": [], "NF + function": []}
    for _ in range(reps):
        r, drops, missed, why = nf_alone(nf_rate, seconds, flows, "t3")
        rows["NF alone"].append((drops + max(0, missed), r["lat_p99_us"]))
        print("   %-14s %10d %9d %9d %9s %9s %9s %10s %10s %10s %8s" %
              ("NF alone", r["sent"], drops, missed, fmt(r["lat_p50_us"]),
               fmt(r["lat_p99_us"]), fmt(r["lat_p999_us"]), "-", "-", "-", "-"))
        if why:
            print("   %-14s NF drops: %s" % ("", why))
        r = fn_run(total, seconds, floor_us * 1000, fn_rules, flows)
        rows["NF + function"].append((r["nf_drops"] + max(0, r["imissed"]),
                                      r.get("other_lat_p99_us")))
        print("   %-14s %10d %9d %9d %9s %9s %9s %10.0f %10s %10s %8.3f" %
              ("NF + function", r["sent"], r["nf_drops"], r["imissed"],
               fmt(r.get("other_lat_p50_us")), fmt(r.get("other_lat_p99_us")),
               fmt(r.get("other_lat_p999_us")), r["replies"] / r["duration_s"],
               fmt(r.get("reply_lat_p50_us")), fmt(r.get("reply_lat_p99_us")), r["harvest"]))
        if r["why"]:
            print("   %-14s NF drops: %s" % ("", r["why"]))
    a, b = rows["NF alone"], rows["NF + function"]
    p99a, p99b = med_p99(a), med_p99(b)
    print("   (harvest = the function's CPU time on cpu 1 / the NF's spare, harvest_ratio; "
          "tx_full drops are the generator not reading its ring)")
    print("   NF loss (drops other than fn_full, and rx overflow): alone %d, with the function "
          "%d (medians); forwarded p99 %.1f -> %.1f us (%.2f x)" %
          (med([x[0] for x in a]), med([x[0] for x in b]), p99a, p99b,
           p99b / p99a if p99a else float("nan")))


# ---- table 5: table 3 with nemod's sandbox instead of the stand-in ----

def table5(seconds, capacity, reps, fn_pps):
    """The NF at 30 % load beside the packet-triggered echo as nemod runs it: a sandbox in the
    NF core's harvest cgroup, nemod harvesting the NF's channel (scenario "nemo": it holds the
    core's sleep floor while the instance lives there), the NF lcore at SCHED_FIFO as nemo
    runs one beside sandboxes (alone, as in table 3). Its CPU time is the cgroup's."""
    flows = 64
    nf_rate, k, fn_rules, total = split_flows(capacity, fn_pps, flows)
    print("\n5. the NF at 30 %% load (%.2f Mpps forwarded, capacity %.2f Mpps) beside the "
          "packet-triggered echo in nemod (%d of %d flows, %.0f kpps offered to it), nemod "
          "harvesting, NF at SCHED_FIFO; %d reps interleaved; load average %s" %
          (nf_rate / 1e6, capacity / 1e6, k, flows, (total - nf_rate) / 1e3, reps,
           " ".join("%.2f" % x for x in os.getloadavg())))
    print("   %-14s %10s %9s %9s %9s %9s %9s %10s %10s %10s %8s %8s" %
          ("run", "sent", "NF drops", "imissed", "fwd p50", "fwd p99", "p99.9", "replies/s",
           "reply p50", "reply p99", "fn_full", "harvest"))
    rows = {"NF alone": [], "NF + nemod": []}
    for rep in range(reps):
        # the NF alone as table 3 runs it: at SCHED_FIFO with nothing to hold its sleeps it
        # would poll the short gaps of 30 % load away and meet RT throttling (its p99 here:
        # 3.1-3.3 ms), no baseline to judge by
        r, drops, missed, _ = nf_alone(nf_rate, seconds, flows, "t5")
        rows["NF alone"].append((drops + max(0, missed), r["lat_p99_us"], None))
        print("   %-14s %10d %9d %9d %9s %9s %9s %10s %10s %10s %8s %8s" %
              ("NF alone", r["sent"], drops, missed, fmt(r["lat_p50_us"]),
               fmt(r["lat_p99_us"]), fmt(r["lat_p999_us"]), "-", "-", "-", "-", "-"))
        p = start_nf("sleep", fn_rules, "t5fn", sched=NF_FIFO)
        d = None
        try:
            workdir = tempfile.mkdtemp(prefix="nemo-bench-packet-", dir="/var/tmp")
            os.chmod(workdir, 0o755)
            ne.JANITOR.paths.append(workdir)
            d = ne.Nemod(workdir, "nemo", "bench", 1, 30, {"log_level": "info"},
                         tag="bpkt5%d%d" % (os.getpid(), rep))
            d.start()
            d.deploy_spec("echo", {"runtime": "c", "code": {"path": ECHO},
                                   "packet": {"nf": FN_SOCK, "lcore": 1, "batch": 64}})
            d.wait_packet_serving("echo")
            (a, hz), h0 = bn.read_cycles(), ne.harvested_ns(d.cgroup_root, 1)
            r = gen(total, seconds, flows)
            (b, _), h1 = bn.read_cycles(), ne.harvested_ns(d.cgroup_root, 1)
            told = [x.split("cosched: ", 1)[-1].strip() for x in open(d.log, errors="replace")
                    if "reclaimed (" in x or "spare is back" in x]
        finally:
            if d:
                d.stop()
            log = bn.stop(p)
        m = re.search(r"sleep [^\n]*?(\d+)\.\.(\d+) us", log)
        bound = float(m.group(2)) + 40 if m else float("nan")
        spare_s = (b[0] - a[0] - (b[1] - a[1])) / hz
        harvest = (h1 - h0) / 1e9 / spare_s if spare_s > 0 else float("nan")
        fn_full = max(0, nf_count(log, "drops:", "fn_full"))
        nf_drops = max(0, nf_count(log, "summary", "dropped")) - fn_full
        missed = nf_count(log, "port 0 (", "imissed")
        rows["NF + nemod"].append((nf_drops + max(0, missed), r.get("other_lat_p99_us"),
                                   r["replies"] / r["duration_s"], bound))
        print("   %-14s %10d %9d %9d %9s %9s %9s %10.0f %10s %10s %8d %8.3f" %
              ("NF + nemod", r["sent"], nf_drops, missed, fmt(r.get("other_lat_p50_us")),
               fmt(r.get("other_lat_p99_us")), fmt(r.get("other_lat_p999_us")),
               r["replies"] / r["duration_s"], fmt(r.get("reply_lat_p50_us")),
               fmt(r.get("reply_lat_p99_us")), fn_full, harvest))
        why = drop_reasons(log)
        if why:
            print("   %-14s NF drops: %s" % ("", why))
        # what the NF spent on the function's packets (a build before it does not say), and
        # how often nemod took the core back: the instance owns that share since it counts
        m = re.search(r"packets for functions: (\d+), their cycles \d+ \(([\d.]+)% of busy\)",
                      log)
        print("   %-14s NF: %s; nemod reclaimed the core %d times" %
              ("", "%s %% of its busy cycles on the function's %s packets" %
               (m.group(2), m.group(1)) if m else "no fn_cycles in its summary (older build)",
               sum(1 for x in told if "reclaimed (" in x)))
        for line in told[:4]:  # the function's core taken back for the NF, and returned
            print("   %-14s nemod: %s" % ("", line))
        if len(told) > 4:
            print("   %-14s nemod: ... %d more" % ("", len(told) - 4))
    a, b = rows["NF alone"], rows["NF + nemod"]
    p99a, p99b = med_p99(a), med_p99(b)
    print("   (harvest = the sandbox cgroup's CPU time on cpu 1 / the NF's spare; fn_full = "
          "packets for the function dropped at its full ring, not NF loss)")
    bound = med([x[3] for x in b])
    print("   NF loss (drops other than fn_full, and rx overflow): alone %d, beside nemod's "
          "function %d (medians); forwarded p99 %.1f -> %.1f us, delta %+.1f us against the "
          "bound max-sleep + 40 = %.0f us (%s); the function's replies %.0f /s (median; "
          "goal 1 000 000)" %
          (med([x[0] for x in a]), med([x[0] for x in b]), p99a, p99b, p99b - p99a, bound,
           "met" if p99b - p99a <= bound else "NOT met", med([x[2] for x in b])))


# ---- table 4: the same function packet-triggered, over HTTP and over MQTT, all in nemod ----

T4_FUNCS = (  # name, code, the NF's UDP port for it, a request's payload over HTTP and MQTT
    ("echo", ECHO, 9000, "nemo-bench-packet-echo"),  # 22 bytes, as nemo-gen's payload
    ("sensor", SENSOR, 5683, "temp 21.5"))


def t4_nemod():
    """nemod with MQTT, sandboxes on the NF's core (cpu 1), housekeeping on cpu 0; no harvest
    loop: the sleep-floor lease of the rows that have one is this script's, as in table 2."""
    workdir = tempfile.mkdtemp(prefix="nemo-bench-packet-", dir="/var/tmp")
    os.chmod(workdir, 0o755)
    ne.JANITOR.paths.append(workdir)
    d = ne.Nemod(workdir, "colocate-default", "bench", 1, 30, {"log_level": "warn"},
                 tag="bpkt%d" % os.getpid())
    d.start()
    return d


def t4_packet_figures(d, name):
    """The function's packet counters once they stand still: the instance drains what its
    ring still holds after a run, and nemod reads an instance's figures every 50 ms."""
    prev = None
    for _ in range(40):
        met = d.metrics()
        cur = {k: ne.metric_sum(met, "nemo_packet_%s_total" % k, function=name)
               for k in ("packets", "batches", "replies", "errors")}
        if cur == prev:
            break
        prev = cur
        time.sleep(0.15)
    return cur


def t4_wrk(d, path, payload, conns, seconds):
    env = dict(os.environ, NEMO_TOKEN=d.token, BENCH_PATH=path, BENCH_BODY=payload)
    r = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c%d" % conns, "-d%ds" %
                        max(1, round(seconds)), "--timeout", "5s", "-s",
                        os.path.join(ROOT, "experiments", "bench_api.lua"),
                        "http://127.0.0.1:%d" % d.port], env=env, capture_output=True,
                       text=True, timeout=seconds + 30)
    m = re.search(r"^WRK (.*)$", r.stdout, re.M)
    if not m:
        raise RuntimeError("wrk: %s %s" % (r.stdout, r.stderr))
    f = dict(x.split("=") for x in m.group(1).split())
    errors = sum(int(f[k]) for k in ("non2xx", "connect_err", "read_err", "write_err",
                                     "timeout"))
    return {"rps": float(f["rps"]), "p50": float(f["p50_us"]), "p99": float(f["p99_us"]),
            "n": int(f["requests"]), "errors": errors}


def t4_mqtt(d, topic, payload, window, seconds, qos):
    r = subprocess.run(["taskset", "-c", "0", os.path.join(BIN, "bench_api_mqtt"), "--load",
                        str(d.mqtt_port), topic, str(seconds), str(window), str(qos), payload],
                       capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"^MQTTLOAD (.*)$", r.stdout, re.M)
    if not m:
        raise RuntimeError("bench_api_mqtt: %s %s" % (r.stdout, r.stderr))
    f = dict(x.split("=") for x in m.group(1).split())
    return {"rps": float(f["rps"]), "p50": float(f["p50_us"]), "p99": float(f["p99_us"]),
            "n": int(f["answered"]), "errors": int(f["unanswered"])}


def f9(x):
    return "%9.1f" % x if x is not None else "%9s" % "-"


def table4(seconds, pkt_rate, floor_us, conns, window, qos):
    rules = [{"proto": "udp", "dport": port, "function": name, "reply": True}
             for name, _, port, _ in T4_FUNCS]
    functions = [{"name": "echo", "slots": 4096}, {"name": "sensor", "slots": 4096}]
    print("\n4. the same C function in nemod: packet trigger, HTTP, MQTT; sandboxes on cpu 1 "
          "(the NF's core), callers on cpu 0; load average %s" %
          " ".join("%.2f" % x for x in os.getloadavg()))
    p = start_nf("sleep", rules, "t4", functions)
    d = None
    try:
        d = t4_nemod()
        for name, code, _, _ in T4_FUNCS:
            d.deploy_spec(name, {"runtime": "c", "code": {"path": code},
                                 "packet": {"nf": FN_SOCK, "lcore": 1, "batch": 64}})
            d.deploy_spec(name + "-http", {"runtime": "c", "code": {"path": code},
                                           "concurrency": conns})
            d.deploy_spec(name + "-mqtt", {"runtime": "c", "code": {"path": code},
                                           "concurrency": window,
                                           "mqtt": {"topics": ["nemo/bench/" + name],
                                                    "qos": qos}})
        for name, _, _, _ in T4_FUNCS:
            d.wait_packet_serving(name)
        print("   %-8s %-34s %11s %9s %9s %8s %9s %11s" %
              ("function", "path", "calls/s", "p50 us", "p99 us", "lost %", "batch",
               "fn replies/s"))
        for name, _, port, payload in T4_FUNCS:
            rows = {}
            pkt_rows = [("packet, %.0fk/s offered" % (pkt_rate / 1e3), pkt_rate, 0),
                        ("packet, %.0fk/s, %d us lease" % (pkt_rate / 1e3, floor_us), pkt_rate,
                         floor_us),
                        ("packet, 10k/s offered", 10000, 0)]
            for label, rate, floor in pkt_rows:
                if floor:
                    bn.set_floor(floor * 1000, seconds + 30)
                m0 = t4_packet_figures(d, name)
                # no ring warm-up: its probes (twice nemo-gen's memif ring, before it measures)
                # would reach the function and be counted by nemod with the rest
                r = gen(rate, seconds, dport=port, warm=False)
                m1 = t4_packet_figures(d, name)
                if floor:
                    bn.set_floor(0, 0)
                dm = {k: m1[k] - m0[k] for k in m0}
                # the echo's replies carry nemo-gen's stamp: counted and timed by nemo-gen;
                # the sensor's answers carry none: counted by nemod (replies made)
                n = r["replies"] if name == "echo" else dm["replies"]
                rows[label] = {"rps": n / r["duration_s"], "made": dm["replies"] / r["duration_s"],
                               "p50": r.get("reply_lat_p50_us"),
                               "p99": r.get("reply_lat_p99_us"),
                               "lost": 100.0 * max(0, r["sent"] - n) / max(1, r["sent"]),
                               "batch": dm["packets"] / dm["batches"] if dm["batches"]
                               else float("nan"), "errors": dm["errors"]}
            t4_wrk(d, "/function/%s-http" % name, payload, conns, 1)  # instances warm
            for c in sorted({conns, 1}, reverse=True):
                w = t4_wrk(d, "/function/%s-http" % name, payload, c, seconds)
                w["lost"] = 100.0 * w["errors"] / max(1, w["n"] + w["errors"])
                rows["HTTP, %d connection(s)" % c] = w
            for _ in range(20):  # the trigger subscribes asynchronously: until it answers
                if t4_mqtt(d, "nemo/bench/" + name, payload, 1, 0.3, qos)["n"]:
                    break
            for wnd in sorted({window, 1}, reverse=True):
                m = t4_mqtt(d, "nemo/bench/" + name, payload, wnd, seconds, qos)
                m["lost"] = 100.0 * m["errors"] / max(1, m["n"] + m["errors"])
                rows["MQTT QoS %d, %d in flight" % (qos, wnd)] = m
            for label, r in rows.items():
                print("   %-8s %-34s %11.0f %9s %9s %8.3f %9s %11s" %
                      (name, label, r["rps"], f9(r.get("p50")), f9(r.get("p99")),
                       r["lost"], f9(r.get("batch")),
                       "%11.0f" % r["made"] if "made" in r else "%11s" % "-"))
            pk = [rows[x[0]]["rps"] for x in pkt_rows[:2]]
            http = rows["HTTP, %d connection(s)" % conns]["rps"]
            mq = rows["MQTT QoS %d, %d in flight" % (qos, window)]["rps"]
            print("   %-8s calls/s packet / HTTP (%d connections): %.1f x without a lease, "
                  "%.1f x with it; packet / MQTT (%d in flight): %.1f x, %.1f x" %
                  (name, conns, pk[0] / http if http else float("nan"),
                   pk[1] / http if http else float("nan"), window,
                   pk[0] / mq if mq else float("nan"), pk[1] / mq if mq else float("nan")))
        print("   (calls/s: the echo's replies that reached nemo-gen, which times them by their "
              "stamps; the sensor's answers carry none, so its calls/s are the replies the "
              "function made, fn replies/s, from nemod's nemo_packet_replies_total, not timed; "
              "batch = packets per handler call; nemo-gen without its ring warm-up here)")
    finally:
        if d:
            d.stop()
        bn.stop(p)
    print("   load average at the end of table 4: %s" %
          " ".join("%.2f" % x for x in os.getloadavg()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3, help="length of each traffic run")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of tables 1 and 3")
    ap.add_argument("--floor-us", type=int, default=100, help="the sleep-floor lease")
    ap.add_argument("--rates", default="100k,300k,1M,max", help="table 2's offered rates")
    ap.add_argument("--fn-pps", type=float, default=1e6, help="table 3's function rate")
    ap.add_argument("--only", default="12345", help="which tables")
    ap.add_argument("--fn-sched", default="idle,nice0",
                    help="table 2: how the function runs on cpu 1 (idle, nice0)")
    ap.add_argument("--pkt-rate", type=float, default=1e6, help="table 4's offered packets/s")
    ap.add_argument("--conns", type=int, default=8, help="table 4: wrk's connections")
    ap.add_argument("--window", type=int, default=16, help="table 4: MQTT requests in flight")
    ap.add_argument("--qos", type=int, default=1, choices=(0, 1, 2), help="table 4: MQTT QoS")
    ap.add_argument("--quick", action="store_true",
                    help="1 s runs, 1 repetition, table 2 at 100k and 1M with SCHED_IDLE only")
    a = ap.parse_args()
    if a.quick:
        a.seconds, a.reps, a.rates, a.fn_sched = 1, 1, "100k,1M", "idle"
    rates = []
    for x in a.rates.split(","):
        if x == "max":
            rates.append("max")
        else:
            mult = {"k": 1e3, "M": 1e6}.get(x[-1], 1)
            rates.append(float(x[:-1] if mult != 1 else x) * mult)
    for need in ("nemo-nf", "nemo-gen", "nemo-pktfn", "bench_packet_cost", "nemod",
                 "bench_api_mqtt"):
        if not os.access(os.path.join(BIN, need), os.X_OK):
            sys.exit("bench-packet: build first (make all): %s is missing" % need)
    if "4" in a.only and not (shutil.which("wrk") and os.path.exists("/usr/sbin/mosquitto")):
        sys.exit("bench-packet: table 4 needs wrk and mosquitto (make deps)")
    print("bench-packet: %s, %d cpus, %.0f s per run, load average %s" %
          (os.uname().nodename, os.cpu_count(), a.seconds,
           " ".join("%.2f" % x for x in os.getloadavg())))
    try:
        capacity = None
        if "1" in a.only:
            capacity = table1(a.seconds, a.reps)
        if "2" in a.only:
            table2(a.seconds, rates, a.floor_us, a.fn_sched.split(","))
        if "3" in a.only:
            if capacity is None:
                p = start_nf("poll", None, "cal")
                capacity = max(gen("max", 2)["rx_pps"] for _ in range(2))
                bn.stop(p)
            table3(a.seconds, capacity, a.reps, a.floor_us, a.fn_pps)
        if "5" in a.only:
            if capacity is None:
                p = start_nf("poll", None, "cal")
                capacity = max(gen("max", 2)["rx_pps"] for _ in range(2))
                bn.stop(p)
            table5(a.seconds, capacity, a.reps, a.fn_pps)
        if "4" in a.only:
            table4(a.seconds, a.pkt_rate, a.floor_us, a.conns, a.window, a.qos)
        print("\nload average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    finally:
        cleanup()


if __name__ == "__main__":
    main()
