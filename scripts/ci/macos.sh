#!/usr/bin/env bash
# The macOS CI run (.github/workflows/macos.yml), also runnable by hand on an Apple Silicon Mac
# with Xcode 16 or later (Swift 6) and a Rust toolchain:
#
#   scripts/ci/macos.sh            # from the repository root
#
# 1. builds coreml-helper natively (release, plus a -D COREML_DIAG_FAULTS build), warnings are errors
# 2. swift test: the whole package except the Core ML integration suite
# 3. converts the test models with coremltools (scripts/ci/coreml_fixtures.py)
# 4. swift test --filter CoreMLIntegrationTests: Core ML for real (compile, load with every
#    compute unit, schema, golden parity, backings in place, compute plan, sandbox, app kill)
# 5. the supervisor's crash-isolation suite against the Swift helper (faults build)
#
# Environment: PYTHON (default python3) for the coremltools virtual environment;
# COREML_CI_EXPECT_NEURAL_ENGINE=1 on a machine whose Neural Engine Core ML must see,
# =0 where it must not (GitHub's macOS VMs), unset to not check.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=${RUNNER_TEMP:-$(mktemp -d)}/coreml-ci
mkdir -p "$WORK"
STRICT=(-Xswiftc -warnings-as-errors)
FAULTS=(-Xswiftc -DCOREML_DIAG_FAULTS)

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
sw_vers
xcodebuild -version
swift --version
uname -m

step "build coreml-helper (release, and release with fault switches)"
(cd helper-swift && swift build -c release --product coreml-helper "${STRICT[@]}")
(cd helper-swift && swift build -c release --product coreml-helper --build-path .build-faults "${STRICT[@]}" "${FAULTS[@]}")
HELPER_FAULTS=$ROOT/helper-swift/.build-faults/release/coreml-helper

step "swift test (package, without the Core ML integration suite)"
(cd helper-swift && swift test "${STRICT[@]}" "${FAULTS[@]}" --skip CoreMLIntegrationTests)

step "convert the test models with coremltools"
"${PYTHON:-python3}" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements/coremltools.txt
"$WORK/venv/bin/python" scripts/ci/coreml_fixtures.py "$WORK/fixtures"

step "Core ML integration suite"
(cd helper-swift && COREML_CI_FIXTURES="$WORK/fixtures" swift test "${STRICT[@]}" "${FAULTS[@]}" --filter CoreMLIntegrationTests)

step "supervisor crash-isolation suite against the Swift helper"
cargo build -p coreml-test-helper
COREML_TEST_HELPERS="swift=$HELPER_FAULTS" cargo test -p coreml-supervisor
