"""Convert Wan's own umT5 text encoder and CLIP image encoder (`.pth`) into the transformers models that
diffusers' Wan pipelines load, streamed.

Official Wan checkouts (Wan2.1-I2V-14B-720P, Wan2.2-I2V-A14B), and the AniSora releases laid on top of them,
ship both encoders as state dicts of Wan's own modules (`wan/modules/t5.py`, `clip.py`), with the tokenizer
folders beside them. diffusers' `WanImageToVideoPipeline` takes a transformers `UMT5EncoderModel` with
its tokenizer and, for Wan2.1, a `CLIPVisionModel` with a `CLIPImageProcessor`. The mappings, read off Wan's
module definitions and transformers' modelling code:

- umT5 (Wan's `T5Encoder` with `shared_pos=False`): every block has its own relative position bias, as every
  transformers UMT5 layer does; the feed-forward is gated GELU (tanh form, transformers' `gelu_new`) with the
  activated gate `gate.0` (wi_0) times `fc1` (wi_1); neither scales attention by 1/sqrt(d); the norms are RMS
  norms and `norm` is the final one. Bucket and head counts come from the bias table's shape; Wan's
  maximum distance is 128.
- CLIP: only the vision tower (`visual.*`) is kept. Wan's image tokens are the output of block 31 of 32
  (`use_31_block`): `hidden_states[-2]` of the converted model, which is what diffusers reads, so all blocks
  are converted. The fused `to_qkv` splits into q, k, v in that order. The XLM-R text tower (`textual.*`),
  the projection `visual.head` and `log_scale` are dropped. The image processor is Wan's preprocessing: the
  whole frame resized (bicubic) to the model's square size, no crop, CLIP's mean and std.

Sizes are read from the checkpoint's shapes, except CLIP's head count, which no shape shows: ViT-H/14's 16.
Every key is checked against the transformers model built on the meta device before anything is written.
Weights are written in the dtype Wan runs them in: umT5 in bf16 (Wan's `t5_dtype`; the file is bf16), CLIP in
fp16 (Wan's `clip_dtype`; fp16 to bf16 would drop bits the release has). CLIP keys keep the `vision_model.`
prefix of published transformers checkpoints, which transformers 4 and 5 both load.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from anisora.errors import InputError

from .shards import DEFAULT_MAX_SHARD_BYTES, ShardWriter

T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
T5_TOKENIZER = "google/umt5-xxl"  # the tokenizer folder beside T5_FILE, as Wan's config names it
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
CLIP_HEADS = 16  # ViT-H/14 (Wan's `clip_xlm_roberta_vit_h_14`)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
T5_MAX_DISTANCE = 128  # Wan's `T5RelativeEmbedding(max_dist=128)`
T5_EPS = 1e-6  # Wan's T5LayerNorm
CLIP_EPS = 1e-5  # Wan's CLIP norm_eps
# Wan stores the class token as (1, 1, dim) and the position table as (1, tokens, dim).
_LEADING_ONES = {"visual.cls_embedding": 2, "visual.pos_embedding": 1}


@dataclass
class EncoderConversion:
    """One transformers model to write: its config and, per source key, the weights it becomes (name and
    shape; several when the source is split evenly along its first axis)."""

    config: object  # a transformers PretrainedConfig
    plan: dict[str, list[tuple[str, torch.Size]]]
    state: dict[str, torch.Tensor]
    dtype: torch.dtype

    def write(self, folder: Path, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> None:
        self.config.save_pretrained(folder)
        with ShardWriter(folder, prefix="model", max_shard_bytes=max_shard_bytes, dtype=self.dtype) as writer:
            for key, targets in self.plan.items():
                for (name, shape), part in zip(targets, self.state[key].chunk(len(targets)), strict=True):
                    writer.add(name, part.reshape(shape))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict saved in `path`, memory-mapped: a tensor's bytes are read only when it is used."""
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # a truncated file or not a torch archive: say which file, not a traceback
        raise InputError(f"{path}: not a readable torch checkpoint ({_first_line(err)})") from None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return state


