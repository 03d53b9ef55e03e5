# EWA benchmark harness. `make` builds bin/ewa; `make test` runs every test.
# See README.md and docs/DESIGN.md 4.

CC      ?= cc
OPT     ?= -O3 -march=native
CFLAGS  += $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fopenmp -g
# -fno-math-errno: no code reads errno after a math function, and without it
# GCC cannot vectorise a loop that calls sqrtf (AdamW's update ran scalar:
# 2.4x slower on 5.35 M parameters). sqrt and division stay IEEE correctly
# rounded, so results are bit-identical.
CFLAGS  += -fno-math-errno
# The OpenMP build of OpenBLAS shares one thread pool with our OpenMP kernels,
# so GEMMs and element-wise kernels never oversubscribe the cores.
BLAS_DIR := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/*/openblas-openmp))
BLAS_INC := $(firstword $(wildcard /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/*/openblas-openmp))
ifneq ($(BLAS_DIR),)
  CFLAGS  += -I$(BLAS_INC)
  BLAS_LIB = -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas
else
  BLAS_LIB = -lopenblas
endif
# GSL (Student t) without libgslcblas: its few CBLAS references bind to OpenBLAS.
# libcrypto (OpenSSL): SHA-256 of each run's checkpoint (core/fsutil.h).
LDLIBS  += $(BLAS_LIB) -ldnnl -lgsl -lcsv -lz -linih -lcjson -lcrypto -lm -fopenmp
# MPI data parallelism (issue 15, experiments/dist.h): built with Open MPI
# when mpicc is found (libopenmpi-dev), or forced with MPI=1; MPI=0 builds the
# one-process stubs.
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
  CFLAGS += -DEWA_MPI $(shell mpicc --showme:compile)
  LDLIBS += $(shell mpicc --showme:link)
endif
PYTHON  ?= /usr/bin/python3
BUILD   ?= build
BIN     ?= bin

