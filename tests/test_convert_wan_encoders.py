"""Wan's own umT5 and CLIP `.pth` modules converted to transformers, checked against Wan's forward math.

The fixtures are tiny random instances of minimal re-implementations of Wan's `T5Encoder` (umT5: a relative
position bias in every block) and CLIP `XLMRobertaCLIP` (ViT vision tower + an XLM-R text tower), written here
from the official definitions (`wan/modules/t5.py`, `clip.py`) with their key names, saved with `torch.save`
as the official files are. The converted models must give the same outputs as these forwards.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from anisora.cli import main
from anisora.model.convert.wan_encoders import (
    CLIP_FILE,
    T5_FILE,
    T5_TOKENIZER,
    clip_conversion,
    t5_conversion,
)
from test_convert_wan import (
    TINY,
    random_tensors,
    wan_transformer_shapes,
    wan_vae_shapes,
    write_wan_checkpoint,
)

# ----- Wan's umT5 encoder (t5.py: T5Encoder with shared_pos=False) -----------------------------------------


class TanhGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class T5Norm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


class T5Attention(nn.Module):
    def __init__(self, dim, dim_attn, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim_attn, bias=False) for _ in range(3))
        self.o = nn.Linear(dim_attn, dim, bias=False)

    def forward(self, x, mask, pos_bias):
        b, n = x.size(0), self.heads
        q, k, v = (proj(x).view(b, x.size(1), n, -1) for proj in (self.q, self.k, self.v))
        attn = torch.einsum("binc,bjnc->bnij", q, k) + pos_bias  # T5: no 1/sqrt(d) scaling
        attn = attn.masked_fill(mask.view(b, 1, 1, -1) == 0, torch.finfo(x.dtype).min)
        x = torch.einsum("bnij,bjnc->binc", attn.softmax(-1), v)
        return self.o(x.reshape(b, x.size(1), -1))


class T5FeedForward(nn.Module):
    def __init__(self, dim, dim_ffn):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False), TanhGELU())
        self.fc1 = nn.Linear(dim, dim_ffn, bias=False)
        self.fc2 = nn.Linear(dim_ffn, dim, bias=False)

    def forward(self, x):
        return self.fc2(self.fc1(x) * self.gate(x))


class T5RelativeEmbedding(nn.Module):
    """Bidirectional: half the buckets for keys after the query; each half exact up to a quarter of the
    buckets, then logarithmic up to max_dist 128."""

    def __init__(self, buckets, heads):
        super().__init__()
        self.embedding = nn.Embedding(buckets, heads)

    def forward(self, length):
        rel = torch.arange(length)[None, :] - torch.arange(length)[:, None]
        half = self.embedding.num_embeddings // 2
        exact = half // 2
        far = torch.abs(rel)
        large = exact + (torch.log(far.float() / exact) / math.log(128 / exact) * (half - exact)).long()
        bucket = (rel > 0).long() * half + torch.where(far < exact, far, large.clamp(max=half - 1))
        return self.embedding(bucket).permute(2, 0, 1)[None]


class T5Block(nn.Module):
    def __init__(self, dim, dim_attn, dim_ffn, heads, buckets):
        super().__init__()
        self.norm1 = T5Norm(dim)
        self.attn = T5Attention(dim, dim_attn, heads)
        self.norm2 = T5Norm(dim)
        self.ffn = T5FeedForward(dim, dim_ffn)
        self.pos_embedding = T5RelativeEmbedding(buckets, heads)  # umT5: every block its own

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask, self.pos_embedding(x.size(1)))
        return x + self.ffn(self.norm2(x))


class WanT5Encoder(nn.Module):
    def __init__(self, vocab, dim, dim_attn, dim_ffn, heads, layers, buckets=32):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(T5Block(dim, dim_attn, dim_ffn, heads, buckets) for _ in range(layers))
        self.norm = T5Norm(dim)

    def forward(self, ids, mask):
        x = self.token_embedding(ids)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


# ----- Wan's CLIP (clip.py: XLMRobertaCLIP, ViT-H/14 layout: 16 heads, exact GELU, pre-norm) ---------------


class CLIPAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, s, c = x.shape
        q, k, v = self.to_qkv(x).view(b, s, 3, self.heads, c // self.heads).unbind(2)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(x.transpose(1, 2).reshape(b, s, c))


class CLIPBlock(nn.Module):
    def __init__(self, dim, mlp, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = CLIPAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim), nn.Dropout(0.0))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, image_size, patch, dim, mlp, layers, out_dim, heads=16):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, dim, patch, stride=patch, bias=False)  # no bias with pre_norm
        self.cls_embedding = nn.Parameter(torch.randn(1, 1, dim) / math.sqrt(dim))
        self.pos_embedding = nn.Parameter(
            torch.randn(1, (image_size // patch) ** 2 + 1, dim) / math.sqrt(dim)
        )
        self.pre_norm = nn.LayerNorm(dim, eps=1e-5)
        self.transformer = nn.Sequential(*(CLIPBlock(dim, mlp, heads) for _ in range(layers)))
        self.post_norm = nn.LayerNorm(dim, eps=1e-5)
        self.head = nn.Parameter(torch.randn(dim, out_dim) / math.sqrt(dim))

    def forward(self, x, use_31_block=False):
        x = self.patch_embedding(x).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.cls_embedding.expand(x.size(0), -1, -1), x], dim=1) + self.pos_embedding
        x = self.pre_norm(x)
        return self.transformer[:-1](x) if use_31_block else self.transformer(x)


class XLMRobertaStandIn(nn.Module):
    """A sliver of the text tower, for its key names: the converter must drop all of `textual.*`."""

    def __init__(self, dim=8, out_dim=4):
        super().__init__()
        self.token_embedding = nn.Embedding(10, dim)
        self.pos_embedding = nn.Embedding(10, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(
            nn.Linear(dim, dim, bias=False), nn.GELU(), nn.Linear(dim, out_dim, bias=False)
        )


class WanCLIP(nn.Module):
    def __init__(self, image_size, patch, dim, mlp, layers, out_dim=4):
        super().__init__()
        self.visual = VisionTransformer(image_size, patch, dim, mlp, layers, out_dim)
        self.textual = XLMRobertaStandIn(out_dim=out_dim)
        self.log_scale = nn.Parameter(math.log(1 / 0.07) * torch.ones([]))


def randomise(module, seed):
    """Every parameter moved off its default (norm weights off one, biases off zero), so that a swapped
    or dropped weight changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return module.eval()


