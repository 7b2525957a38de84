# experiments/ - benchmarks and the main job; they print figures, they never gate CI.
.PHONY: run bench-nf
RUN_ARGS ?=
run: deps
	$(MAKE) all
	experiments/run_nf.sh $(RUN_ARGS)

bench-nf: deps
	$(MAKE) all
	/usr/bin/python3 experiments/bench_nf.py $(BENCH_ARGS)