def t5_conversion(path: Path) -> EncoderConversion:
    """Wan's umT5 encoder file `path` as a transformers `UMT5EncoderModel`."""
    from transformers import UMT5Config, UMT5EncoderModel

    state = read_state_dict(path)
    vocab, dim = _dims(path, state, "token_embedding.weight", 2)
    dim_attn = _dims(path, state, "blocks.0.attn.q.weight", 2)[0]
    buckets, heads = _dims(path, state, "blocks.0.pos_embedding.embedding.weight", 2)
    if dim_attn % heads:
        raise InputError(f"{path}: attention width {dim_attn} is not a multiple of {heads} heads")
    layers = _count_blocks(state, "blocks.")
    config = UMT5Config(
        vocab_size=vocab,
        d_model=dim,
        d_kv=dim_attn // heads,
        d_ff=_dims(path, state, "blocks.0.ffn.fc1.weight", 2)[0],
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=buckets,
        relative_attention_max_distance=T5_MAX_DISTANCE,
        feed_forward_proj="gated-gelu",
        layer_norm_epsilon=T5_EPS,
        tie_word_embeddings=False,  # as google/umt5-xxl; the encoder's own embedding is `shared` either way
    )
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    sources = {
        "token_embedding.weight": ["shared.weight"],
        "norm.weight": ["encoder.final_layer_norm.weight"],
    }
    for n in range(layers):
        wan, attn, ffn = f"blocks.{n}.", f"encoder.block.{n}.layer.0.", f"encoder.block.{n}.layer.1."
        sources |= {f"{wan}attn.{p}.weight": [f"{attn}SelfAttention.{p}.weight"] for p in "qkvo"}
        sources |= {
            f"{wan}norm1.weight": [f"{attn}layer_norm.weight"],
            f"{wan}pos_embedding.embedding.weight": [f"{attn}SelfAttention.relative_attention_bias.weight"],
            f"{wan}norm2.weight": [f"{ffn}layer_norm.weight"],
            f"{wan}ffn.gate.0.weight": [f"{ffn}DenseReluDense.wi_0.weight"],  # GELU(gate.0 x) * fc1 x
            f"{wan}ffn.fc1.weight": [f"{ffn}DenseReluDense.wi_1.weight"],
            f"{wan}ffn.fc2.weight": [f"{ffn}DenseReluDense.wo.weight"],
        }
    return _conversion(path, state, model, sources, torch.bfloat16)


