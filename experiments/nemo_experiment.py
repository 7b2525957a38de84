#!/usr/bin/python3
"""nemo_experiment.py - make experiment: the NEMO evaluation, scenario against scenario, one run.

Usage:
  nemo_experiment.py [--smoke | --full] [--out DIR] [--resume | --fresh] [--reps N]
  nemo_experiment.py --report-only DIR          (CSV -> plots + report.md again)
  nemo_experiment.py live [--nf-config F] [--nemod-config F] [--duration S]   (make run)

Scenarios, on the same traffic and the same functions (DESIGN.md, "Definitions"):
  dedicated         NF sleeps when idle; functions on the housekeeping core only
  colocate-fifo     straightforward co-location: NF busy-polls at SCHED_FIFO, sandboxes on the
                    NF core at default weight, keep-alive TTL, no pre-warming
  colocate-default  the same with the NF busy-polling at default priority
  nemo              NF sleeps when idle; nemod harvests the NF core and co-schedules
  nemo-no-prewarm   nemo without pre-warming
  nemo-zygotes      nemo with zygotes: pre-warming keeps a zygote per function, and calls that
                    find no idle instance fork it instead of starting cold
Each repetition runs every scenario once; the order rotates from one repetition to the next,
so that machine drift favours no scenario. Inside a scenario block the NF and nemod stay up
and the cells (load x function mix x invocation rate) run one after the other.

Every figure in report.md is computed from the CSVs by report(); harvested cycles come from
the harvest cgroup's cpuacct accounting, read here, never from nemod's metrics.
"""
import argparse
import csv
import datetime
import glob
import http.client
import json
import math
import os
import platform
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from goals import GOAL_DEFAULT_COMPL, GOAL_DEFAULT_P999, GOAL_FIFO_SPEEDUP, ratio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
FUNCS = os.path.join(ROOT, "build", "functions")
PY = "/usr/bin/python3"

SCENARIOS = ["dedicated", "colocate-fifo", "colocate-default", "nemo", "nemo-no-prewarm",
             "nemo-zygotes"]
SCENARIO_DESC = {
    "dedicated": "NF alone on its core (sleep when idle); functions on the housekeeping core",
    "colocate-fifo": "NF busy-polls at SCHED_FIFO; sandboxes on the NF core at default weight",
    "colocate-default": "NF busy-polls at default priority; sandboxes on the NF core, default weight",
    "nemo": "NF sleeps when idle; nemod harvests its spare cycles, pre-warming on",
    "nemo-no-prewarm": "nemo with pre-warming off",
    "nemo-zygotes": "nemo with zygotes on (sandbox.zygotes): calls with no idle instance fork one",
}
HARVEST_SCENARIOS = ("nemo", "nemo-no-prewarm", "nemo-zygotes")

# NEMO (Zhang et al., IEEE TC 2022): published figures that rows are set beside.
NEMO_HARVEST_SHARE = 0.41
NEMO_SPEEDUP = (12.5, 25.0)

# What one experiment runs. cell_s: measured seconds per cell; loads: shares of the measured
# capacity; rates: invocations per second (the first is the base rate of the load sweep).
PROFILES = {
    "smoke": {"reps": 2, "cell_s": 1.5, "loads": [0.5], "extra": ["step"], "mixes": [],
              "rates": [10], "cap_s": 1.0, "ttl_s": 2},
    "default": {"reps": 2, "cell_s": 3.5, "loads": [0.0, 0.25, 0.5, 0.75, 1.0],
                "extra": ["on_off", "trace", "step"], "mixes": ["c", "python", "echo"],
                "rates": [10, 3, 30], "cap_s": 3.0, "ttl_s": 5},
    "full": {"reps": 5, "cell_s": 8.0, "loads": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
                                                  1.0],
             "extra": ["on_off", "trace", "step"], "mixes": ["c", "python", "echo"],
             "rates": [10, 2, 5, 20, 50], "cap_s": 5.0, "ttl_s": 5},
}
REF_CELL = "load50-mixed-r0"  # the cell the per-scenario plots and the report table use

RESULT_FIELDS = [
    "seq", "rep", "scenario", "cell", "status", "load_kind", "load_share", "offered_pps", "mix",
    "inv_rate", "duration_s", "nf_tx_pps", "nf_rx_pps", "nf_sent", "nf_lost", "nf_loss_ratio",
    "nf_p50_us", "nf_p99_us", "nf_p999_us", "spare_ratio", "spare_s", "harvested_s",
    "harvest_ratio", "invocations", "inv_ok", "inv_errors", "http_invocations",
    "mqtt_invocations", "cold", "warm", "prewarmed", "zygote", "compl_mean_ms", "compl_p50_ms",
    "compl_p99_ms", "start_p50_ms", "start_p99_ms", "run_p50_ms", "run_p99_ms", "note"]
INV_FIELDS = ["seq", "rep", "scenario", "cell", "function", "transport", "status", "start_path",
              "total_ms", "start_ms", "run_ms", "queue_us", "create_us", "init_us", "run_us", "core"]
TS_FIELDS = ["seq", "rep", "scenario", "cell", "t_s", "rx_pps", "spare_ratio", "harvested_share"]
ORDER_FIELDS = ["seq", "rep", "scenario", "status", "started", "finished"]


def log(msg):
    sys.stderr.write("\r\033[K" if sys.stderr.isatty() else "")
    sys.stderr.write("nemo-experiment: %s\n" % msg)
    sys.stderr.flush()


def pct(values, p):
    """The p-th percentile (0..100) of values, nearest rank; None for no values."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return v[min(len(v) - 1, max(0, int(math.ceil(p / 100.0 * len(v))) - 1))]


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- cleanup: everything this process creates is registered here -------------------------------

class Janitor:
    """Processes, files, DPDK runtime folders and cgroups made by this run; clean() removes them."""

    def __init__(self):
        self.procs, self.paths, self.prefixes, self.cgroups = [], [], [], []
        self.cmdlines = set()

    def proc(self, args, logfile, **kw):
        # known before it starts: a Ctrl-C that lands inside Popen, after the fork, loses the
        # Popen object but not the command line, by which clean() still finds the process
        self.cmdlines.add("\0".join(args))
        out = open(logfile, "ab")
        # a session of its own: a Ctrl-C reaches the driver only, which then stops them in order
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             **kw)
        out.close()
        p.logfile = logfile
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGINT, timeout=15):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    def strays(self):
        """Pids running one of our command lines that no Popen of ours holds."""
        mine = {p.pid for p in self.procs}
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) in mine:
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().rstrip(b"\0").decode(errors="replace")
            except OSError:
                continue
            if cmd in self.cmdlines:
                yield int(pid)

    def clean(self):
        for p in reversed(list(self.procs)):
            self.stop(p, signal.SIGTERM if "nemod" in p.args[0] else signal.SIGINT)
        for pid in list(self.strays()):
            try:
                os.kill(pid, signal.SIGINT)
                for _ in range(100):  # 10 s to stop cleanly, as stop() gives
                    time.sleep(0.1)
                    os.kill(pid, 0)
                    with open("/proc/%d/stat" % pid) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                else:
                    os.kill(pid, signal.SIGKILL)
            except (OSError, IndexError):
                pass
        for prefix in self.prefixes:
            shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
        for path in self.paths:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.unlink(path)
        for root in self.cgroups:
            remove_cgroup(root)
        self.paths, self.prefixes, self.cgroups = [], [], []


JANITOR = Janitor()


# ---- cgroup accounting: harvested cycles -------------------------------------------------------

def cgroup_mounts():
    """{controller: mountpoint} for v1 hierarchies, plus 'unified' for a v2 mount."""
    out = {}
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype, opts = line.split()[:4]
            if fstype == "cgroup":
                for o in opts.split(","):
                    out.setdefault(o, mnt)
            elif fstype == "cgroup2":
                out.setdefault("unified", mnt)
    return out


def harvested_ns(root, cpu):
    """CPU time (ns) that sandboxes under cgroup <root> used on cpu, from cgroup accounting.

    v1: <cpuacct>/<root>/cpuacct.usage_percpu, column cpu (covers every core<N> child).
    v2: <unified>/<root>/core<cpu>/cpu.stat usage_usec (that cgroup is pinned to cpu).
    Returns 0 while the cgroup does not exist yet (nothing has run there)."""
    m = cgroup_mounts()
    if "cpuacct" in m:
        path = os.path.join(m["cpuacct"], root, "cpuacct.usage_percpu")
        try:
            with open(path) as f:
                return int(f.read().split()[cpu])
        except FileNotFoundError:
            return 0
    if "unified" in m:
        try:
            with open(os.path.join(m["unified"], root, "core%d" % cpu, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "usage_usec":
                        return int(v) * 1000
        except FileNotFoundError:
            return 0
    raise RuntimeError("no cpuacct (v1) or unified (v2) cgroup mount: cannot account harvested")


def remove_cgroup(root):
    """rmdir <mount>/<root> and its children in every hierarchy (deepest first)."""
    for mnt in set(cgroup_mounts().values()):
        top = os.path.join(mnt, root)
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            for _ in range(50):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # a task still leaving


# ---- the NF: nemo-nf and its telemetry ---------------------------------------------------------

def nf_config_for(scenario, base, name, sock):
    """The NF config of a scenario: the base config with its name, memif socket and lcore policy."""
    cfg = json.loads(json.dumps(base))
    cfg["name"] = name
    cfg["stats_interval_ms"] = 0
    port = cfg["ports"][0]
    port["vdev"] = re.sub(r"socket=[^,]+", "socket=" + sock, port["vdev"])
    for lc in cfg["lcores"]:
        if scenario == "colocate-fifo":
            lc["idle"] = {"policy": "poll"}
            lc["sched"] = {"policy": "fifo", "priority": 50}
        elif scenario == "colocate-default":
            lc["idle"] = {"policy": "poll"}
            lc["sched"] = {"policy": "other", "nice": 0}
        elif scenario == "capacity":
            lc["idle"] = {"policy": "poll"}
    return cfg


class NF:
    def __init__(self, workdir, scenario, base_cfg, name):
        self.name = name
        self.sock = os.path.join(workdir, "nf-%s.memif" % name)
        self.cfg = nf_config_for(scenario, base_cfg, name, self.sock)
        self.cpu = self.cfg["lcores"][0].get("cpu", self.cfg["lcores"][0]["lcore"])
        self.cfg_path = os.path.join(workdir, "nf-%s.json" % name)
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f, indent=1)
        self.log = os.path.join(workdir, "nf-%s.log" % name)
        self.proc = None
        self.tel = None

    def start(self):
        for p in (self.sock, "/dev/shm/nemo-hc-" + self.name):
            if os.path.lexists(p):
                os.unlink(p)
        JANITOR.paths += [self.sock, "/dev/shm/nemo-hc-" + self.name]
        JANITOR.prefixes.append("nemo-nf-" + self.name)
        self.proc = JANITOR.proc([os.path.join(BIN, "nemo-nf"), "--config", self.cfg_path],
                                 self.log)
        end = time.time() + 20
        while not (os.path.exists(self.sock) and os.path.exists("/dev/shm/nemo-hc-" + self.name)):
            if self.proc.poll() is not None or time.time() > end:
                raise RuntimeError("nemo-nf did not start:\n" + tail(self.log))
            time.sleep(0.02)

    def lcore(self):
        """The NF lcore's telemetry record (/nemo/lcores) for the NF cpu."""
        if self.tel is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect("/var/run/dpdk/nemo-nf-%s/dpdk_telemetry.v2" % self.name)
            s.recv(4096)
            self.tel = s
        self.tel.send(b"/nemo/lcores")
        recs = json.loads(self.tel.recv(1 << 20).decode())["/nemo/lcores"]
        for r in recs.values():
            if r["cpu"] == self.cpu:
                return r
        raise RuntimeError("no lcore on cpu %d in /nemo/lcores" % self.cpu)

    def module(self, lcore, index):
        """An NF module instance's figures (/nemo/module,LCORE,INDEX)."""
        self.lcore()  # connects
        self.tel.send(b"/nemo/module,%d,%d" % (lcore, index))
        return json.loads(self.tel.recv(1 << 20).decode())["/nemo/module"]

    def stop(self):
        if self.tel:
            self.tel.close()
            self.tel = None
        if self.proc:
            JANITOR.stop(self.proc, signal.SIGINT)
            self.proc = None


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def gen_args(sock, load, capacity, seconds, workdir, json_out, csv_out=None):
    """nemo-gen arguments for one cell's load: a dict {kind, share} (see cells())."""
    args = [os.path.join(BIN, "nemo-gen"), "--socket", sock, "--cpu", "0", "--quiet",
            "--flows", "64", "--duration", "%.2f" % seconds, "--json", json_out]
    if csv_out:
        args += ["--csv", csv_out, "--interval-ms", "100"]
    kind = load["kind"]
    if kind == "constant" and int(capacity * load["share"]) <= 0:  # --rate must be > 0
        args += ["--profile", "steps", "--steps", "0:%.2f" % seconds]
    elif kind == "constant":
        args += ["--rate", str(int(capacity * load["share"]))]
    elif kind == "on_off":  # bursts at 80 % of capacity, 40 % of the time
        args += ["--profile", "on_off", "--rate", str(int(capacity * 0.8)), "--on-ms", "200",
                 "--off-ms", "300"]
    elif kind == "step":  # idle, a step to 90 %, idle: harvest, reclaim, harvest again
        third = seconds / 3
        args += ["--profile", "steps", "--steps", "0:%.2f,%d:%.2f,0:%.2f" %
                 (third, int(capacity * 0.9), third, third)]
    elif kind == "trace":  # a diurnal-like swell with two bursts, 0.5 s samples, ramped
        path = os.path.join(workdir, "trace.csv")
        with open(path, "w") as f:
            f.write("time_s,pps\n")
            n = max(2, int(seconds / 0.5) + 1)
            for i in range(n):
                t = i * 0.5
                share = 0.35 + 0.3 * math.sin(2 * math.pi * t / max(seconds, 1))
                if i in (n // 4, 3 * n // 4):
                    share = 0.95
                f.write("%.2f,%d\n" % (t, max(0, int(capacity * share))))
        args += ["--profile", "trace", "--trace", path, "--trace-interp", "linear"]
    return args


def load_share_of(load, seconds):
    """Average offered load as a share of capacity, for plotting the sweep."""
    return {"constant": load.get("share", 0), "on_off": 0.8 * 0.4, "step": 0.9 / 3,
            "trace": 0.35}.get(load["kind"], 0)


def measure_capacity(workdir, base_cfg, seconds):
    """Packets per second one NF lcore forwards with nemo-gen --max, busy-polling."""
    nf = NF(workdir, "capacity", base_cfg, "exp%d-cap" % os.getpid())
    nf.start()
    try:
        out = os.path.join(workdir, "cap.json")
        args = [os.path.join(BIN, "nemo-gen"), "--socket", nf.sock, "--cpu", "0", "--quiet",
                "--max", "--duration", str(seconds), "--json", out, "--flows", "64"]
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=seconds + 30)
        if r.returncode:
            raise RuntimeError("nemo-gen --max failed:\n" + r.stdout)
        with open(out) as f:
            return json.load(f)["rx_pps"]
    finally:
        nf.stop()
        JANITOR.clean()