def save_official(module, path, dtype):
    """torch.save of the state dict, as Wan's files are (umT5 in bf16); the module keeps the stored values."""
    state = {key: tensor.to(dtype) for key, tensor in module.state_dict().items()}
    torch.save(state, path)
    module.load_state_dict({key: tensor.float() for key, tensor in state.items()})


def relative(ours, theirs):
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


# ----- umT5 ----------------------------------------------------------------------------------------------


def test_t5_matches_wans_forward_with_a_bias_in_every_layer(tmp_path):
    from transformers import UMT5EncoderModel

    official = randomise(WanT5Encoder(vocab=64, dim=32, dim_attn=48, dim_ffn=40, heads=4, layers=3), seed=0)
    with torch.no_grad():  # each block's bias its own: block n's table is planted at about n
        for n, block in enumerate(official.blocks):
            block.pos_embedding.embedding.weight.add_(float(n))
    save_official(official, tmp_path / T5_FILE, torch.bfloat16)
    t5_conversion(tmp_path / T5_FILE).write(tmp_path / "text_encoder")
    model = UMT5EncoderModel.from_pretrained(tmp_path / "text_encoder", dtype=torch.float32).eval()

    config = model.config
    assert (config.d_model, config.d_kv, config.num_heads, config.d_ff, config.num_layers) == (
        32,
        12,
        4,
        40,
        3,
    )
    assert (config.relative_attention_num_buckets, config.relative_attention_max_distance) == (32, 128)
    assert config.dense_act_fn == "gelu_new" and config.is_gated_act  # Wan's tanh GELU on the gate
    for n, block in enumerate(model.encoder.block):
        bias = block.layer[0].SelfAttention.relative_attention_bias.weight
        assert torch.equal(bias, official.blocks[n].pos_embedding.embedding.weight)
    wi_0 = model.encoder.block[1].layer[1].DenseReluDense.wi_0.weight
    assert torch.equal(wi_0, official.blocks[1].ffn.gate[0].weight)
    assert torch.equal(model.encoder.embed_tokens.weight, official.token_embedding.weight)

    # 150 tokens: distances up to 149 reach the logarithmic buckets and the cap past 128; row 2 is padded.
    ids = torch.randint(0, 64, (2, 150), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 150, dtype=torch.long)
    mask[1, 90:] = 0
    with torch.no_grad():
        theirs = official(ids, mask)
        ours = model(input_ids=ids, attention_mask=mask).last_hidden_state
    print(f"umT5: max abs {(ours - theirs).abs().max():.2e}, relative {relative(ours, theirs):.2e}")
    assert relative(ours, theirs) <= 1e-4