def clip_conversion(path: Path) -> EncoderConversion:
    """The vision tower of Wan's CLIP file `path` as a transformers `CLIPVisionModel`."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    state = read_state_dict(path)
    dim = _dims(path, state, "visual.cls_embedding", 3)[2]
    patch = _dims(path, state, "visual.patch_embedding.weight", 4)[3]
    tokens = _dims(path, state, "visual.pos_embedding", 3)[1]
    grid = math.isqrt(tokens - 1)
    if grid * grid != tokens - 1:
        raise InputError(f"{path}: visual.pos_embedding has {tokens} rows, not a class token + a square grid")
    if dim % CLIP_HEADS:
        raise InputError(f"{path}: vision width {dim} is not a multiple of ViT-H/14's {CLIP_HEADS} heads")
    layers = _count_blocks(state, "visual.transformer.")
    config = CLIPVisionConfig(
        hidden_size=dim,
        intermediate_size=_dims(path, state, "visual.transformer.0.mlp.0.weight", 2)[0],
        num_hidden_layers=layers,
        num_attention_heads=CLIP_HEADS,
        image_size=grid * patch,
        patch_size=patch,
        hidden_act="gelu",  # Wan's activation='gelu': torch's exact GELU, not CLIP's quick_gelu
        layer_norm_eps=CLIP_EPS,
    )
    with torch.device("meta"):
        model = CLIPVisionModel(config)
    sources = {
        "visual.patch_embedding.weight": ["embeddings.patch_embedding.weight"],  # no bias: Wan's pre_norm
        "visual.cls_embedding": ["embeddings.class_embedding"],
        "visual.pos_embedding": ["embeddings.position_embedding.weight"],
    }
    for p in ("weight", "bias"):
        sources |= {
            f"visual.pre_norm.{p}": [f"pre_layrnorm.{p}"],
            f"visual.post_norm.{p}": [f"post_layernorm.{p}"],
        }
        for n in range(layers):
            wan, hf = f"visual.transformer.{n}.", f"encoder.layers.{n}."
            sources |= {
                f"{wan}norm1.{p}": [f"{hf}layer_norm1.{p}"],
                f"{wan}attn.to_qkv.{p}": [f"{hf}self_attn.{x}_proj.{p}" for x in "qkv"],
                f"{wan}attn.proj.{p}": [f"{hf}self_attn.out_proj.{p}"],
                f"{wan}norm2.{p}": [f"{hf}layer_norm2.{p}"],
                f"{wan}mlp.0.{p}": [f"{hf}mlp.fc1.{p}"],
                f"{wan}mlp.2.{p}": [f"{hf}mlp.fc2.{p}"],
            }
    dropped = [k for k in state if k.startswith("textual.") or k in ("visual.head", "log_scale")]
    return _conversion(path, state, model, sources, torch.float16, dropped, prefix="vision_model.")


def t5_tokenizer(folder: Path, vocab_size: int):
    """The umT5 tokenizer in `folder`/google/umt5-xxl, once its ids fit the encoder's `vocab_size` rows."""
    from transformers import AutoTokenizer

    path = folder / T5_TOKENIZER
    if not path.is_dir():
        raise InputError(f"{path}: no such folder (the tokenizer that goes with {T5_FILE})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # transformers raises many kinds for a broken folder
        raise InputError(f"{path}: not a readable tokenizer ({_first_line(err)})") from None
    if len(tokenizer) > vocab_size:
        raise InputError(f"{path}: {len(tokenizer)} tokens, but {T5_FILE} embeds only {vocab_size}")
    return tokenizer


def clip_image_processor(size: int):
    """Wan's CLIP preprocessing: the whole image resized (bicubic) to size x size, CLIP's mean and std."""
    from PIL import Image
    from transformers import CLIPImageProcessorPil  # the torchvision-free form of CLIPImageProcessor

    square = {"height": size, "width": size}
    return CLIPImageProcessorPil(
        size=square,
        crop_size=square,
        do_center_crop=False,
        resample=Image.Resampling.BICUBIC,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )


def _conversion(path, state, model, sources, dtype, dropped=(), prefix="") -> EncoderConversion:
    """The conversion of `state` once every key is one of `sources` ({official key: the model weights it
    becomes}) with the matching shape, or `dropped`, and every source is present; else one InputError naming
    the first offending key."""
    weights = _weights(model)
    named = [name for names in sources.values() for name in names]
    if sorted(named) != sorted(weights):  # the mapping and transformers' model disagree: a bug, not the input
        raise RuntimeError(f"{type(model).__name__}: weights not mapped: {sorted(set(weights) ^ set(named))}")
    skip = set(dropped)
    for key, tensor in state.items():
        if key in skip:
            continue
        if key not in sources:
            raise InputError(f"{path}: unknown key {key!r} (no {type(model).__name__} weight of that name)")
        expected = _source_shape(key, [weights[name] for name in sources[key]])
        if tuple(tensor.shape) != expected:
            raise InputError(f"{path}: key {key!r} has shape {list(tensor.shape)}, expected {list(expected)}")
    missing = [key for key in sources if key not in state]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        shape = _source_shape(missing[0], [weights[name] for name in sources[missing[0]]])
        raise InputError(f"{path}: missing key {missing[0]!r} (shape {list(shape)}){more}")
    plan = {key: [(prefix + name, weights[name]) for name in names] for key, names in sources.items()}
    model.config.architectures = [type(model).__name__]
    model.config.dtype = dtype
    return EncoderConversion(model.config, plan, state, dtype)


def _weights(model: torch.nn.Module) -> dict[str, torch.Size]:
    """{name: shape} of the model's weights, a tied weight once (under its first name)."""
    weights, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            weights[name] = tensor.shape
    return weights


def _source_shape(key: str, shapes: list[torch.Size]) -> tuple[int, ...]:
    """The official shape of `key`: its targets stacked along the first axis, with Wan's leading ones."""
    stacked = (sum(shape[0] for shape in shapes), *shapes[0][1:])
    return (1,) * _LEADING_ONES.get(key, 0) + stacked


def _dims(path: Path, state: dict[str, torch.Tensor], key: str, ndim: int) -> tuple[int, ...]:
    """The shape of `key`, which the model's sizes are read from."""
    if key not in state:
        raise InputError(f"{path}: missing key {key!r}")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise InputError(f"{path}: key {key!r} has shape {list(shape)}, expected {ndim} dimensions")
    return shape


def _count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    return 1 + max((int(m.group(1)) for key in state if (m := pattern.match(key))), default=-1)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