# ---- nemod, mosquitto and the functions --------------------------------------------------------

FUNCTIONS = {  # name: (deploy spec, payload)
    "sha256": ({"runtime": "c", "code": {"path": os.path.join(FUNCS, "sha256.so")},
                "concurrency": 2, "timeout_ms": 30000}, b"20000"),
    "wordstats": ({"runtime": "python", "code": {"path": os.path.join(FUNCS, "wordstats.py")},
                   "concurrency": 2, "timeout_ms": 30000},
                  json.dumps({"text": "the quick brown fox jumps over the lazy dog " * 40,
                              "top": 3}).encode()),
    "echo": ({"runtime": "c", "code": {"path": os.path.join(FUNCS, "echo.so")},
              "concurrency": 2}, b'{"hello":"nemo"}'),
    # make run's background stream: back-to-back CPU-bound calls, so the harvest shows
    "sha256-stream": ({"runtime": "c", "code": {"path": os.path.join(FUNCS, "sha256.so")},
                       "concurrency": 2, "timeout_ms": 60000}, b"200000"),
    "echo-mqtt": ({"runtime": "c", "code": {"path": os.path.join(FUNCS, "echo.so")},
                   "mqtt": {"topics": ["nemo/exp/in"], "reply_topic": "nemo/exp/out", "qos": 1}},
                  b'{"sensor":7,"temp":21.5}'),
}
MIXES = {"c": ["sha256"], "python": ["wordstats"], "echo": ["echo"],
         "mixed": ["sha256", "wordstats", "echo", "echo-mqtt"]}


def nemod_config(workdir, scenario, nf_name, nf_cpu, port, mqtt_port, cgroup_root, ttl_s,
                 base=None):
    cfg = dict(base or {})
    cfg.update({"listen": "127.0.0.1:%d" % port, "token_file": os.path.join(workdir, "token"),
                "store_dir": os.path.join(workdir, "store"),
                "code_roots": [FUNCS], "cgroup_root": cgroup_root, "drain_timeout_ms": 3000,
                "keepalive_policy": "ttl", "keepalive_ttl_s": ttl_s,
                "cores": {"housekeeping": [0], "sandbox": [0 if scenario == "dedicated"
                                                           else nf_cpu]},
                "mqtt": {"enabled": True, "port": mqtt_port, "client_id": cgroup_root,
                         "reconnect_min_s": 1, "reconnect_max_s": 2}})
    if scenario in HARVEST_SCENARIOS:
        cfg["harvest"] = {"enabled": True, "channels": [nf_name],
                          "prewarm": scenario in ("nemo", "nemo-zygotes")}
    if scenario == "nemo-zygotes":
        cfg["sandbox"] = dict(cfg.get("sandbox", {}), zygotes=True)
    return cfg


_HARVEST_OK = {}


def harvest_available(workdir):
    """Does this nemod accept the 'harvest' config object? (nemod --check)"""
    if "ok" not in _HARVEST_OK:
        cfg = nemod_config(workdir, "nemo", "default", 1, 1, 1, "nemo-check", 5)
        path = os.path.join(workdir, "nemod-check.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([os.path.join(BIN, "nemod"), "--check", "--config", path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _HARVEST_OK["ok"] = r.returncode == 0
        _HARVEST_OK["why"] = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    return _HARVEST_OK["ok"]


class Nemod:
    """nemod + its mosquitto broker, with the sample functions deployed."""

    def __init__(self, workdir, scenario, nf_name, nf_cpu, ttl_s, base_cfg=None, tag=None):
        self.workdir = workdir
        tag = tag or "exp%d" % os.getpid()
        self.cgroup_root = "nemo-%s" % tag
        self.port, self.mqtt_port = free_port(), free_port()
        self.token = "nemo-exp-token-%016x" % random.getrandbits(64)
        self.cfg = nemod_config(workdir, scenario, nf_name, nf_cpu, self.port, self.mqtt_port,
                                self.cgroup_root, ttl_s, base_cfg)
        if base_cfg and "token_file" in base_cfg and os.path.exists(base_cfg["token_file"]):
            self.cfg["token_file"] = base_cfg["token_file"]
        self.cfg_path = os.path.join(workdir, "nemod.json")
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f, indent=1)
        if self.cfg["token_file"].startswith(workdir):
            with open(self.cfg["token_file"], "w") as f:
                f.write(self.token + "\n")
            os.chmod(self.cfg["token_file"], 0o600)
        else:
            with open(self.cfg["token_file"]) as f:
                self.token = f.read().strip()
        self.log = os.path.join(workdir, "nemod.log")
        self.proc = self.broker = None

    def start(self):
        conf = os.path.join(self.workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            # no Nagle: the broker's PUBACK and a reply to one client are two small writes,
            # and the second waits ~40 ms for a delayed ACK otherwise (bench-api)
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "set_tcp_nodelay true\n" % self.mqtt_port)
        self.broker = JANITOR.proc(["/usr/sbin/mosquitto", "-c", conf],
                                   os.path.join(self.workdir, "mosquitto.log"))
        wait_tcp(self.mqtt_port, self.broker)
        JANITOR.cgroups.append(self.cgroup_root)
        os.makedirs(self.cfg["store_dir"], exist_ok=True)
        self.proc = JANITOR.proc([os.path.join(BIN, "nemod"), "--config", self.cfg_path],
                                 self.log)
        end = time.time() + 20
        while True:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > end:
                raise RuntimeError("nemod did not become healthy:\n" + tail(self.log))
            time.sleep(0.05)

    def request(self, method, path, body=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers={"Authorization": "Bearer " + self.token})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def deploy(self, names):
        for name in names:
            spec = FUNCTIONS[name][0]
            st, body = self.request("PUT", "/api/v1/namespaces/_/actions/%s?overwrite=true" %
                                    name, json.dumps(spec))
            if st != 200:
                raise RuntimeError("deploy %s: HTTP %d %s" % (name, st, body[:300]))
        if "echo-mqtt" in names:  # the trigger subscribes asynchronously: wait until it answers
            # a slow host (an emulated guest: check-vm) may take seconds for one publish
            end = time.time() + 60
            while not self.activations("echo-mqtt", 0):
                if time.time() > end:
                    raise RuntimeError("the MQTT trigger of echo-mqtt never ran in 60 s:\n" +
                                       tail(self.log))
                mqtt_pub(self.mqtt_port, FUNCTIONS["echo-mqtt"][1])
                time.sleep(0.1)

    def deploy_spec(self, name, spec):
        st, body = self.request("PUT", "/api/v1/namespaces/_/actions/%s?overwrite=true" % name,
                                json.dumps(spec))
        if st != 200:
            raise RuntimeError("deploy %s: HTTP %d %s" % (name, st, body[:300]))

    def wait_packet_serving(self, name, timeout=15):
        """Until the function's packet trigger has its instances leased and serving."""
        end, state = time.time() + timeout, None
        while time.time() < end:
            st, body = self.request("GET", "/api/v1/namespaces/_/actions/" + name)
            state = (json.loads(body).get("packet") or {}).get("state") if st == 200 else None
            if state == "serving":
                return
            time.sleep(0.1)
        raise RuntimeError("the packet trigger of %s does not serve: state %s\n%s" %
                           (name, state, tail(self.log)))

    def activations(self, name, since_ms, limit=1000):
        st, body = self.request("GET", "/api/v1/namespaces/_/activations?name=%s&limit=%d" %
                                (name, limit))
        if st != 200:
            return []
        recs = json.loads(body)
        if isinstance(recs, dict):
            recs = recs.get("activations", [])
        return [r for r in recs if r.get("start", 0) >= since_ms]

    def metrics(self):
        st, body = self.request("GET", "/metrics")
        return body.decode(errors="replace") if st == 200 else ""

    def stop(self):
        if self.proc:
            JANITOR.stop(self.proc, signal.SIGTERM, timeout=20)
            self.proc = None
        if self.broker:
            JANITOR.stop(self.broker, signal.SIGTERM)
            self.broker = None
        remove_cgroup(self.cgroup_root)