LIB_SRC  := $(sort $(wildcard core/*.c core/layers/*.c datasets/*.c)) \
            $(filter-out experiments/main.c,$(sort $(wildcard experiments/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test test-asan test-readme deps bench clean parity-ref FORCE
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# tracked files changed outside results/ (results and run directories do not make a build dirty)
GIT_DIRTY  := $(shell test -z "$$(git status --porcelain --untracked-files=no -- . ':(exclude)results' 2>/dev/null)" && echo 0 || echo 1)
all: $(BIN)/ewa

$(BUILD)/%.o: %.c $(wildcard core/*.h core/layers/*.h datasets/*.h experiments/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Provenance is compiled in on every build: the commit, whether tracked files
# outside results/ had uncommitted changes, and OPT (flags that change numerics).
$(BUILD)/experiments/version.o: experiments/version.c FORCE
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DEWA_GIT_COMMIT='"$(GIT_COMMIT)"' -DEWA_GIT_DIRTY=$(GIT_DIRTY) \
	  -DEWA_BUILD_FLAGS='"$(strip $(OPT))"' -c $< -o $@

$(BUILD)/libewa.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/ewa: $(BUILD)/experiments/main.o $(BUILD)/libewa.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libewa.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libewa.a -o $@ -lcriterion $(LDLIBS)

# PyTorch reference dump for the parity tests (only when python3-torch exists).
HAVE_TORCH := $(shell $(PYTHON) -c 'import torch' >/dev/null 2>&1 && echo 1)
parity-ref:
ifeq ($(HAVE_TORCH),1)
	@mkdir -p $(BUILD)/parity
	$(PYTHON) tests/torch_ref.py --out $(BUILD)/parity
else
	@echo "SKIP: python3-torch not found ($(PYTHON)); PyTorch parity tests will be skipped"
endif

# Every test binary runs; the totals line counts them all.
test: $(BIN)/ewa $(TEST_BIN) parity-ref
	@EWA_PARITY_DIR=$(if $(HAVE_TORCH),$(abspath $(BUILD)/parity),) \
	  EWA_BIN=$(abspath $(BIN)/ewa) tests/run_all.sh $(TEST_BIN)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/bin \
	  OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

deps:
	@tools/deps.sh

# The README's first command line, verbatim, in a fresh clone (plus a step limit).
test-readme:
	tools/test_readme.sh

# Issue 15: an exported grid run by a real one-node Slurm cluster
# (tools/slurm_local.sh starts and stops it) against the local runner.
.PHONY: test-slurm
test-slurm: $(BIN)/ewa
	EWA=$(BIN)/ewa tools/test_slurm.sh

# Issue 15: one run on 2 MPI ranks against one process (experiments/dist.h).
.PHONY: test-mpi
test-mpi: $(BIN)/ewa
	EWA=$(BIN)/ewa tools/test_mpi.sh

$(BUILD)/bench_train: bench/bench_train.c $(BUILD)/libewa.a
	$(CC) $(CFLAGS) $< $(BUILD)/libewa.a -o $@ $(LDLIBS)

bench: $(BIN)/ewa $(BUILD)/bench_train
	@bench/run.sh

clean:
	rm -rf build build-asan bin

# ---- experiment runner (issue 5): grids, tables, figures, regression ----
PROFILE     ?= smoke
JOBS        ?= 2
# make regress: REGRESS_NEW's runs.csv against the reference directory
# REGRESS_REF; REGRESS_MODE exact|stat|auto (auto: exact on the reference's
# platform, else stat; bin/ewa regress --help). A file path stands for its directory.
REGRESS_REF  ?= results/reference/$(PROFILE)
REGRESS_NEW  ?= results/table1/$(PROFILE)
REGRESS_MODE ?= auto
# REGRESS_SUBSET=1: REGRESS_NEW reruns only some of the reference's runs
# (e.g. `bin/ewa grid --config paper_configs/table1.ini --profile cpu --seeds 1,2,3
# --out DIR`: stat mode needs 2 seeds or more); only those are checked
# (`bin/ewa regress --help`)
REGRESS_SUBSET ?=
# make reference: writes results/reference/$(PROFILE) from REFERENCE_FROM
REFERENCE_FROM ?= results/table1/$(PROFILE)
.PHONY: reproduce-table1 plots regress reference

# Table 1 grid -> results/table1/$(PROFILE)/ (runs.csv, table.csv, table.md, PNGs)
reproduce-table1: $(BIN)/ewa
	JOBS=$(JOBS) EWA=$(BIN)/ewa $(if $(OUT),OUT=$(OUT)) tools/reproduce_table1.sh $(PROFILE)

# Every figure for the results present under results/
plots: $(BIN)/ewa
	EWA=$(BIN)/ewa plots/all.sh results

# Fresh results against the committed reference (docs/DESIGN.md 5)
regress: $(BIN)/ewa
	$(BIN)/ewa regress --ref $(REGRESS_REF) --new $(REGRESS_NEW) --mode $(REGRESS_MODE) $(if $(REGRESS_SUBSET),--subset)

# The reference of a profile from a clean grid's results (runs.csv, table.csv,
# table.md, platform.csv). A change of numerics on purpose is followed, on the
# clean tree of its commit, by `rm -rf results/table1/smoke` (a grid resumes by
# run id), `make reproduce-table1 PROFILE=smoke && make reference PROFILE=smoke`,
# and the reference is committed right after the change (README "Regression check").
reference: $(BIN)/ewa
	$(BIN)/ewa regress --write-reference results/reference/$(PROFILE) --from $(REFERENCE_FROM)

# ---- issue 11: libFuzzer harnesses (tests/fuzz/, clang + libclang-rt) ----
# `make fuzz` builds one fuzzer per parser of outside input into build-fuzz/fuzz/
# (the library under ASan + UBSan + libFuzzer coverage); `make fuzz-ci` runs
# each for FUZZ_RUNS inputs from the fixed seed FUZZ_SEED over its committed
# seed corpus (tests/fuzz/corpus/<name>/, never modified), so the result does
# not depend on chance or on time. Longer runs: tests/fuzz/run.sh (README).
FUZZ_BUILD   ?= build-fuzz
FUZZ_TARGETS := $(sort $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_RUNS    ?= 2000
FUZZ_SEED    ?= 1
FUZZ_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
.PHONY: fuzz fuzz-ci
fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) BIN=$(FUZZ_BUILD)/bin CC=clang MPI=0 \
	  OPT="-O1 -g -Wno-pass-failed -fsanitize=fuzzer-no-link $(FUZZ_FLAGS)" $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/%)

$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz_util.h $(BUILD)/libewa.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -Icore -Idatasets -Iexperiments $< $(BUILD)/libewa.a -o $@ $(LDLIBS)

fuzz-ci: fuzz
	tests/fuzz/run.sh $(FUZZ_BUILD)/fuzz $(FUZZ_RUNS) $(FUZZ_SEED) $(FUZZ_TARGETS)
