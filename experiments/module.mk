# experiments/ - benchmarks and the main job; they print figures, they never gate CI.
.PHONY: run run-nf bench-nf bench-chain experiment experiment-full
RUN_ARGS ?=
EXPERIMENT_ARGS ?=
# the whole system: NF + traffic + nemod + functions + invocations, live, then a summary
run: deps
	$(MAKE) all
	experiments/run.sh $(RUN_ARGS)

# only nemo-nf and nemo-gen, as make run did before nemod joined
run-nf: deps
	$(MAKE) all
	experiments/run_nf.sh $(RUN_ARGS)

bench-nf: deps
	$(MAKE) all
	/usr/bin/python3 experiments/bench_nf.py $(BENCH_ARGS)

# a chain of three functions with nemo_call against the same chain over HTTP
bench-chain: deps
	$(MAKE) all
	experiments/bench_chain.sh

# the NEMO evaluation: about 10 minutes on 2 cores; results/<time>/report.md
experiment: deps
	$(MAKE) all
	/usr/bin/python3 experiments/nemo_experiment.py $(EXPERIMENT_ARGS)

experiment-full: deps
	$(MAKE) all
	/usr/bin/python3 experiments/nemo_experiment.py --full $(EXPERIMENT_ARGS)