def wait_tcp(port, proc, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d:\n%s" % (port, tail(proc.logfile)))


def mqtt_pub(port, payload):
    """One QoS 1 publish; False when the broker did not take it within 10 s (the caller that
    must see it delivered checks for that itself)."""
    try:
        subprocess.run(["mosquitto_pub", "-p", str(port), "-t", "nemo/exp/in", "-q", "1", "-m",
                        payload.decode()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return True


# ---- the invocation load -------------------------------------------------------------------------

class InvocationLoad:
    """Invocations at `rate` per second, round-robin over the mix's functions, for `seconds`.

    HTTP invocations are blocking OpenWhisk calls (the record comes back with the start path
    and phases); MQTT ones go through mosquitto_pub and are read back from the activations
    list. The completion time is request to response (HTTP) or queue+create+init+run (MQTT)."""

    WORKERS = 12

    def __init__(self, nemod, mix, rate, seconds):
        self.nemod, self.fns, self.rate, self.seconds = nemod, MIXES[mix], rate, seconds
        self.records, self.lock, self.q = [], threading.Lock(), queue.Queue()
        self.mqtt_sent = 0

    def _worker(self):
        while True:
            job = self.q.get()
            if job is None:
                return
            name = job
            payload = FUNCTIONS[name][1]
            if name == "echo-mqtt":
                try:
                    if mqtt_pub(self.nemod.mqtt_port, payload):
                        with self.lock:
                            self.mqtt_sent += 1
                except (OSError, subprocess.SubprocessError):
                    pass
                continue
            t0 = time.monotonic()
            try:
                st, body = self.nemod.request(
                    "POST", "/api/v1/namespaces/_/actions/%s?blocking=true&result=false" % name,
                    payload)
            except OSError as e:
                st, body = 0, str(e).encode()
            total_ms = (time.monotonic() - t0) * 1000
            rec = {"function": name, "transport": "http", "total_ms": total_ms}
            try:
                a = json.loads(body)
            except ValueError:
                a = {}
            rec.update(from_activation(a, st))
            with self.lock:
                self.records.append(rec)

    def run(self):
        self.t_start_ms = int(time.time() * 1000) - 5
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.WORKERS)]
        for t in threads:
            t.start()
        n = int(self.rate * self.seconds)
        t0 = time.monotonic()
        for i in range(n):
            due = t0 + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.q.put(self.fns[i % len(self.fns)])
        for _ in threads:
            self.q.put(None)
        for t in threads:
            t.join(90)

    def collect(self):
        """All records, with the MQTT ones read back from nemod (waits up to 10 s for them)."""
        recs = list(self.records)
        if self.mqtt_sent:
            end = time.time() + 10
            acts = []
            while time.time() < end:
                acts = [a for a in self.nemod.activations("echo-mqtt", self.t_start_ms)
                        if a.get("status") not in ("accepted", "running")]
                if len(acts) >= self.mqtt_sent:
                    break
                time.sleep(0.2)
            for a in acts:
                rec = {"function": "echo-mqtt", "transport": "mqtt"}
                rec.update(from_activation(a, 200))
                ph = a.get("phases") or {}
                rec["total_ms"] = sum(ph.get(k, 0) for k in
                                      ("queue_us", "create_us", "init_us", "run_us")) / 1000
                recs.append(rec)
            for _ in range(self.mqtt_sent - len(acts)):
                recs.append({"function": "echo-mqtt", "transport": "mqtt", "status": "lost",
                             "start_path": "", "total_ms": None})
        return recs


def from_activation(a, http_status):
    ph = a.get("phases") or {}
    status = a.get("status") or ("http_%d" % http_status)
    out = {"status": status, "start_path": a.get("startPath", ""), "core": a.get("core", "")}
    for k in ("queue_us", "create_us", "init_us", "run_us"):
        out[k] = ph.get(k)
    if ph:
        out["start_ms"] = (ph.get("queue_us", 0) + ph.get("create_us", 0) +
                           ph.get("init_us", 0)) / 1000
        out["run_ms"] = ph.get("run_us", 0) / 1000
    return out


class CpuStream:
    """`clients` blocking clients calling `name` back to back until stopped: a background stream
    of CPU-bound invocations, so that what the NF core's spare can give shows on screen."""

    def __init__(self, nemod, name, clients):
        self.nemod, self.name, self.stop_flag = nemod, name, False
        self.records, self.lock = [], threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self):
        while not self.stop_flag:
            t0 = time.monotonic()
            try:
                st, body = self.nemod.request(
                    "POST", "/api/v1/namespaces/_/actions/%s?blocking=true&result=false" %
                    self.name, FUNCTIONS[self.name][1], timeout=90)
                a = json.loads(body)
            except (OSError, ValueError):
                st, a = 0, {}
            rec = {"function": self.name, "transport": "http",
                   "total_ms": (time.monotonic() - t0) * 1000}
            rec.update(from_activation(a, st))
            with self.lock:
                self.records.append(rec)

    def done(self):
        with self.lock:
            return sum(r.get("status") == "success" for r in self.records)

    def stop(self):
        self.stop_flag = True
        for t in self.threads:
            t.join(95)
        return list(self.records)


# ---- one cell and one scenario block -------------------------------------------------------------

class Sampler(threading.Thread):
    """Every 100 ms: the NF's rx rate and spare_ratio, and the harvested share, for a time series."""

    def __init__(self, nf, cgroup_root):
        super().__init__(daemon=True)
        self.nf, self.root, self.rows, self.stop_ev = nf, cgroup_root, [], threading.Event()

    def run(self):
        t0 = time.monotonic()
        prev = None
        while not self.stop_ev.is_set():
            now = time.monotonic()
            try:
                r = self.nf.lcore()
            except (OSError, ValueError, RuntimeError):
                break
            h = harvested_ns(self.root, self.nf.cpu)
            if prev:
                dt = now - prev[0]
                dtot = r["total_cycles"] - prev[1]["total_cycles"]
                dbusy = r["busy_cycles"] - prev[1]["busy_cycles"]
                self.rows.append({"t_s": "%.2f" % (now - t0),
                                  "rx_pps": "%.0f" % ((r["rx_pkts"] - prev[1]["rx_pkts"]) / dt),
                                  "spare_ratio": "%.4f" % ((dtot - dbusy) / dtot if dtot else 1),
                                  "harvested_share": "%.4f" % ((h - prev[2]) / 1e9 / dt)})
            prev = (now, r, h)
            self.stop_ev.wait(0.1)


def run_cell(nf, nemod, cell, capacity, seconds, workdir, timeseries=False):
    """One cell: traffic + invocations for `seconds`; returns (result row, invocations, series)."""
    gj = os.path.join(workdir, "gen.json")
    if os.path.exists(gj):
        os.unlink(gj)
    lead = 0.6  # nemo-gen's link-up, probe and ring warm-up (~0.4 s), before the measured window
    gen = JANITOR.proc(gen_args(nf.sock, cell["load"], capacity, seconds + lead, workdir, gj),
                       os.path.join(workdir, "gen.log"))
    JANITOR.prefixes.append("nemo-gen-%d" % gen.pid)
    time.sleep(lead)
    sampler = Sampler(nf, nemod.cgroup_root) if timeseries else None
    a, h0 = nf.lcore(), harvested_ns(nemod.cgroup_root, nf.cpu)
    if sampler:
        sampler.start()
    load = InvocationLoad(nemod, cell["mix"], cell["rate"], seconds)
    load.run()
    b, h1 = nf.lcore(), harvested_ns(nemod.cgroup_root, nf.cpu)
    if sampler:
        sampler.stop_ev.set()
        sampler.join()
    try:
        gen.wait(seconds + 60)
    except subprocess.TimeoutExpired:
        pass
    JANITOR.stop(gen)
    recs = load.collect()
    if not os.path.exists(gj):
        raise RuntimeError("nemo-gen wrote no results: " + tail(gen.logfile, 3).strip())
    with open(gj) as f:
        g = json.load(f)
    hz = b["tsc_hz"]
    spare_s = ((b["total_cycles"] - a["total_cycles"]) - (b["busy_cycles"] - a["busy_cycles"])) / hz
    total_s = (b["total_cycles"] - a["total_cycles"]) / hz
    harvested_s = (h1 - h0) / 1e9
    ok = [r for r in recs if r.get("status") == "success"]
    done = [r for r in ok if r.get("total_ms") is not None]

    def f(x, fmt="%.3f"):
        return "" if x is None else fmt % x

    row = {
        "status": "ok", "load_kind": cell["load"]["kind"],
        "load_share": "%.3f" % load_share_of(cell["load"], seconds),
        "offered_pps": "%.0f" % (g.get("target_pps_avg") or 0), "mix": cell["mix"],
        "inv_rate": cell["rate"], "duration_s": "%.2f" % total_s,
        "nf_tx_pps": "%.0f" % g["tx_pps"], "nf_rx_pps": "%.0f" % g["rx_pps"],
        "nf_sent": g["sent"], "nf_lost": g["lost"],
        "nf_loss_ratio": "%.6f" % (g["lost"] / g["sent"] if g["sent"] else 0),
        "nf_p50_us": f(g.get("lat_p50_us")), "nf_p99_us": f(g.get("lat_p99_us")),
        "nf_p999_us": f(g.get("lat_p999_us")),
        "spare_ratio": "%.4f" % (spare_s / total_s) if total_s else "", "spare_s": "%.4f" % spare_s,
        "harvested_s": "%.4f" % harvested_s,
        "harvest_ratio": "%.4f" % (harvested_s / spare_s) if spare_s > 0 else "",
        "invocations": len(recs), "inv_ok": len(ok), "inv_errors": len(recs) - len(ok),
        "http_invocations": sum(r["transport"] == "http" for r in recs),
        "mqtt_invocations": sum(r["transport"] == "mqtt" for r in recs),
        "cold": sum(r.get("start_path") == "cold" for r in ok),
        "warm": sum(r.get("start_path") == "warm" for r in ok),
        "prewarmed": sum(r.get("start_path") == "prewarmed" for r in ok),
        "zygote": sum(r.get("start_path") == "zygote" for r in ok),
        "compl_mean_ms": f(sum(r["total_ms"] for r in done) / len(done) if done else None),
        "compl_p50_ms": f(pct([r["total_ms"] for r in done], 50)),
        "compl_p99_ms": f(pct([r["total_ms"] for r in done], 99)),
        "start_p50_ms": f(pct([r.get("start_ms") for r in done], 50)),
        "start_p99_ms": f(pct([r.get("start_ms") for r in done], 99)),
        "run_p50_ms": f(pct([r.get("run_ms") for r in done], 50)),
        "run_p99_ms": f(pct([r.get("run_ms") for r in done], 99)),
        "note": "" if total_s else "the NF lcore published no cycles in the window"}
    return row, recs, (sampler.rows if sampler else [])