# ----- CLIP ---------------------------------------------------------------------------------------------


def test_clip_vision_tower_matches_wans_31_block_output(tmp_path):
    from transformers import CLIPVisionModel

    official = randomise(WanCLIP(image_size=56, patch=14, dim=32, mlp=64, layers=3), seed=2)
    with torch.no_grad():  # q, k, v rows of the fused projection, told apart by their biases
        official.visual.transformer[1].attn.to_qkv.bias.copy_(torch.arange(3.0).repeat_interleave(32))
    save_official(official, tmp_path / CLIP_FILE, torch.float16)
    clip_conversion(tmp_path / CLIP_FILE).write(tmp_path / "image_encoder")
    model = CLIPVisionModel.from_pretrained(tmp_path / "image_encoder", dtype=torch.float32).eval()

    config = model.config
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (32, 16, 3)
    assert (config.image_size, config.patch_size, config.hidden_act) == (56, 14, "gelu")
    attention = model.encoder.layers[1].self_attn
    for value, proj in enumerate((attention.q_proj, attention.k_proj, attention.v_proj)):
        assert torch.equal(proj.bias, torch.full((32,), float(value)))
    fused = official.visual.transformer[1].attn.to_qkv.weight
    assert torch.equal(
        torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight]), fused
    )
    with safe_open(tmp_path / "image_encoder" / "model.safetensors", "pt") as f:
        keys = list(f.keys())
        assert {f.get_slice(key).get_dtype() for key in keys} == {"F16"}  # as Wan runs its CLIP
    # the published layout (vision_model.*): 3 embeddings, 2 norms of 2, 3 blocks of 16, no text tower
    assert all(key.startswith("vision_model.") for key in keys) and len(keys) == 3 + 4 + 3 * 16

    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = official.visual(pixels, use_31_block=True)  # what Wan's I2V feeds its DiT
        hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states
        full = official.visual(pixels)
    ours = hidden[-2]  # what diffusers' WanImageToVideoPipeline.encode_image feeds its DiT
    print(f"CLIP: max abs {(ours - theirs).abs().max():.2e}, relative {relative(ours, theirs):.2e}")
    assert ours.shape == (2, 17, 32) and relative(ours, theirs) <= 1e-4
    assert relative(hidden[-1], full) <= 1e-4


# ----- a release that holds Wan's files, converted and run ------------------------------------------------

TEXT_DIM, CLIP_DIM = 4096, 1280  # what the Wan DiT takes


