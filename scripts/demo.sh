#!/usr/bin/env bash
# The main job on the embedded default models, through the router:
# sentence embeddings with all-MiniLM-L6-v2 (similarity matrix: the two
# paraphrase pairs high, the unrelated sentences low), EfficientNet-Lite0 on
# the sample cat photo (top-5 labels), and the telemetry table naming the
# engine that served. Called by `make demo` after `make assets`
# (scripts/prepare_test_assets.sh), which puts the weights in
# ${COREML_BRIDGE_CACHE:-~/.cache/coreml-bridge}/weights.
#
# Core ML is used when COREML_HELPER names a helper that has it (macOS);
# elsewhere the CLI says on one line that Candle serves, and why.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}"
export COREML_BRIDGE_CACHE="$CACHE"
CARGO="${CARGO:-cargo}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release/coreml-bridge"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building the CLI (release)"
"$CARGO" build --release -p coreml-bridge-cli

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

# Fresh telemetry for this run.
export COREML_BRIDGE_TELEMETRY_DIR="${COREML_BRIDGE_TELEMETRY_DIR:-$CACHE/telemetry}"
rm -f "$COREML_BRIDGE_TELEMETRY_DIR"/last-*.json

step "embed: two paraphrase pairs and two unrelated sentences"
"$BIN" embed \
    "A man is playing a guitar." \
    "Someone is playing an instrument." \
    "A cat sits on the mat." \
    "A kitten is resting on a rug." \
    "The stock market fell sharply today." \
    "Photosynthesis turns sunlight into chemical energy."

step "classify: $(basename "$CAT")"
"$BIN" classify "$CAT"

step "telemetry"
"$BIN" report