def cells(profile):
    """The cells of a profile, in the order they run inside a scenario block."""
    p = PROFILES[profile]
    base = p["rates"][0]
    out = []
    for share in p["loads"]:
        out.append({"id": "load%d-mixed-r0" % round(share * 100),
                    "load": {"kind": "constant", "share": share}, "mix": "mixed", "rate": base})
    for kind in p["extra"]:
        out.append({"id": "%s-mixed-r0" % kind, "load": {"kind": kind}, "mix": "mixed",
                    "rate": base})
    for mix in p["mixes"]:
        out.append({"id": "load50-%s-r0" % mix, "load": {"kind": "constant", "share": 0.5},
                    "mix": mix, "rate": base})
    for i, rate in enumerate(p["rates"][1:], 1):
        out.append({"id": "load50-mixed-r%d" % i, "load": {"kind": "constant", "share": 0.5},
                    "mix": "mixed", "rate": rate})
    return out


def plan(reps):
    """(rep, scenario) blocks: every scenario once per repetition, the order rotated by one each
    repetition, so that no scenario always runs first, last or after the same neighbour."""
    out = []
    for rep in range(reps):
        k = rep % len(SCENARIOS)
        out += [(rep, s) for s in SCENARIOS[k:] + SCENARIOS[:k]]
    return out


def append_csv(path, fields, rows):
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow(r)


def run_block(seq, rep, scenario, state, out, nf_base, nemod_base):
    """Start the scenario's system, run every cell, stop it; returns result/inv/series rows."""
    prof = PROFILES[state["profile"]]
    cell_list = cells(state["profile"])
    base = {"seq": seq, "rep": rep, "scenario": scenario}
    rows, invs, series = [], [], []
    if scenario in HARVEST_SCENARIOS and not state["harvest_available"]:
        for c in cell_list:
            r = dict(base, cell=c["id"], status="unavailable", load_kind=c["load"]["kind"],
                     load_share="%.3f" % load_share_of(c["load"], prof["cell_s"]), mix=c["mix"],
                     inv_rate=c["rate"], note="harvest not available in this nemod")
            rows.append(r)
        return rows, invs, series
    workdir = tempfile.mkdtemp(prefix="nemo-exp-", dir="/var/tmp")
    os.chmod(workdir, 0o755)  # sandboxes read the store under it
    JANITOR.paths.append(workdir)
    logdir = os.path.join(out, "logs", "%03d-%s" % (seq, scenario))
    name = "exp%d-%d" % (os.getpid(), seq)
    nf = NF(workdir, scenario, nf_base, name)
    nemod = Nemod(workdir, scenario, name, nf.cpu, prof["ttl_s"], nemod_base, tag=name)
    try:
        nf.start()
        nemod.start()
        nemod.deploy(sorted({f for c in cell_list for f in MIXES[c["mix"]]}))
        for i, c in enumerate(cell_list):
            progress(state, seq, scenario, i, len(cell_list))
            try:
                row, recs, ts = run_cell(nf, nemod, c, state["capacity_pps"], prof["cell_s"],
                                         workdir, timeseries=c["load"]["kind"] == "step")
            except (RuntimeError, OSError, ValueError, KeyError) as e:
                # one failed cell is a row that says why, not a lost run
                log("%s %s: %s" % (scenario, c["id"], e))
                rows.append(dict(base, cell=c["id"], status="error", mix=c["mix"],
                                 load_kind=c["load"]["kind"], inv_rate=c["rate"],
                                 note=str(e).splitlines()[0][:200]))
                continue
            rows.append(dict(base, cell=c["id"], **row))
            invs += [dict(base, cell=c["id"], **r) for r in recs]
            series += [dict(base, cell=c["id"], **r) for r in ts]
    finally:
        nemod.stop()
        nf.stop()
        os.makedirs(logdir, exist_ok=True)
        for lf in ("nemod.log", "nf-%s.log" % name, "mosquitto.log", "gen.log"):
            if os.path.exists(os.path.join(workdir, lf)):
                shutil.copy(os.path.join(workdir, lf), logdir)
        JANITOR.clean()
    return rows, invs, series