def write_official_release(folder, t5=True, clip=True, vae=True, dit=True):
    """The Wan2.1 files an AniSora release laid on a Wan checkout holds, all tiny but for the widths the DiT
    takes (umT5 4096, CLIP 1280). Returns the official encoders, with the values as stored."""
    from anisora.model.presets import char_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    if dit:
        write_wan_checkpoint(folder, random_tensors(wan_transformer_shapes(**TINY), seed=0), shards=2, **TINY)
    if vae:
        torch.save(random_tensors(wan_vae_shapes(), seed=1), folder / "Wan2.1_VAE.pth")
    official = {}
    if t5:
        tokenizer = char_tokenizer()
        tokenizer.save_pretrained(folder / T5_TOKENIZER)
        official["t5"] = randomise(WanT5Encoder(len(tokenizer), TEXT_DIM, 16, 16, heads=2, layers=1), seed=4)
        save_official(official["t5"], folder / T5_FILE, torch.bfloat16)
        (folder / "xlm-roberta-large").mkdir()  # the CLIP text tower's tokenizer: not needed
    if clip:
        official["clip"] = randomise(WanCLIP(image_size=32, patch=16, dim=CLIP_DIM, mlp=16, layers=2), seed=5)
        save_official(official["clip"], folder / CLIP_FILE, torch.float16)
    return official


