#!/usr/bin/env bash
# The main job on the embedded default models, through the router:
# sentence embeddings with all-MiniLM-L6-v2 (similarity matrix: the two
# paraphrase pairs high, the unrelated sentences low), EfficientNet-Lite0 on
# the sample cat photo (top-5 labels), and the telemetry table naming the
# engine that served. Called by `make demo` after `make assets`
# (scripts/prepare_test_assets.sh), which puts the weights in
# ${COREML_BRIDGE_CACHE:-~/.cache/coreml-bridge}/weights.
#
# Core ML is used when COREML_HELPER names a helper that has it (macOS).
# On Linux (COREML_HELPER unset) the models are served OUT OF PROCESS by the
# Rust helper (coreml-test-helper), which runs ML Program packages with the MIL
# executor under the same sandbox (seccomp, Landlock, memory cgroup); the
# packages are built from the safetensors weights with coremltools' MIL builder
# (scripts/models/mil_builder.py, no torch; cached next to the weights). Then a
# resilience section injects a crash and a hang into that helper mid-stream:
# every request is still answered, and the restart and the fallback show in the
# telemetry table.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}"
export COREML_BRIDGE_CACHE="$CACHE"
CARGO="${CARGO:-cargo}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release/coreml-bridge"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building the CLI and the Rust helper (release)"
"$CARGO" build --release -p coreml-bridge-cli -p coreml-test-helper

for f in "$CACHE/weights/all-minilm-l6-v2/model.safetensors" \
         "$CACHE/weights/all-minilm-l6-v2/tokenizer.json" \
         "$CACHE/weights/efficientnet-lite0/model.safetensors"; do
    if [[ ! -f "$f" ]]; then
        echo "demo: $f is missing; run \`make assets\` (scripts/prepare_test_assets.sh) first" >&2
        exit 1
    fi
done
# The scikit-image sample cat (skimage.data.chelsea), kept in the repo.
CAT="${DEMO_IMAGE:-tests/fixtures/images/chelsea.png}"
if [[ ! -f "$CAT" ]]; then
    echo "demo: $CAT is missing (set DEMO_IMAGE to a photo)" >&2
    exit 1
fi

MINILM_PKG="$CACHE/weights/all-minilm-l6-v2/mil-builder.mlpackage"
EFFNET_PKG="$CACHE/weights/efficientnet-lite0/mil-builder.mlpackage"
OUT_OF_PROCESS=0
if [[ "$(uname -s)" == Linux && -z "${COREML_HELPER:-}" ]]; then
    OUT_OF_PROCESS=1
    step "ML Program packages from the safetensors weights (coremltools MIL builder, cached)"
    "$(scripts/python_env.sh coremltools)" scripts/models/mil_builder.py 2>&1 | grep -v -e '^Failed to load _ML' -e 'Running MIL'
    HELPER="$(cd "$TARGET/release" && pwd)/coreml-test-helper"
    export COREML_HELPER="$HELPER"
fi

# Fresh telemetry for this run.
export COREML_BRIDGE_TELEMETRY_DIR="${COREML_BRIDGE_TELEMETRY_DIR:-$CACHE/telemetry}"
rm -f "$COREML_BRIDGE_TELEMETRY_DIR"/last-*.json

SENTENCES=(
    "A man is playing a guitar."
    "Someone is playing an instrument."
    "A cat sits on the mat."
    "A kitten is resting on a rug."
    "The stock market fell sharply today."
    "Photosynthesis turns sunlight into chemical energy."
)
step "embed: two paraphrase pairs and two unrelated sentences"
"$BIN" embed "${SENTENCES[@]}"

if [[ $OUT_OF_PROCESS == 1 ]]; then
    step "out of process: the sandboxed helper runs the packages with the MIL executor"
    echo "(on Linux the router's \`coreml\` engine is this helper: $HELPER)"
    step "embed out of process: the same sentences through MiniLM's package in the helper"
    "$BIN" embed --coreml-model "$MINILM_PKG" "${SENTENCES[@]}"
    step "classify out of process: $(basename "$CAT") on EfficientNet-Lite0's package in the helper"
    "$BIN" classify "$CAT" --coreml-model "$EFFNET_PKG"
    step "telemetry"
    "$BIN" report

    # Resilience: the same helper with a fault switch (docs/diagnostics.md). The
    # marker file makes each fault fire once, across restarts; it lives in the
    # compiled-model cache's staging directory, which the sandbox lets the helper write.
    MARKS="$CACHE/compiled/.staging"
    mkdir -p "$MARKS"
    for fault in segv hang; do
        rm -f "$COREML_BRIDGE_TELEMETRY_DIR"/last-*.json "$MARKS/demo-$fault.once"
        case $fault in
            segv) step "resilience: the helper crashes (SIGSEGV) at the 4th request of 8" ;;
            hang) step "resilience: the helper hangs at the 4th request of 8 (deadline 3 s)" ;;
        esac
        COREML_HELPER="$HELPER --mil-faults fault=$fault&after=3&once=$MARKS/demo-$fault.once" \
            "$BIN" classify "$CAT" --coreml-model "$EFFNET_PKG" --repeat 8 --deadline-ms 3000 --top 1
        "$BIN" report
    done
    rm -f "$MARKS"/demo-*.once
else
    step "classify: $(basename "$CAT")"
    "$BIN" classify "$CAT"

    step "telemetry"
    "$BIN" report
fi