def progress(state, seq, scenario, cell, ncells):
    blocks = len(state["plan"])
    done = sum(1 for b in state["plan"] if b["done"])
    el = time.time() - state["_t0"]
    per_block = state.get("_block_s") or (
        ncells * (PROFILES[state["profile"]]["cell_s"] + 1.2) + 4)
    remaining = (blocks - done) * per_block - (cell / max(1, ncells)) * per_block
    msg = ("[%d/%d] rep %d %-16s cell %d/%d | elapsed %s, about %s left" %
           (seq + 1, blocks, state["plan"][seq]["rep"] + 1, scenario, cell + 1, ncells,
            fmt_s(el), fmt_s(max(0, remaining))))
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + msg)
    else:
        sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def fmt_s(s):
    return "%dm%02ds" % (s // 60, s % 60)


def run_experiment(a):
    profile = "smoke" if a.smoke else "full" if a.full else "default"
    out = a.out
    if a.resume:
        if not out:
            cands = sorted(glob.glob(os.path.join(ROOT, "results", "*", "state.json")))
            if not cands:
                sys.exit("nemo-experiment: nothing to resume under results/")
            out = os.path.dirname(cands[-1])
        with open(os.path.join(out, "state.json")) as f:
            state = json.load(f)
        log("resuming %s (%d of %d blocks done)" %
            (out, sum(b["done"] for b in state["plan"]), len(state["plan"])))
    else:
        if not out:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            out = os.path.join(ROOT, "results", stamp)
            unfinished = [p for p in sorted(glob.glob(os.path.join(ROOT, "results", "*",
                                                                   "state.json")))
                          if not json.load(open(p)).get("complete")]
            if unfinished and not a.fresh:
                log("an unfinished run is in %s: --resume continues it, --fresh starts over" %
                    os.path.dirname(unfinished[-1]))
        elif os.path.exists(os.path.join(out, "state.json")):
            if not a.fresh:
                sys.exit("nemo-experiment: %s holds a run: --resume or --fresh" % out)
        if a.fresh and os.path.isdir(out):
            for f in glob.glob(os.path.join(out, "*")):
                shutil.rmtree(f) if os.path.isdir(f) else os.unlink(f)
        os.makedirs(out, exist_ok=True)
        reps = a.reps or PROFILES[profile]["reps"]
        state = {"profile": profile, "reps": reps, "complete": False,
                 "plan": [{"rep": r, "scenario": s, "done": False} for r, s in plan(reps)],
                 "cells": [c["id"] for c in cells(profile)], "out": out,
                 "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
                 "host": platform.node(), "kernel": platform.release(),
                 "cpus": os.cpu_count(), "started": datetime.datetime.now().isoformat(
                     timespec="seconds")}
    nf_base = json.load(open(a.nf_config))
    nemod_base = json.load(open(a.nemod_config)) if a.nemod_config else None
    scratch = tempfile.mkdtemp(prefix="nemo-exp-", dir="/var/tmp")
    JANITOR.paths.append(scratch)
    state["harvest_available"] = harvest_available(scratch)
    if not state["harvest_available"]:
        log("harvest not available in this nemod (%s): scenarios %s are reported as "
            "unavailable" % (_HARVEST_OK.get("why", ""), ", ".join(HARVEST_SCENARIOS)))
    if not state.get("capacity_pps"):
        log("measuring the NF's capacity (nemo-gen --max, %.0f s)" %
            PROFILES[profile]["cap_s"])
        state["capacity_pps"] = measure_capacity(scratch, nf_base, PROFILES[profile]["cap_s"])
        log("capacity %.3f Mpps" % (state["capacity_pps"] / 1e6))
        JANITOR.paths.append(scratch)
    save_state(out, state)
    state["_t0"] = time.time()
    ran = 0
    for seq, b in enumerate(state["plan"]):
        if b["done"]:
            continue
        t = time.time()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        rows, invs, series = run_block(seq, b["rep"], b["scenario"], state, out, nf_base,
                                       nemod_base)
        # a block's rows land together, after it finished: a stopped run leaves no half block
        append_csv(os.path.join(out, "results.csv"), RESULT_FIELDS, rows)
        append_csv(os.path.join(out, "invocations.csv"), INV_FIELDS, invs)
        append_csv(os.path.join(out, "timeseries.csv"), TS_FIELDS, series)
        append_csv(os.path.join(out, "order.csv"), ORDER_FIELDS, [
            {"seq": seq, "rep": b["rep"], "scenario": b["scenario"], "status": rows[0]["status"],
             "started": started, "finished": datetime.datetime.now().isoformat(
                 timespec="seconds")}])
        b["done"] = True
        if rows[0]["status"] == "ok":
            ran += 1
            state["_block_s"] = ((state.get("_block_s") or 0) * (ran - 1) + time.time() - t) / ran
        save_state(out, state)
    state["complete"] = True
    state["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    save_state(out, state)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    report(out)
    log("done: %s/report.md" % out)
    return out


def save_state(out, state):
    tmp = os.path.join(out, ".state.json.tmp")
    with open(tmp, "w") as f:
        json.dump({k: v for k, v in state.items() if not k.startswith("_")}, f, indent=1)
    os.replace(tmp, os.path.join(out, "state.json"))


# ---- report: every figure from the CSVs ------------------------------------------------------------

def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def spread(values, fmt="%.3g", scale=1.0):
    """'median [min–max]' over repetitions, or 'n/a'."""
    v = [x * scale for x in values if x is not None]
    if not v:
        return "n/a"
    m = median(v)
    if len(v) == 1:
        return fmt % m
    return "%s [%s–%s]" % (fmt % m, fmt % min(v), fmt % max(v))


def sweep_cells(ok):
    """(load share, cell) of the load sweep: constant load, mixed functions, the base rate."""
    return sorted({(num(r["load_share"]), r["cell"]) for r in ok
                   if r["load_kind"] == "constant" and r["mix"] == "mixed" and
                   r["cell"].endswith("-r0") and num(r["load_share"]) is not None})


def worst(values):
    v = [x for x in values if x is not None]
    return max(v) if v else None


def judge(checks):
    """(met, why, verdict) from checks (name, value, holds, what it shows when it does not
    hold): met is True, False, or None when a figure is missing and nothing else missed; why
    lists the parts that missed or are missing."""
    absent = ["no " + name for name, v, _, _ in checks if v is None]
    missed = [shown % v for _, v, holds, shown in checks if v is not None and not holds(v)]
    if missed:
        return False, missed + absent, "**NOT met**: " + "; ".join(missed + absent)
    if absent:
        return None, absent, "**no figure**: " + ", ".join(absent)
    return True, [], "met"


def dominance(vals, cell):
    """nemo against colocate-fifo and colocate-default at one cell, judged by the goals above:
    medians over the repetitions, except NF loss, which is the worst repetition."""
    def med(s, key):
        return median(vals(s, cell, key))

    lost = {s: worst(vals(s, cell, "nf_lost"))
            for s in ("nemo", "colocate-fifo", "colocate-default")}
    no_loss = ("nemo's NF loss", lost["nemo"], lambda x: x == 0, "nemo's NF lost %.0f packets")
    fifo = {"nemo_mean": med("nemo", "compl_mean_ms"),
            "base_mean": med("colocate-fifo", "compl_mean_ms"),
            "nemo_p50": med("nemo", "compl_p50_ms"),
            "base_p50": med("colocate-fifo", "compl_p50_ms"),
            "nemo_lost": lost["nemo"], "base_lost": lost["colocate-fifo"]}
    fifo["mean_x"] = ratio(fifo["base_mean"], fifo["nemo_mean"])
    fifo["p50_x"] = ratio(fifo["base_p50"], fifo["nemo_p50"])
    fifo["met"], fifo["why"], fifo["verdict"] = judge([
        ("mean speed-up", fifo["mean_x"], lambda x: x >= GOAL_FIFO_SPEEDUP,
         "mean speed-up %%.1f× < %.0f×" % GOAL_FIFO_SPEEDUP),
        ("p50 speed-up", fifo["p50_x"], lambda x: x >= GOAL_FIFO_SPEEDUP,
         "p50 speed-up %%.1f× < %.0f×" % GOAL_FIFO_SPEEDUP), no_loss])
    dflt = {"nemo_p999": med("nemo", "nf_p999_us"),
            "base_p999": med("colocate-default", "nf_p999_us"),
            "nemo_lost": lost["nemo"], "base_lost": lost["colocate-default"],
            "nemo_mean": fifo["nemo_mean"], "base_mean": med("colocate-default", "compl_mean_ms")}
    dflt["p999_x"] = ratio(dflt["base_p999"], dflt["nemo_p999"])
    dflt["compl_x"] = ratio(dflt["nemo_mean"], dflt["base_mean"])
    dflt["met"], dflt["why"], dflt["verdict"] = judge([
        ("NF p99.9 ratio", dflt["p999_x"], lambda x: x >= GOAL_DEFAULT_P999,
         "NF p99.9 %%.1f× better < %.0f×" % GOAL_DEFAULT_P999), no_loss,
        ("completion ratio", dflt["compl_x"], lambda x: x <= GOAL_DEFAULT_COMPL,
         "completion %%.2f× the baseline's > %.1f×" % GOAL_DEFAULT_COMPL)])
    return {"colocate-fifo": fifo, "colocate-default": dflt}


def pair(a, b, fmt):
    return "%s / %s" % (fmtv(a, fmt), fmtv(b, fmt))


def fmtv(x, fmt):
    return "n/a" if x is None else fmt % x


def dominance_section(vals, sweep):
    """report.md's Dominance section: per load of the sweep, nemo against each baseline."""
    doms = [(share, dominance(vals, cell)) for share, cell in sweep]
    L = ["## Dominance: nemo against straightforward co-location\n",
         "Per load of the sweep (mixed functions, %s), computed from `results.csv`: medians "
         "over repetitions, NF loss the worst repetition (packets). Goals: against "
         "`colocate-fifo`, function completion ≥ %.0f× better in mean and p50 and nemo's NF "
         "loss 0; against `colocate-default`, the NF's p99.9 ≥ %.0f× better (baseline / nemo), "
         "nemo's NF loss 0 and completion within %.1f× (nemo mean / baseline mean). "
         "`plots/dominance_load<N>.png` shows each load with NF p99.9 figures: function "
         "completion against NF p99.9, one point per scenario; points down-left dominate.\n"
         % (", ".join("`%s`" % c for _, c in sweep) or "no cells", GOAL_FIFO_SPEEDUP,
            GOAL_DEFAULT_P999, GOAL_DEFAULT_COMPL)]
    L.append("| load | completion mean ms, nemo / colocate-fifo | speed-up mean | completion "
             "p50 ms, nemo / colocate-fifo | speed-up p50 | NF lost, nemo / colocate-fifo | "
             "goal |")
    L.append("|---|---|---|---|---|---|---|")
    for share, d in doms:
        f = d["colocate-fifo"]
        L.append("| %.0f %% | %s | %s | %s | %s | %s | %s |" % (
            share * 100, pair(f["nemo_mean"], f["base_mean"], "%.2f"),
            fmtv(f["mean_x"], "%.1f×"),
            pair(f["nemo_p50"], f["base_p50"], "%.2f"), fmtv(f["p50_x"], "%.1f×"),
            pair(f["nemo_lost"], f["base_lost"], "%.0f"), f["verdict"]))
    L.append("")
    L.append("| load | NF p99.9 µs, nemo / colocate-default | p99.9 better by | NF lost, nemo / "
             "colocate-default | completion mean ms, nemo / colocate-default | completion "
             "ratio | goal |")
    L.append("|---|---|---|---|---|---|---|")
    for share, d in doms:
        f = d["colocate-default"]
        L.append("| %.0f %% | %s | %s | %s | %s | %s | %s |" % (
            share * 100, pair(f["nemo_p999"], f["base_p999"], "%.0f"),
            fmtv(f["p999_x"], "%.1f×"), pair(f["nemo_lost"], f["base_lost"], "%.0f"),
            pair(f["nemo_mean"], f["base_mean"], "%.2f"), fmtv(f["compl_x"], "%.2f×"),
            f["verdict"]))
    L.append("")
    missed = ["nemo does not dominate %s at load %.0f %%: %s." % (
        base, share * 100, "; ".join(d[base]["why"]))
        for share, d in doms for base in ("colocate-fifo", "colocate-default")
        if d[base]["met"] is False]
    return L, missed


def report(out):
    """plots/*.png and report.md from results.csv, timeseries.csv and state.json in out."""
    state = json.load(open(os.path.join(out, "state.json")))
    rows = read_csv(os.path.join(out, "results.csv"))
    series = read_csv(os.path.join(out, "timeseries.csv"))
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:  # no cycles published: no spare figure (older CSVs wrote 0 here)
        if not num(r["duration_s"]):
            r["spare_ratio"] = r["harvest_ratio"] = ""

    def vals(scen, cell, key):
        return [num(r[key]) for r in ok if r["scenario"] == scen and r["cell"] == cell]

    def med(scen, cell, key):
        return median(vals(scen, cell, key))

    cell_ids = state["cells"]
    ref = REF_CELL if REF_CELL in cell_ids else cell_ids[0]
    plots = os.path.join(out, "plots")
    os.makedirs(plots, exist_ok=True)
    pngs = make_plots(plots, ok, series, cell_ids, ref, vals)

    # headline figures
    share_by_cell = {c: med("nemo", c, "harvest_ratio") for c in cell_ids}
    share_by_cell = {c: v for c, v in share_by_cell.items() if v is not None}
    best_share = max(share_by_cell.items(), key=lambda kv: kv[1]) if share_by_cell else None
    speedups = {}
    for base in ("colocate-fifo", "colocate-default"):
        per_rep = []
        for rep in sorted({r["rep"] for r in ok}):
            n = [num(r["compl_mean_ms"]) for r in ok if r["scenario"] == "nemo" and
                 r["cell"] == ref and r["rep"] == rep]
            c = [num(r["compl_mean_ms"]) for r in ok if r["scenario"] == base and
                 r["cell"] == ref and r["rep"] == rep]
            if n and c and n[0] and c[0] is not None:
                per_rep.append(c[0] / n[0])
        speedups[base] = per_rep

    L = []
    L.append("# nemo experiment report\n")
    L.append("Run `%s` on %s (%s cpus, kernel %s), profile `%s`, %d repetitions, started %s%s." %
             (state["command"], state["host"], state["cpus"], state["kernel"], state["profile"],
              state["reps"], state["started"],
              ", finished " + state["finished"] if state.get("finished") else " (unfinished)"))
    L.append("NF capacity measured at the start: %.3f Mpps (one lcore, busy-polling, "
             "nemo-gen --max). Loads are shares of it.\n" % (state["capacity_pps"] / 1e6))
    L.append("Every figure below is computed from `results.csv` by `report()` in "
             "experiments/nemo_experiment.py. Cells show the median over repetitions with "
             "[min–max]. `harvested` is read from the harvest cgroup's cpuacct accounting on the "
             "NF core; `spare` from the NF's cycle counters (spare = total − busy).\n")
    if not state.get("harvest_available", True):
        L.append("**harvest not available in this nemod**: the scenarios nemo, "
                 "nemo-no-prewarm and nemo-zygotes did not run, and no figure stands in for "
                 "them.\n")
    L.append("## Against NEMO's published figures\n")
    L.append("| figure | nemo (this run) | NEMO published | goal met? |")
    L.append("|---|---|---|---|")
    if best_share:
        vs = vals("nemo", best_share[0], "harvest_ratio")
        L.append("| harvested share of spare cycles (harvest_ratio, best cell `%s`) | %s | 41 %% "
                 "| %s |" % (best_share[0], spread(vs, "%.1f %%", 100),
                             "yes" if best_share[1] >= NEMO_HARVEST_SHARE else
                             "**no**: below 41 %"))
    else:
        L.append("| harvested share of spare cycles | n/a | 41 % | **no figure**: nemo did not "
                 "run |")
    for base, v in speedups.items():
        if v:
            m = median(v)
            verdict = ("yes" if m >= NEMO_SPEEDUP[0] else
                       "**no**: below 12.5×")
            if base == "colocate-default":
                # a co-located function at default weight takes the NF's own cycles: the
                # goal there is to dominate on both axes (Dominance), not to be 12.5x faster
                verdict = "not a goal here: judged in Dominance"
            L.append("| speed-up over %s (mean completion time, cell `%s`) | %s | 12.5–25× | %s |"
                     % (base, ref, spread(v, "%.2f×"), verdict))
        else:
            L.append("| speed-up over %s | n/a | 12.5–25× | **no figure** |" % base)
    L.append("")
    dom_lines, dom_missed = dominance_section(vals, sweep_cells(ok))
    L += dom_lines
    L.append("## Per scenario, cell `%s` (load 50 %% of capacity, mixed functions)\n" % ref)
    L.append("| scenario | NF rx Mpps | NF loss % | NF p99 µs | spare_ratio | harvested s | "
             "harvest_ratio | invocations (cold/warm/prewarmed/zygote) | completion mean ms | "
             "p50 ms | p99 ms | start p50 ms | run p50 ms | NEMO published |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in SCENARIOS:
        if not vals(s, ref, "nf_rx_pps"):
            why = next((r["note"] for r in rows if r["scenario"] == s and r["note"]), "no data")
            L.append("| %s | %s |%s" % (s, why, " |" * 12))
            continue
        paths = "%s (%s/%s/%s/%s)" % (spread(vals(s, ref, "inv_ok"), "%.0f"),
                                      spread(vals(s, ref, "cold"), "%.0f"),
                                      spread(vals(s, ref, "warm"), "%.0f"),
                                      spread(vals(s, ref, "prewarmed"), "%.0f"),
                                      spread(vals(s, ref, "zygote"), "%.0f"))
        pub = {"nemo": "41 % harvested; 12.5–25× faster than co-location",
               "colocate-fifo": "baseline of the speed-up",
               "colocate-default": "baseline of the speed-up"}.get(s, "")
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s, spread(vals(s, ref, "nf_rx_pps"), "%.3f", 1e-6),
            spread(vals(s, ref, "nf_loss_ratio"), "%.3f", 100),
            spread(vals(s, ref, "nf_p99_us"), "%.0f"),
            spread(vals(s, ref, "spare_ratio"), "%.3f"),
            spread(vals(s, ref, "harvested_s"), "%.3f"),
            spread(vals(s, ref, "harvest_ratio"), "%.3f"), paths,
            spread(vals(s, ref, "compl_mean_ms"), "%.2f"),
            spread(vals(s, ref, "compl_p50_ms"), "%.2f"),
            spread(vals(s, ref, "compl_p99_ms"), "%.2f"),
            spread(vals(s, ref, "start_p50_ms"), "%.2f"),
            spread(vals(s, ref, "run_p50_ms"), "%.2f"), pub))
    L.append("")
    L.append("## NF protection (against dedicated, same cells, same run)\n")
    L.append("| scenario | cells with more loss than dedicated | worst p99 ratio to dedicated |")
    L.append("|---|---|---|")
    for s in SCENARIOS[1:]:
        worse, ratios = [], []
        for c in cell_ids:
            d_loss, s_loss = med("dedicated", c, "nf_loss_ratio"), med(s, c, "nf_loss_ratio")
            d99, s99 = med("dedicated", c, "nf_p99_us"), med(s, c, "nf_p99_us")
            if d_loss is None or s_loss is None:
                continue
            if s_loss > d_loss + 0.001:
                worse.append("%s (%.2f %% vs %.2f %%)" % (c, s_loss * 100, d_loss * 100))
            if d99 and s99:
                ratios.append((s99 / d99, c))
        if not ratios and not worse:
            L.append("| %s | n/a | n/a |" % s)
            continue
        r = max(ratios) if ratios else None
        L.append("| %s | %s | %s |" % (s, ", ".join(worse) or "none",
                                         "%.2f× (%s)" % r if r else "n/a"))
    L.append("")
    L.append("## Spare and harvested cycles against load\n")
    L.append("| cell | " + " | ".join("%s spare / harvest_ratio" % s for s in SCENARIOS) + " |")
    L.append("|---|" + "---|" * len(SCENARIOS))
    for c in cell_ids:
        L.append("| %s | %s |" % (c, " | ".join(
            "%s / %s" % (spread(vals(s, c, "spare_ratio"), "%.3f"),
                         spread(vals(s, c, "harvest_ratio"), "%.3f")) for s in SCENARIOS)))
    L.append("")
    L.append("## Where the goals are missed\n")
    missed = []
    if not best_share:
        missed.append("No harvested share for nemo: the scenario did not run.")
    elif best_share[1] < NEMO_HARVEST_SHARE:
        missed.append("nemo harvested at most %.1f %% of the spare cycles (cell `%s`), below "
                      "NEMO's 41 %%. harvested is bounded by the work the invocation load "
                      "offers: a light load leaves spare cycles unused." %
                      (best_share[1] * 100, best_share[0]))
    for base, v in speedups.items():
        if not v:
            missed.append("No speed-up over %s: nemo or %s has no completion times." %
                          (base, base))
        elif median(v) < NEMO_SPEEDUP[0] and base != "colocate-default":
            missed.append("The speed-up over %s is %.2f×, below NEMO's 12.5×." %
                          (base, median(v)))
    missed += dom_missed
    for r in rows:
        if r["status"] == "error" or (r["status"] == "ok" and not num(r["duration_s"])):
            missed.append("%s `%s` rep %s: %s" % (r["scenario"], r["cell"], int(r["rep"]) + 1,
                                                   r["note"] or
                                                   "the NF lcore published no cycles"))
    L += ["- " + m for m in missed] or ["- none"]
    L.append("")
    L.append("## Files\n")
    L.append("- `results.csv`: one row per scenario × cell × repetition; `invocations.csv`: "
             "every invocation with its start path and phases; `timeseries.csv`: 100 ms samples "
             "of the load-step cell; `order.csv`: the order the blocks ran in.")
    L.append("- plots: " + ", ".join("`plots/%s`" % os.path.basename(p) for p in pngs))
    L.append("- `logs/`: the NF, nemod, mosquitto and nemo-gen logs of every block.")
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    return os.path.join(out, "report.md")


def gnuplot(script, cwd):
    term = "pngcairo size 1000,600 font ',10'"
    r = subprocess.run(["gnuplot", "-e", "set terminal"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if "pngcairo" not in r.stdout:
        term = "png size 1000,600"
    r = subprocess.run(["gnuplot"], input="set terminal %s\n%s" % (term, script), cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        raise RuntimeError("gnuplot failed:\n" + r.stdout)


def make_plots(plots, ok, series, cell_ids, ref, vals):
    """Write the .dat files and .gp scripts, run gnuplot; returns the PNG paths."""
    scen_idx = {s: i for i, s in enumerate(SCENARIOS)}
    # 1. spare and harvested against load (constant-load cells)
    with open(os.path.join(plots, "load.dat"), "w") as f:
        for s in SCENARIOS:
            f.write("# %s\n" % s)
            pts = sorted({num(r["load_share"]) for r in ok if r["scenario"] == s and
                          r["load_kind"] == "constant" and r["mix"] == "mixed" and
                          r["cell"].endswith("-r0")})
            for x in pts:
                rs = [r for r in ok if r["scenario"] == s and r["load_kind"] == "constant" and
                      r["mix"] == "mixed" and r["cell"].endswith("-r0") and
                      num(r["load_share"]) == x]
                sp = [num(r["spare_ratio"]) for r in rs if num(r["spare_ratio"]) is not None]
                hv = [num(r["harvested_s"]) / num(r["duration_s"]) for r in rs
                      if num(r["duration_s"])]
                f.write("%.3f %s %s %s %s %s %s\n" % (
                    x, fmtd(median(sp)), fmtd(min(sp) if sp else None),
                    fmtd(max(sp) if sp else None), fmtd(median(hv)),
                    fmtd(min(hv) if hv else None), fmtd(max(hv) if hv else None)))
            f.write("\n\n")
    idx = "\n".join("'load.dat' index %d using ($1*100):2:3:4 with yerrorlines title '%s spare'"
                    % (i, s) + (", \\" if True else "") for i, s in enumerate(SCENARIOS))
    idx2 = ", \\\n".join("'load.dat' index %d using ($1*100):5:6:7 with yerrorlines dt 2 "
                         "title '%s harvested'" % (i, s) for i, s in enumerate(SCENARIOS))
    gp = ("set output 'spare_harvested_vs_load.png'\nset title 'Spare and harvested share of the "
          "NF core against offered load (median, min-max over reps)'\nset xlabel 'offered load, "
          "%% of capacity'\nset ylabel 'share of the NF core'\nset yrange [0:1.05]\n"
          "set key outside right\nplot %s\n%s\n" % (idx, idx2))
    write_gp(plots, "spare_harvested_vs_load.gp", gp)
    # 2. NF per scenario at the reference cell; 3. completion per scenario
    with open(os.path.join(plots, "scenario.dat"), "w") as f:
        f.write("# i scenario rx_mpps min max loss_pct min max p99 min max compl_mean min max "
                "start_p50 run_p50 compl_p99\n")
        for s in SCENARIOS:
            cols = []
            for key, sc in (("nf_rx_pps", 1e-6), ("nf_loss_ratio", 100), ("nf_p99_us", 1),
                            ("compl_mean_ms", 1)):
                v = [x * sc for x in vals(s, ref, key) if x is not None]
                cols += [fmtd(median(v)), fmtd(min(v) if v else None),
                         fmtd(max(v) if v else None)]
            for key in ("start_p50_ms", "run_p50_ms", "compl_p99_ms"):
                cols.append(fmtd(median(vals(s, ref, key))))
            f.write("%d %s %s\n" % (scen_idx[s], s, " ".join(cols)))
    gp = ("set output 'nf_per_scenario.png'\nset multiplot layout 1,3 title 'NF at cell %s "
          "(median, min-max over reps)'\nset style fill solid 0.5\nset boxwidth 0.6\n"
          "set xtics rotate by -30\nset xrange [-0.7:4.7]\nset yrange [0:*]\n"
          "set title 'throughput, Mpps'\nplot 'scenario.dat' using 1:3:xtic(2) with boxes "
          "notitle, '' using 1:3:4:5 with yerrorbars notitle\n"
          "set title 'loss, %%'\nplot 'scenario.dat' using 1:6:xtic(2) with boxes notitle, "
          "'' using 1:6:7:8 with yerrorbars notitle\n"
          "set title 'p99 latency, us'\nplot 'scenario.dat' using 1:9:xtic(2) with boxes "
          "notitle, '' using 1:9:10:11 with yerrorbars notitle\nunset multiplot\n" % ref)
    write_gp(plots, "nf_per_scenario.gp", gp)
    gp = ("set output 'completion_per_scenario.png'\nset title 'Function completion time at "
          "cell %s: mean (bars, min-max over reps), p50 start and run parts, p99'\n"
          "set style fill solid 0.5\nset boxwidth 0.25\nset xtics rotate by -30\n"
          "set xrange [-0.7:4.7]\nset ylabel 'ms'\nset logscale y\nset key outside right\n"
          "plot 'scenario.dat' using ($1-0.3):12:xtic(2) with boxes title 'mean', "
          "'' using ($1-0.3):12:13:14 with yerrorbars notitle, "
          "'' using 1:15 with boxes title 'start p50', "
          "'' using ($1+0.3):16 with boxes title 'run p50', "
          "'' using 1:18 with points pt 7 title 'p99'\n" % ref)
    write_gp(plots, "completion_per_scenario.gp", gp)
    # 4. the load step: reclaim over time (one block per scenario: the first repetition)
    with open(os.path.join(plots, "step.dat"), "w") as f:
        for s in SCENARIOS:
            f.write("# %s\n" % s)
            rs = [r for r in series if r["scenario"] == s]
            first = min((int(r["seq"]) for r in rs), default=None)
            for r in rs:
                if int(r["seq"]) == first:
                    f.write("%s %s %s %s\n" % (r["t_s"], num(r["rx_pps"]) / 1e6,
                                               r["spare_ratio"], r["harvested_share"]))
            if not rs:
                f.write("0 0 NaN NaN\n")
            f.write("\n\n")
    plots_ts = ", \\\n".join(
        "'step.dat' index %d using 1:4 with lines lw 2 title '%s harvested'" % (i, s)
        for i, s in enumerate(SCENARIOS))
    gp = ("set output 'step_reclaim.png'\nset multiplot layout 2,1 title 'Load step: idle, 90 %% "
          "of capacity, idle (100 ms samples, first repetition)'\nset key outside right\n"
          "set ylabel 'NF rx, Mpps'\nplot " + ", ".join(
              "'step.dat' index %d using 1:2 with lines title '%s'" % (i, s)
              for i, s in enumerate(SCENARIOS)) +
          "\nset xlabel 'seconds'\nset ylabel 'share of the NF core'\nset yrange [0:1.05]\n"
          "plot " + plots_ts + ", \\\n" + ", \\\n".join(
              "'step.dat' index %d using 1:3 with lines dt 2 title '%s spare'" % (i, s)
              for i, s in enumerate(SCENARIOS)) + "\nunset multiplot\n")
    write_gp(plots, "step_reclaim.gp", gp)
    names = ["spare_harvested_vs_load", "nf_per_scenario", "completion_per_scenario",
             "step_reclaim"]
    names += [dominance_plot(plots, share, cell, vals) for share, cell in sweep_cells(ok)]
    pngs = []
    for name in filter(None, names):
        gnuplot(open(os.path.join(plots, name + ".gp")).read(), plots)
        pngs.append(os.path.join(plots, name + ".png"))
    return pngs


def dominance_plot(plots, share, cell, vals):
    """5. one load: function completion mean against NF p99.9, one point per scenario (medians
    over repetitions); writes dominance_load<N>.dat/.gp and returns the name, or None when no
    scenario has both figures (nothing to plot on log axes)."""
    name = "dominance_load%d" % round(share * 100)
    pts = []
    for s in SCENARIOS:
        x, y = median(vals(s, cell, "nf_p999_us")), median(vals(s, cell, "compl_mean_ms"))
        if (x or 0) > 0 and (y or 0) > 0:
            pts.append((s, x, y))
    if not pts:
        return None
    with open(os.path.join(plots, name + ".dat"), "w") as f:
        f.write("# nf_p999_us compl_mean_ms, one block per scenario (cell %s, medians over "
                "repetitions)\n" % cell)
        for s, x, y in pts:
            f.write("# %s\n%s %s\n\n\n" % (s, fmtd(x), fmtd(y)))
    # a scenario keeps its colour and point type from one load to the next
    series = ", \\\n".join(
        "'%s.dat' index %d using 1:2 with points pt %d ps 2.5 lc %d title '%s'"
        % (name, i, 5 + 2 * (SCENARIOS.index(s) % 3), SCENARIOS.index(s) + 1, s)
        for i, (s, _, _) in enumerate(pts))
    gp = ("set output '%s.png'\nset title \"Load %.0f %% (cell %s): function completion "
          "against NF p99.9, one point per scenario\\n(medians over repetitions); points "
          "down-left dominate\" noenhanced\nset xlabel 'NF p99.9 latency, us (log)'\n"
          "set ylabel 'function completion mean, ms (log)'\nset logscale xy\n"
          "set offsets graph 0.1, graph 0.1, graph 0.15, graph 0.15\nset grid\n"
          "set key outside right noenhanced\nplot %s\n" % (name, share * 100, cell, series))
    write_gp(plots, name + ".gp", gp)
    return name


def fmtd(x):
    return "NaN" if x is None else "%.6g" % x


def write_gp(plots, name, text):
    with open(os.path.join(plots, name), "w") as f:
        f.write(text)


# ---- make run: the whole system, live -------------------------------------------------------------

def metric_sum(text, name, **labels):
    """Sum of a Prometheus metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name):len(name) + 1] not in ("{", " "):
            continue
        m = re.match(r"[^{ ]+(?:\{(.*)\})?\s+(\S+)", line)
        if not m:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


# nemo-gen's flow 1 (1 of its 64) goes to the packet function; not flow 0, which also carries
# nemo-gen's ring warm-up probes
PKT_DEMO_SPORT = 1025


def with_packet_demo(nf_cfg, workdir):
    """make run's NF config and where its packet function is: (config, demo) with demo
    {lcore, index, fn_socket} of the fn module that feeds a `sensor` ring, or None.

    A config without an fn module gets one at the head of its first lcore's chain: nemo-gen's
    flow 1 (UDP to port 9000 from port 1025) goes to the `sensor` ring and is answered there,
    the other 63 flows go on down the chain as before. A config with an fn module of its own
    is kept as it is, and the sensor is deployed only when that module has a `sensor` ring."""
    cfg = json.loads(json.dumps(nf_cfg))
    for lc in cfg["lcores"]:
        for i, m in enumerate(lc.get("chain", [])):
            if isinstance(m, dict) and m.get("module") == "fn":
                if not any(f.get("name") == "sensor" for f in m.get("functions", [])):
                    return cfg, None
                return cfg, {"lcore": lc["lcore"], "cpu": lc.get("cpu", lc["lcore"]),
                             "index": i, "rule": "the config's own rules",
                             "fn_socket": cfg.get("fn_socket") or
                             "/run/nemo/%s.fn.sock" % cfg.get("name", "default")}
    lc = cfg["lcores"][0]
    lc["chain"] = [{"module": "fn", "functions": [{"name": "sensor", "slots": 4096}],
                    "rules": [{"proto": "udp", "dport": 9000, "sport": PKT_DEMO_SPORT,
                               "function": "sensor", "reply": True}]}] + list(lc["chain"])
    cfg["fn_socket"] = os.path.join(workdir, "nf.fn")
    return cfg, {"lcore": lc["lcore"], "cpu": lc.get("cpu", lc["lcore"]), "index": 0,
                 "rule": "UDP to port 9000 from port %d, 1 of nemo-gen's 64 flows" %
                 PKT_DEMO_SPORT, "fn_socket": cfg["fn_socket"]}


def live(a):
    """make run: NF + nemo-gen (a varying profile) + mosquitto + nemod (harvesting when this
    nemod has it) + the sample functions + an HTTP and MQTT invocation load, a live per-core
    view, then a clean stop and a summary."""
    if os.geteuid() != 0:
        sys.exit("make run: run as root (cgroups, sandboxes, DPDK)")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = a.out or os.path.join(ROOT, "results", "run-" + stamp)
    os.makedirs(out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="nemo-run-", dir="/var/tmp")
    os.chmod(workdir, 0o755)
    JANITOR.paths.append(workdir)
    nf_cfg = json.load(open(a.nf_config))
    name = nf_cfg.get("name", "default")
    m = re.search(r"socket=([^,]+)", nf_cfg["ports"][0].get("vdev", ""))
    if not m:
        sys.exit("make run: port 0 of %s is not a memif port" % a.nf_config)
    sock = m.group(1)
    os.makedirs(os.path.dirname(sock), exist_ok=True)
    if os.path.exists("/dev/shm/nemo-hc-" + name):
        sys.exit("make run: /dev/shm/nemo-hc-%s exists: is an NF named '%s' running already?" %
                 (name, name))
    nf_cpu = nf_cfg["lcores"][0].get("cpu", nf_cfg["lcores"][0]["lcore"])
    nf_cfg, pkt = with_packet_demo(nf_cfg, workdir)
    nf_cfg_path = os.path.join(workdir, "nf.json")
    with open(nf_cfg_path, "w") as f:
        json.dump(nf_cfg, f, indent=1)
    own_nemod_cfg = a.nemod_config is not None
    nemod_path = a.nemod_config or next(p for p in (
        os.path.join(ROOT, "configs", "nemod-harvest.json"),
        os.path.join(ROOT, "configs", "nemod.json")) if os.path.exists(p))
    base = json.load(open(nemod_path))
    if not own_nemod_cfg:  # the sample run keeps its store and token to itself
        base.pop("token_file", None)
        base.pop("store_dir", None)
    else:
        for key in ("store_dir", "token_file"):
            if base.get(key):
                os.makedirs(base[key] if key == "store_dir" else os.path.dirname(base[key]),
                            exist_ok=True)
    harvest = harvest_available(workdir)
    scenario = "nemo" if harvest and base.get("harvest", {"enabled": True}).get("enabled", True) \
        else "colocate-default"
    hv_extra = base.pop("harvest", None)
    nemod = Nemod(workdir, scenario, name, nf_cpu, base.get("keepalive_ttl_s", 30),
                  base, tag="run%d" % os.getpid())
    if hv_extra and "harvest" in nemod.cfg:  # the operator's harvest settings, our channel
        nemod.cfg["harvest"] = dict(hv_extra, channels=[name])
    nemod.cfg["listen"] = "127.0.0.1:%d" % nemod.port
    with open(nemod.cfg_path, "w") as f:
        json.dump(nemod.cfg, f, indent=1)
    print("make run: nemo-nf %s (NF '%s', cpu %d), nemod %s (%s), %.0f s; logs in %s, work "
          "folder %s (removed at the end)" %
          (a.nf_config, name, nf_cpu, nemod_path,
           "harvesting" if "harvest" in nemod.cfg else "harvest not available in this nemod",
           a.duration, out, workdir))
    JANITOR.paths += [sock, "/dev/shm/nemo-hc-" + name]
    JANITOR.prefixes.append("nemo-nf-" + name)
    nf_log = os.path.join(out, "nemo-nf.log")
    nf = NF.__new__(NF)
    nf.name, nf.sock, nf.cfg, nf.cpu, nf.cfg_path = name, sock, nf_cfg, nf_cpu, nf_cfg_path
    nf.log, nf.proc, nf.tel = nf_log, None, None
    summary = {}
    try:
        nf.start()
        nemod.log = os.path.join(out, "nemod.log")
        nemod.start()
        nemod.deploy(["echo", "sha256", "wordstats", "echo-mqtt", "sha256-stream"])
        print("make run: deployed echo, sha256 (C, CPU-bound), wordstats (python), echo-mqtt "
              "(MQTT topic nemo/exp/in); invoking ~10/s over HTTP and MQTT, and beside them "
              "a background stream of CPU-bound calls (sha256-stream, %d clients back to "
              "back) so that the harvest shows" % a.stream_clients)
        if pkt:
            end = time.time() + 10  # the NF's lease server is up once its chains are built
            while not os.path.exists(pkt["fn_socket"]) and time.time() < end:
                time.sleep(0.05)
            nemod.deploy_spec("sensor", {
                "runtime": "c", "code": {"path": os.path.join(FUNCS, "pkt-sensor.so")},
                "packet": {"nf": pkt["fn_socket"], "lcore": pkt["lcore"], "core": pkt["cpu"],
                           "batch": 64}})
            nemod.wait_packet_serving("sensor")
            print("make run: deployed sensor (C, pkt-sensor.so) with a packet trigger on the "
                  "NF's lcore %d: the fn module hands it %s, and it answers each datagram with "
                  "its source's count, mean, min and max (live column pkts)" %
                  (pkt["lcore"], pkt["rule"]))
        # traffic: idle, light, heavy, a burst, light again, idle
        d = a.duration
        steps = ",".join("%s:%.2f" % (r, d / 6) for r in ("0", "1M", "4M", "8M", "500k", "0"))
        gj = os.path.join(out, "nemo-gen.json")
        gen = JANITOR.proc([os.path.join(BIN, "nemo-gen"), "--socket", sock, "--cpu", "0",
                            "--quiet", "--flows", "64", "--profile", "steps", "--steps", steps,
                            "--duration", "%.2f" % d, "--json", gj],
                           os.path.join(out, "nemo-gen.log"))
        JANITOR.prefixes.append("nemo-gen-%d" % gen.pid)
        print("make run: nemo-gen steps (pps:seconds) %s" % steps)
        load = InvocationLoad(nemod, "mixed", 10, d)
        lt = threading.Thread(target=load.run, daemon=True)
        lt.start()
        stream = CpuStream(nemod, "sha256-stream", a.stream_clients) if a.stream_clients \
            else None
        t0 = time.monotonic()
        r0, h0 = nf.lcore(), harvested_ns(nemod.cgroup_root, nf_cpu)
        prev = (t0, r0, h0)
        print("%6s %4s %9s %6s %6s %10s %5s %6s %5s %5s %9s %7s %9s" % (
            "t", "cpu", "NF Mpps", "busy%", "spare%", "harvested%", "warm", "invoc", "cold",
            "warm", "prewarmed", "stream", "pkts"))
        while gen.poll() is None or lt.is_alive():
            time.sleep(1)
            now = time.monotonic()
            r, h = nf.lcore(), harvested_ns(nemod.cgroup_root, nf_cpu)
            dt = now - prev[0]
            dtot = r["total_cycles"] - prev[1]["total_cycles"]
            dbusy = r["busy_cycles"] - prev[1]["busy_cycles"]
            met = nemod.metrics()
            print("%5.0fs %4d %9.3f %6.1f %6.1f %10.1f %5.0f %6.0f %5.0f %5.0f %9.0f %7d %9.0f" % (
                now - t0, nf_cpu, (r["rx_pkts"] - prev[1]["rx_pkts"]) / dt / 1e6,
                100.0 * dbusy / dtot if dtot else 0,
                100.0 * (dtot - dbusy) / dtot if dtot else 100,
                100.0 * (h - prev[2]) / 1e9 / dt, metric_sum(met, "nemo_warm_pool_instances"),
                metric_sum(met, "nemo_invocations_total"),
                metric_sum(met, "nemo_starts_total", path="cold"),
                metric_sum(met, "nemo_starts_total", path="warm"),
                metric_sum(met, "nemo_starts_total", path="prewarmed"),
                stream.done() if stream else 0, metric_sum(met, "nemo_packet_packets_total")),
                flush=True)
            prev = (now, r, h)
            if now - t0 > d + 60:
                break
        r1, h1 = nf.lcore(), harvested_ns(nemod.cgroup_root, nf_cpu)
        srecs = stream.stop() if stream else []
        packet = None
        if pkt:  # what the function handled (nemod) and what the NF handed it
            met = nemod.metrics()
            packet = {k: metric_sum(met, "nemo_packet_%s_total" % k, function="sensor")
                      for k in ("packets", "batches", "replies", "errors",
                                "instance_restarts")}
            packet["rule"] = pkt["rule"]
            try:
                ring = nf.module(pkt["lcore"], pkt["index"]).get("sensor") or {}
            except (OSError, ValueError, KeyError):
                ring = {}
            packet["handed"], packet["full"] = ring.get("handed"), ring.get("full")
            # a store of the operator's keeps no trigger on this run's NF
            nemod.request("DELETE", "/api/v1/namespaces/_/actions/sensor")
        recs = load.collect()
        top = subprocess.run([os.path.join(BIN, "nemoctl"), "--url", "http://127.0.0.1:%d" %
                              nemod.port, "--token-file", nemod.cfg["token_file"], "top",
                              "--once"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=20)
        if top.returncode == 0:
            print("\nnemoctl top --once:\n" + top.stdout.rstrip())
        JANITOR.stop(gen)
        hz = r1["tsc_hz"]
        spare_s = ((r1["total_cycles"] - r0["total_cycles"]) -
                   (r1["busy_cycles"] - r0["busy_cycles"])) / hz
        total_s = (r1["total_cycles"] - r0["total_cycles"]) / hz
        try:  # nemo-gen stopped before it wrote its summary (a slow, emulated host): no NF line
            with open(gj) as f:
                g = json.load(f)
        except (OSError, ValueError) as e:
            print("make run: nemo-gen left no summary (%s): the NF line is left out" % e)
            g = {}
        ok = [x for x in recs if x.get("status") == "success"]
        summary = {
            "nf": g, "spare_s": spare_s, "total_s": total_s, "harvested_s": (h1 - h0) / 1e9,
            "invocations": len(recs), "ok": len(ok),
            "http": sum(x["transport"] == "http" for x in recs),
            "mqtt": sum(x["transport"] == "mqtt" for x in recs),
            "paths": {p: sum(x.get("start_path") == p for x in ok)
                      for p in ("cold", "warm", "prewarmed", "zygote")},
            "p50": pct([x["total_ms"] for x in ok if x.get("total_ms") is not None], 50),
            "p99": pct([x["total_ms"] for x in ok if x.get("total_ms") is not None], 99),
            # the 10/s calls' own CPU, what demand asked of the spare: per function, its calls
            # times the median of run + create + init (a median, because a run stretched by
            # waiting for the CPU is wall time, not CPU the call used)
            "demand_s": sum(
                len(xs) * (pct([(x.get("run_ms") or 0) + ((x.get("init_us") or 0) +
                                                        (x.get("create_us") or 0)) / 1e3
                                for x in xs], 50) or 0)
                for xs in ([x for x in ok if x.get("function") == fn]
                           for fn in {x.get("function") for x in ok})) / 1e3,
            "calls": ok, "stream": [x for x in srecs if x.get("status") == "success"],
            "stream_all": len(srecs), "stream_clients": a.stream_clients, "packet": packet}
    finally:
        print("make run: stopping nemod, mosquitto and nemo-nf")
        nemod.stop()
        nf.stop()
        JANITOR.clean()
    if summary:
        write_run_summary(out, summary, nf_cpu)
    return 0


def write_run_summary(out, s, cpu):
    g = s["nf"]
    lines = ["", "## make run summary", ""]
    pk = s.get("packet")
    if g:
        lines.append("NF: sent %d, received %d, lost %d (%.4f %%), latency p50 %s us, p99 %s us" %
                     (g["sent"], g["received"], g["lost"],
                      100.0 * g["lost"] / g["sent"] if g["sent"] else 0,
                      g.get("lat_p50_us"), g.get("lat_p99_us")))
        if pk and pk.get("handed") is not None:
            full = pk.get("full") or 0
            own = max(0, g["lost"] - pk["handed"] - full)
            lines.append(
                "  of the lost, %d were handed to the packet function and answered there "
                "instead of forwarded (its answers reach nemo-gen unstamped: unknown_rx %s) "
                "and %d dropped because its ring was full (fn_full: the function did not get "
                "the core in time); the other flows lost %d (%.4f %%)" %
                (pk["handed"], g.get("unknown_rx"), full, own,
                 100.0 * own / g["sent"] if g["sent"] else 0))
    lines.append("NF core cpu %d: spare %.2f s of %.2f s (spare_ratio %.3f); harvested %.3f s "
                 "(cgroup cpuacct), harvest_ratio %.3f" %
                 (cpu, s["spare_s"], s["total_s"], s["spare_s"] / s["total_s"] if s["total_s"]
                  else 0, s["harvested_s"], s["harvested_s"] / s["spare_s"] if s["spare_s"]
                  else 0))
    lines.append("invocations: %d (%d HTTP, %d MQTT), %d succeeded; start paths cold %d, warm "
                 "%d, prewarmed %d; completion p50 %s ms, p99 %s ms" %
                 (s["invocations"], s["http"], s["mqtt"], s["ok"], s["paths"]["cold"],
                  s["paths"]["warm"], s["paths"]["prewarmed"],
                  "%.2f" % s["p50"] if s["p50"] is not None else "n/a",
                  "%.2f" % s["p99"] if s["p99"] is not None else "n/a"))
    if pk:
        lines.append(
            "packet function sensor (packet trigger; NF rule: %s): %.0f packets in %.0f "
            "batches (%.1f a call), %.0f replies, %.0f errors, %.0f instance restarts; counted "
            "by batch, no activation record per packet" %
            (pk["rule"], pk["packets"], pk["batches"],
             pk["packets"] / pk["batches"] if pk["batches"] else 0, pk["replies"],
             pk["errors"], pk["instance_restarts"]))
    ratio = s["harvested_s"] / s["spare_s"] if s["spare_s"] else 0
    if s["spare_s"] > 0:
        need = s["demand_s"] / s["spare_s"]
        lines.append(
            "what bounds the harvest: the ~10 calls/s asked for about %.2f s of CPU (each "
            "function's median run + create + init times its calls), %.1f %% of the spare; "
            "alone they could harvest no more than that share: demand, not nemo, bounds it "
            "(the spare is there for more calls)" % (s["demand_s"], 100 * need))
    if s["stream_clients"]:
        st = s["stream"]
        lines.append(
            "background stream: %d clients calling sha256-stream back to back: %d of %d calls "
            "succeeded, run p50 %s ms; with it, harvest_ratio %.3f of the spare" %
            (s["stream_clients"], len(st), s["stream_all"],
             "%.0f" % pct([x["run_ms"] for x in st if x.get("run_ms") is not None], 50)
             if st else "n/a", ratio))
    calls = s["calls"]
    if calls:
        qw = [(x.get("queue_us") or 0) / 1e3 for x in calls]
        queued = [x for x, q in zip(calls, qw) if q > 100]
        fmt = lambda v: "%.1f" % v if v is not None else "n/a"
        lines.append(
            "where the 10/s calls' time went: queue wait p50 %s ms, p99 %s ms; start (create + "
            "init) p50 %s ms; run p50 %s ms, p99 %s ms" %
            (fmt(pct(qw, 50)), fmt(pct(qw, 99)),
             fmt(pct([((x.get("create_us") or 0) + (x.get("init_us") or 0)) / 1e3
                      for x in calls], 50)),
             fmt(pct([x["run_ms"] for x in calls if x.get("run_ms") is not None], 50)),
             fmt(pct([x["run_ms"] for x in calls if x.get("run_ms") is not None], 99))))
        if queued:
            lines.append(
                "queued, not slow: %d calls waited over 100 ms for a core (the NF had it, as "
                "through the 8 Mpps step, and nemo gives it back first); their queue wait p50 "
                "%s ms, max %s ms, their run p50 %s ms" %
                (len(queued), fmt(pct([(x.get("queue_us") or 0) / 1e3 for x in queued], 50)),
                 fmt(max((x.get("queue_us") or 0) / 1e3 for x in queued)),
                 fmt(pct([x["run_ms"] for x in queued if x.get("run_ms") is not None], 50))))
    lines.append("logs: %s (nemo-nf.log, nemod.log, nemo-gen.log)" % out)
    reports = sorted(glob.glob(os.path.join(ROOT, "results", "*", "report.md")))
    lines.append("full report: %s" % (reports[-1] if reports else
                                      "none yet: `make experiment` writes results/<time>/report.md"))
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)


def main():
    argv = sys.argv[1:]
    if argv and argv[0] == "live":
        ap = argparse.ArgumentParser(prog="nemo_experiment.py live",
                                     description="make run: the whole system, live")
        ap.add_argument("--nf-config", default=os.path.join(ROOT, "configs", "nf-default.json"))
        ap.add_argument("--nemod-config", default=None,
                        help="base nemod config (listen, store, token and cores are set here)")
        ap.add_argument("--duration", type=float, default=60)
        ap.add_argument("--stream-clients", type=int, default=2,
                        help="clients of the background CPU-bound stream (0: none)")
        ap.add_argument("--out", default=None)
        return live(ap.parse_args(argv[1:]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--smoke", action="store_true", help="every scenario for a few seconds")
    g.add_argument("--full", action="store_true", help="finer sweeps, 5 repetitions")
    r = ap.add_mutually_exclusive_group()
    r.add_argument("--resume", action="store_true", help="continue an unfinished run")
    r.add_argument("--fresh", action="store_true", help="start over (in --out if given)")
    ap.add_argument("--out", help="results folder (default results/<timestamp>)")
    ap.add_argument("--reps", type=int, help="repetitions (default by profile)")
    ap.add_argument("--nf-config", default=os.path.join(ROOT, "configs", "nf-default.json"))
    ap.add_argument("--nemod-config", default=None)
    ap.add_argument("--report-only", metavar="DIR", help="rebuild plots and report.md from DIR")
    a = ap.parse_args(argv)
    if a.report_only:
        print(report(a.report_only))
        return 0
    if os.geteuid() != 0:
        sys.exit("nemo-experiment: run as root (cgroups, sandboxes, DPDK)")
    run_experiment(a)
    return 0


def on_signal(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("stopped: cleaning up; `--resume` continues where the last finished block left off")
        sys.exit(130)
    finally:
        JANITOR.clean()
