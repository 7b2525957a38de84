#!/usr/bin/python3
"""nf_windows.py - the NF lcore's spare window by window, from its harvest channel, under a
generator profile, with or without a CPU hog beside it. The figures behind several claims in
experiments/README.md and scheduler/README.md:

  experiments/nf_windows.py --gen "--rate 7000000" --runs 3
      the first 1.5 s after nemo-gen starts: windows under 0.3 spare (its ring warm-up)
  experiments/nf_windows.py --gen "--rate 12000000" --below 0.4
      at half load: the share of windows under the reclaim release, the longest run above it
  experiments/nf_windows.py --gen "--rate 7000000" --hog task --hog-middle --runs 6
      the NF's busy share alone / beside a SCHED_IDLE loop / alone again, NF restarted per run
  experiments/nf_windows.py --nf-sched other:-20 --hog cgroup-idle \\
      --gen "--rate 30000000 --on-ms 400 --off-ms 400"
      an NF at SCHED_OTHER beside a hog in a cpu.idle cgroup: what it forwards, what it says

No nemod: the NF (lcore on cpu 1, the shipped sleep settings), nemo-gen on cpu 0, and Python
reading the channel every --period-ms. Needs root.
"""
import argparse
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_harvest as B  # noqa: E402  (the NF, the generator and the channel readers)

CG = "nemo-nfwin-%d" % os.getpid()


def start_hog(kind):
    """A busy loop on cpu 1: a SCHED_IDLE task, or a plain task in a cpu.idle=1 cgroup."""
    loop = ["taskset", "-c", "1", "sh", "-c", "while :; do :; done"]
    if kind == "task":
        return subprocess.Popen(["chrt", "-i", "0"] + loop)
    for ctrl, files in (("cpu", {"cpu.idle": "1"}),
                        ("cpuset", {"cpuset.cpus": "1", "cpuset.mems": "0"})):
        d = "/sys/fs/cgroup/%s/%s" % (ctrl, CG)
        os.makedirs(d, exist_ok=True)
        for name, value in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(value)
    p = subprocess.Popen(loop)
    for ctrl in ("cpu", "cpuset"):
        with open("/sys/fs/cgroup/%s/%s/tasks" % (ctrl, CG), "w") as f:
            f.write(str(p.pid))
    return p


def stop_hog(p):
    if p:
        p.kill()
        p.wait()
    for ctrl in ("cpu", "cpuset"):
        try:
            os.rmdir("/sys/fs/cgroup/%s/%s" % (ctrl, CG))
        except OSError:
            pass


def runs_of(xs, pred):
    best = cur = 0
    for x in xs:
        cur = cur + 1 if pred(x) else 0
        best = max(best, cur)
    return best


def one_run(a, sched, i):
    idle = dict(B.NF_SLEEP[0], min_sleep_us=a.min_sleep, detect=a.detect)
    if a.detect == "time":
        idle.pop("empty_polls", None)  # time alone decides, no bound on the count
    else:
        idle.setdefault("empty_polls", 256)
    B.start_nf(idle, sched)
    hog = None if a.hog == "none" or a.hog_middle else start_hog(a.hog)
    try:
        g = B.gen(shlex.split(a.gen), a.seconds, "w%d" % i)
        t0 = time.time()
        prev = B.nf_cycles()
        wins = []  # (seconds since the generator started, spare_ratio, total, busy)
        third = a.seconds / 3.0
        while time.time() - t0 < a.seconds + 0.3:
            now = time.time() - t0
            if a.hog_middle and a.hog != "none":
                if hog is None and third <= now < 2 * third:
                    hog = start_hog(a.hog)
                elif hog is not None and now >= 2 * third:
                    stop_hog(hog)
                    hog = None
            time.sleep(a.period_ms / 1e3)
            cur = B.nf_cycles()
            d = [cur[k] - prev[k] for k in range(4)]
            prev = cur
            if d[0]:
                wins.append((now, 1.0 - d[1] / d[0], d[0], d[1]))
        r = B.gen_result(g)
    finally:
        stop_hog(hog)
        for p in list(B.PROCS):
            B.stop(p)
        B.PROCS.clear()
    loaded = [w for w in wins if w[0] >= 1.5]  # past link-up, probe and warm-up
    spare = [w[1] for w in loaded]

    def busy(lo, hi):
        sel = [w for w in wins if lo <= w[0] < hi]
        return 100.0 * sum(w[3] for w in sel) / max(1, sum(w[2] for w in sel))

    print("run %d: rx %.2f Mpps, lost %d; NF busy %.1f %% (thirds %.1f / %.1f / %.1f%s); "
          "windows after 1.5 s %d, mean spare %.2f, under %.2f %.1f %%, longest run under it %d, "
          "longest run at or over it %d; first 1.5 s: %d windows under 0.3"
          % (i + 1, r["rx_pps"] / 1e6, r["lost"], busy(0, 1e9), busy(0, third),
             busy(third, 2 * third), busy(2 * third, 1e9),
             ", hog in the middle one" if a.hog_middle and a.hog != "none" else "",
             len(spare), sum(spare) / max(1, len(spare)), a.below,
             100.0 * sum(1 for x in spare if x < a.below) / max(1, len(spare)),
             runs_of(spare, lambda x: x < a.below), runs_of(spare, lambda x: x >= a.below),
             sum(1 for w in wins if w[0] < 1.5 and w[1] < 0.3)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gen", default="--rate 7000000", help="nemo-gen's profile arguments")
    ap.add_argument("--seconds", type=float, default=4.5)
    ap.add_argument("--runs", type=int, default=1, help="each with a fresh NF")
    ap.add_argument("--period-ms", type=float, default=2.0)
    ap.add_argument("--below", type=float, default=0.4, help="the spare threshold to count")
    ap.add_argument("--min-sleep", type=int, default=20, help="the NF's min_sleep_us")
    ap.add_argument("--nf-sched", default="fifo", help="fifo, or other:<nice>")
    ap.add_argument("--detect", choices=("time", "count"), default="time",
                    help="the NF's idle detection: by time (now) or 256 empty polls (before)")
    ap.add_argument("--hog", choices=("none", "task", "cgroup-idle"), default="none")
    ap.add_argument("--hog-middle", action="store_true", help="the hog only in the middle third")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("nf_windows.py needs root (DPDK, cgroups)")
    if a.nf_sched == "fifo":
        sched = B.NF_SLEEP[1]
    else:
        sched = {"policy": "other", "nice": int(a.nf_sched.split(":")[1])}
    print("nf_windows: NF lcore on cpu 1 (%s, min sleep %d us, detect %s), nemo-gen %s on cpu 0, "
          "hog %s%s, %.1f ms windows read from the harvest channel"
          % (a.nf_sched, a.min_sleep, a.detect, a.gen, a.hog,
             " (middle third)" if a.hog_middle else "", a.period_ms))
    try:
        for i in range(a.runs):
            one_run(a, sched, i)
    finally:
        B.cleanup()


if __name__ == "__main__":
    main()