def test_a_release_holding_wans_files_needs_no_base_and_generates(tmp_path, capsys):
    from diffusers import WanImageToVideoPipeline
    from PIL import Image

    from anisora.media import probe, save_image

    release, out = tmp_path / "anisoraV3", tmp_path / "out"
    official = write_official_release(release)
    assert main(["convert", "wan", str(release), str(out)]) == 0
    assert str(out) in capsys.readouterr().out

    index = json.loads((out / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    assert index["image_encoder"] == ["transformers", "CLIPVisionModel"]
    assert index["image_processor"] == ["transformers", "CLIPImageProcessor"]
    assert index["tokenizer"][0] == "transformers" and index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert not any((out / name).is_symlink() for name in index if (out / name).exists())
    processor = json.loads((out / "image_processor" / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 32, "width": 32} and not processor["do_center_crop"]
    assert processor["image_mean"] == [0.48145466, 0.4578275, 0.40821073] and processor["resample"] == 3

    # diffusers' own encoders give Wan's: the prompt through umT5, the image tokens after block 31 of 32.
    pipe = WanImageToVideoPipeline.from_pretrained(out, torch_dtype=torch.float32)
    image = Image.fromarray((np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8))
    with torch.no_grad():
        ours = pipe.encode_image(image, torch.device("cpu"))
        pixels = pipe.image_processor(images=image, return_tensors="pt").pixel_values
        theirs = official["clip"].visual(pixels, use_31_block=True)
        embeds = pipe.encode_prompt("a cat waves", do_classifier_free_guidance=False, max_sequence_length=16)[
            0
        ]
        tokens = pipe.tokenizer("a cat waves", return_tensors="pt")
        wan = official["t5"](tokens.input_ids, tokens.attention_mask)[0]
    assert relative(ours, theirs) <= 1e-4
    assert relative(embeds[0, : len(wan)], wan) <= 1e-4 and not embeds[0, len(wan) :].any()

    save_image(tmp_path / "panel.png", (np.random.default_rng(1).random((32, 48, 3)) * 255).astype(np.uint8))
    args = ["generate", "--model", str(out), "--image", str(tmp_path / "panel.png"), "--frames", "5"]
    assert main([*args, "--size", "48x32", "--steps", "2", "--out", str(tmp_path / "x.mp4")]) == 0
    info = probe(tmp_path / "x.mp4")
    assert (info.frame_count, info.width, info.height) == (5, 48, 32)


# ----- where each part comes from ---------------------------------------------------------------------------


def test_base_may_be_an_official_wan_checkout(tmp_path):
    """A DiT-only release (V3.1, anymask) with an official Wan2.1 checkout as --base: T5, CLIP and the VAE
    are all converted from the checkout."""
    release, checkout, out = tmp_path / "release", tmp_path / "Wan2.1-I2V-14B-720P", tmp_path / "out"
    write_official_release(release, t5=False, clip=False, vae=False)
    write_official_release(checkout, dit=False)
    assert main(["convert", "wan", str(release), str(out), "--base", str(checkout)]) == 0
    for name in ("text_encoder", "tokenizer", "image_encoder", "image_processor", "vae"):
        assert (out / name).is_dir() and not (out / name).is_symlink()
    with safe_open(out / "text_encoder" / "model.safetensors", "pt") as f:
        assert f.get_slice("shared.weight").get_dtype() == "BF16"


def test_what_src_lacks_is_linked_from_a_diffusers_base(tmp_path):
    from test_convert_wan import write_base

    release, out = tmp_path / "release", tmp_path / "out"
    write_official_release(release, clip=False)  # umT5 and the VAE in SRC; CLIP from base
    base = write_base(tmp_path / "base")
    assert main(["convert", "wan", str(release), str(out), "--base", str(base)]) == 0
    assert not (out / "text_encoder").is_symlink() and (out / "text_encoder" / "model.safetensors").exists()
    assert (out / "image_encoder").resolve() == (base / "image_encoder").resolve()
    index = json.loads((out / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    assert index["image_encoder"] == ["transformers", "CLIPVisionModel"]


# ----- errors ---------------------------------------------------------------------------------------------


def _t5(tmp_path, damage):
    official = randomise(WanT5Encoder(vocab=16, dim=8, dim_attn=8, dim_ffn=8, heads=2, layers=2), seed=0)
    state = official.state_dict()
    damage(state)
    torch.save(state, tmp_path / T5_FILE)
    t5_conversion(tmp_path / T5_FILE)


def _clip(tmp_path, damage):
    state = randomise(WanCLIP(image_size=28, patch=14, dim=16, mlp=8, layers=2), seed=0).state_dict()
    damage(state)
    torch.save(state, tmp_path / CLIP_FILE)
    clip_conversion(tmp_path / CLIP_FILE)


@pytest.mark.parametrize(
    ("convert", "damage", "message"),
    [
        (
            _t5,
            lambda s: s.pop("blocks.1.pos_embedding.embedding.weight"),
            "missing key 'blocks.1.pos_embedding",
        ),
        (
            _t5,
            lambda s: s.update({"pos_embedding.embedding.weight": torch.zeros(32, 2)}),
            "unknown key 'pos_emb",
        ),
        (
            _t5,
            lambda s: s.update({"blocks.1.ffn.fc2.weight": torch.zeros(8, 9)}),
            "has shape [8, 9], expected [8, 8]",
        ),
        (
            _t5,
            lambda s: s.update({"blocks.0.attn.q.weight": torch.zeros(9, 8)}),
            "width 9 is not a multiple of 2",
        ),
        (
            _clip,
            lambda s: s.pop("visual.transformer.0.attn.to_qkv.bias"),
            "missing key 'visual.transformer.0.attn",
        ),
        (
            _clip,
            lambda s: s.update({"visual.transformer.1.attn.to_qkv.weight": torch.zeros(32, 16)}),
            "expected [48, 16]",
        ),
        (_clip, lambda s: s.update({"visual.extra": torch.zeros(1)}), "unknown key 'visual.extra'"),
        (
            _clip,
            lambda s: s.update({"visual.pos_embedding": torch.zeros(1, 6, 16)}),
            "6 rows, not a class token",
        ),
    ],
)
def test_a_bad_encoder_key_is_one_error_naming_it(tmp_path, convert, damage, message):
    from anisora.errors import InputError

    with pytest.raises(InputError) as raised:
        convert(tmp_path, damage)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_bad_files_and_missing_parts_are_one_line(tmp_path, capsys):
    release, out = tmp_path / "release", tmp_path / "out"
    write_official_release(release, clip=False)

    def convert(*extra):
        code = main(["convert", "wan", str(release), str(out), *extra])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and not out.exists()
        return err

    assert f"--base is required: SRC has no {CLIP_FILE}" in convert()
    assert "neither an official Wan checkout with" in convert("--base", str(tmp_path))

    write_official_release(checkout := tmp_path / "checkout", dit=False, t5=False, vae=False)
    (release / T5_TOKENIZER / "tokenizer.json").write_text("{")
    assert "not a readable tokenizer" in convert("--base", str(checkout))
    (release / T5_FILE).write_bytes(b"not a torch file")
    assert f"{T5_FILE}: not a readable torch checkpoint" in convert("--base", str(checkout))
