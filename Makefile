# memrl: build the examples, run the tests, benchmarks and the demo.
#   make            every example into build/
#   make demo       train PPO-LSTM on the T-maze and watch it learn
#   make test       every test: -O2, sanitizers, C99/C++ builds, formatting
#   make bench      benchmarks (BENCH lines)
#   make bench-dqn  DQN on CartPole: time to reach 475, memrl vs PyTorch (minutes)
#   make memory-bench        the memory benchmark (cores x tasks x seeds; hours)
#   make memory-bench-smoke  its smoke subset (seconds; part of make test)
#   make test-long  long learning tests of the memory claims (minutes; not in make test/CI)
#   make format / make format-check
#   make fuzz       libFuzzer on the checkpoint loader for FUZZ_TIME seconds (clang)
CC ?= cc
CXX ?= c++
CFLAGS ?= -O2
WARN = -Wall -Wextra
SAN = -O1 -g1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
HEADERS = memrl_tensor.h memrl_nn.h memrl_mem.h memrl_algos.h memrl_envs.h
EXAMPLES = $(patsubst examples/%.c,build/%,$(wildcard examples/*.c))
UNIT_TESTS = test_tensor test_tensor_ndebug test_tensor_finite test_tensor_fused test_gemm test_nn test_nn_alloc test_layers test_attention test_checkpoint test_mem test_cores test_envs test_envs_tasks test_envs_popgym test_envs_dr test_envs_snapshot test_algos test_heads test_ppo_update test_toolkit test_torch_names test_shared test_reinforce test_jvp test_trpo test_a2c test_impala test_replay test_dqn test_seq_replay test_r2d2
LEARNING_TESTS = test_learning test_learning_memory test_learning_reinforce test_learning_trpo test_learning_a2c test_learning_impala test_learning_dqn test_learning_r2d2
# Learning tests too long for make test and CI: run by make test-long.
LONG_TESTS = test_long_memory
SOURCES = $(HEADERS) $(wildcard examples/*.c tests/*.c tests/*.h bench/*.c)

.PHONY: all demo test unit learning bench format format-check clean fuzz memory-bench \
        memory-bench-smoke bench-dqn test-long

all: $(EXAMPLES)

build/%: examples/%.c $(HEADERS)
	@mkdir -p build
	$(CC) $(CFLAGS) $(WARN) -o $@ $< -lm

build/test_%: tests/test_%.c $(HEADERS) tests/test.h tests/ref_loader.h
	@mkdir -p build
	$(CC) $(CFLAGS) $(WARN) -o $@ $< -lm

build/san_%: tests/%.c $(HEADERS) tests/test.h tests/ref_loader.h
	@mkdir -p build
	$(CC) $(SAN) $(WARN) -o $@ $< -lm

# A3C's learning test runs two actor-learner threads (MRL_THREADS).
build/test_learning_a2c: tests/test_learning_a2c.c $(HEADERS) tests/test.h
	@mkdir -p build
	$(CC) $(CFLAGS) $(WARN) -DMRL_THREADS -pthread -o $@ $< -lm

# test_tensor_ndebug is test_tensor.c again, built with NDEBUG.
build/test_tensor_ndebug build/san_test_tensor_ndebug: tests/test_tensor.c

build/bench_%: bench/bench_%.c $(HEADERS)
	@mkdir -p build
	$(CC) $(CFLAGS) $(WARN) -o $@ $< -lm

# The matmul bench loads OpenBLAS (if installed) at run time: -ldl, no link to it.
build/bench_matmul: bench/bench_matmul.c $(HEADERS)
	@mkdir -p build
	$(CC) $(CFLAGS) $(WARN) -o $@ $< -lm -ldl

demo: build/ppo_tmaze
	./build/ppo_tmaze

# One command for everything; ends with "N passed, N failed".
test: $(addprefix build/,$(UNIT_TESTS) $(LEARNING_TESTS)) $(addprefix build/san_,$(UNIT_TESTS)) \
      $(EXAMPLES)
	@CC="$(CC)" sh tools/run_tests.sh $(UNIT_TESTS) -- $(LEARNING_TESTS)

# bench_nn compares with PyTorch measured in the same run: the first python
# that imports torch (PYTHON, then Debian's) writes build/bench_torch.txt;
# without one the file is removed and the figures say ref=none.
PYTHON ?= python3
bench: build/bench_envs build/bench_train build/bench_matmul build/bench_nn build/bench_attention \
       build/bench_fused build/bench_cores
	@./build/bench_envs
	@./build/bench_train
	@./build/bench_matmul
	@if $(CC) $(CFLAGS) $(WARN) -fopenmp -o build/bench_matmul_omp bench/bench_matmul.c -lm -ldl \
	    2>/dev/null; then ./build/bench_matmul_omp; else echo "no OpenMP: 2-thread figures skipped"; fi
	@rm -f build/bench_torch.txt; for py in $(PYTHON) /usr/bin/python3; do \
	  if $$py -c 'import torch' 2>/dev/null; then \
	    $$py tools/bench_torch.py > build/bench_torch.txt || rm -f build/bench_torch.txt; break; \
	  fi; done
	@./build/bench_nn build/bench_torch.txt
	@./build/bench_attention build/bench_torch.txt
	@./build/bench_fused
	@./build/bench_cores build/bench_torch.txt

# DQN on CartPole-v1 until the last 100 episodes average 475, memrl and the
# PyTorch twin (tools/dqn_torch.py, the first python that imports torch) in
# the same run; BENCH lines with the ratio.
bench-dqn: build/bench_dqn
	@rm -f build/bench_dqn_torch.txt; for py in $(PYTHON) /usr/bin/python3; do \
	  if $$py -c "import torch" 2>/dev/null; then \
	    $$py tools/dqn_torch.py > build/bench_dqn_torch.txt || rm -f build/bench_dqn_torch.txt; \
	    break; fi; done
	@./build/bench_dqn build/bench_dqn_torch.txt

# Long seeded learning tests (each asserts its threshold; tests/test_long_memory.c
# says what and how long). Not part of make test or CI.
test-long: $(addprefix build/,$(LONG_TESTS))
	@for t in $(LONG_TESTS); do ./build/$$t || exit 1; done

# The memory benchmark (tools/memory_benchmark.sh): PPO with every core on
# POPGym's tasks, PassiveTMaze and bsuite's memory_len sweep, same budget per
# cell, a markdown table in MB_OUT. Runs outside CI; MB_STEPS, MB_SEEDS,
# MB_CORES, MB_TASKS and MB_JOBS set the grid (see the script).
MB_OUT ?= build/memory_bench.md
memory-bench: build/memory_benchmark
	sh tools/memory_benchmark.sh -o $(MB_OUT)

# 2 cores x 2 tasks x 1 seed at 20k steps, then the table checked.
memory-bench-smoke: build/memory_benchmark
	sh tools/memory_benchmark.sh --smoke -o build/memory_bench_smoke.md
	sh tools/memory_benchmark.sh --verify build/memory_bench_smoke.md 2 2

# libFuzzer (clang's runtime) on the checkpoint loader, for a bounded time.
# New inputs go to build/fuzz_corpus; tests/fuzz_corpus holds the seeds.
FUZZ_CC ?= clang
FUZZ_TIME ?= 60
build/fuzz_checkpoint: tests/fuzz_checkpoint.c $(HEADERS)
	@mkdir -p build
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $(WARN) -o $@ $< -lm

fuzz: build/fuzz_checkpoint
	@mkdir -p build/fuzz_corpus
	./build/fuzz_checkpoint -max_total_time=$(FUZZ_TIME) -max_len=16384 -timeout=10 \
		-dict=tests/fuzz_checkpoint.dict build/fuzz_corpus tests/fuzz_corpus

format:
	clang-format -i --style=file $(SOURCES)

format-check:
	clang-format --dry-run -Werror --style=file $(SOURCES)

clean:
	rm -rf build
