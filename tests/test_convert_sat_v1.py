"""`anisora convert sat-v1`: a tiny AniSora V1 release in the official SAT layout, converted, loaded, sampled.

The fixture's keys and shapes are written out here from the official module definitions (SAT's
BaseTransformer layers; the mixins of AniSora V1's `dit_video_concat.py`; the VAE of
`vae_modules/cp_enc_dec.py`), never taken from diffusers' models, so the key map is tested against the
release's layout rather than against itself.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from anisora.cli import main
from anisora.errors import InputError
from anisora.model.conditioning import Guide
from anisora.model.convert.sat_v1 import (
    diffusers_tensors,
    patch_grid,
    transformer_config,
    transformer_weights,
)
from anisora.model.weights import load_pipeline
from test_model import spiece_tokenizer

LATENT, PATCH = 16, 2
TEXT_ROWS = 226
VAE_CHANNELS = (32, 64, 64, 64)  # ch 32, ch_mult (1, 2, 2, 2); SAT's GroupNorm has 32 groups
VAE_BLOCKS = 1
PREFIX = "model.diffusion_model."
# AdaLNMixin's 12 chunks, in the official order.
SAT_CHUNKS = (
    "shift_msa", "scale_msa", "gate_msa", "shift_mlp", "scale_mlp", "gate_mlp",
    "text_shift_msa", "text_scale_msa", "text_gate_msa", "text_shift_mlp", "text_scale_mlp", "text_gate_mlp",
)  # fmt: skip
# diffusers' CogVideoXLayerNormZero: shift, scale, gate, then the text (encoder) ones; norm1 before
# attention, norm2 before the MLP.
NORM1 = ("shift_msa", "scale_msa", "gate_msa", "text_shift_msa", "text_scale_msa", "text_gate_msa")
NORM2 = ("shift_mlp", "scale_mlp", "gate_mlp", "text_shift_mlp", "text_scale_mlp", "text_gate_mlp")


def rotary_tables(frames: int, rows: int, cols: int, head_dim: int) -> tuple[torch.Tensor, ...]:
    """Rotary3DPositionEmbeddingMixin's freqs_sin / freqs_cos: per-axis frequencies, each repeated twice,
    frame | row | column parts, flattened over (frame, row, column)."""
    sizes, dims = (frames, rows, cols), (head_dim // 4, head_dim // 8 * 3, head_dim // 8 * 3)
    axes = []
    for size, dim in zip(sizes, dims, strict=True):
        freqs = 1.0 / 10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)
        axes.append((torch.arange(size).float()[:, None] * freqs).repeat_interleave(2, dim=1))
    t, h, w = axes
    grid = torch.cat(
        [
            t[:, None, None].expand(-1, rows, cols, -1),
            h[None, :, None].expand(frames, -1, cols, -1),
            w[None, None].expand(frames, rows, -1, -1),
        ],
        dim=-1,
    ).reshape(-1, head_dim)
    return grid.sin(), grid.cos()


@dataclass(frozen=True)
class Sizes:
    hidden: int = 32
    layers: int = 2
    head_dim: int = 16
    time_dim: int = 8
    text_dim: int = 16
    grid: tuple[int, int, int] = (3, 4, 6)  # latent frames, patch rows, patch columns: 9 frames of 64 x 96


TINY = Sizes()
RELEASE = Sizes(hidden=3072, layers=42, head_dim=64, time_dim=512, text_dim=4096, grid=(13, 45, 80))


def sat_transformer_shapes(sizes: Sizes = TINY) -> dict[str, tuple[int, ...]]:
    """The official DiffusionTransformer's state dict and its shapes."""
    h, time_dim, shapes = sizes.hidden, sizes.time_dim, {}

    def add(name: str, weight: tuple[int, ...]) -> None:
        shapes[f"{PREFIX}{name}.weight"] = weight
        shapes[f"{PREFIX}{name}.bias"] = weight[:1]

    for i in range(sizes.layers):
        layer = f"transformer.layers.{i}"
        add(f"{layer}.input_layernorm", (h,))
        add(f"{layer}.attention.query_key_value", (3 * h, h))
        add(f"{layer}.attention.dense", (h, h))
        add(f"{layer}.post_attention_layernorm", (h,))
        add(f"{layer}.mlp.dense_h_to_4h", (4 * h, h))
        add(f"{layer}.mlp.dense_4h_to_h", (h, 4 * h))
        add(f"mixins.adaln_layer.adaLN_modulations.{i}.1", (12 * h, time_dim))
        add(f"mixins.adaln_layer.query_layernorm_list.{i}", (sizes.head_dim,))
        add(f"mixins.adaln_layer.key_layernorm_list.{i}", (sizes.head_dim,))
    add("transformer.final_layernorm", (h,))
    add("mixins.patch_embed.proj", (h, 2 * LATENT, PATCH, PATCH))
    add("mixins.patch_embed.text_proj", (h, sizes.text_dim))
    add("mixins.final_layer.norm_final", (h,))
    add("mixins.final_layer.linear", (PATCH * PATCH * LATENT, h))
    add("mixins.final_layer.adaLN_modulation.1", (2 * h, time_dim))
    add("time_embed.0", (time_dim, h))
    add("time_embed.2", (time_dim, time_dim))
    shapes[f"{PREFIX}mixins.pos_embed.pos_embedding"] = (1, TEXT_ROWS + int(np.prod(sizes.grid)), h)
    return shapes


def sat_transformer() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {k: 0.05 * torch.randn(s, generator=generator) for k, s in sat_transformer_shapes().items()}
    # Planted: layer 1's fused q, k, v bias counts up; layer 0's AdaLN chunk c holds c + 1.
    h = TINY.hidden
    state[f"{PREFIX}transformer.layers.1.attention.query_key_value.bias"] = torch.arange(3 * h).float()
    state[f"{PREFIX}mixins.adaln_layer.adaLN_modulations.0.1.bias"] = torch.arange(1, 13.0).repeat_interleave(
        h
    )
    sin, cos = rotary_tables(*TINY.grid, TINY.head_dim)
    state[f"{PREFIX}mixins.pos_embed.freqs_sin"], state[f"{PREFIX}mixins.pos_embed.freqs_cos"] = sin, cos
    return state


def sat_vae() -> dict[str, torch.Tensor]:
    """ContextParallelEncoder3D / Decoder3D names (causal convs wrap a `.conv`; the decoder's norms are
    SpatialNorm3D; `up.i` is resolution level i) at tiny widths, plus a training-loss key that is dropped."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out_ch: int, in_ch: int, kernel: tuple[int, ...]) -> None:
        shapes.update({f"{name}.weight": (out_ch, in_ch, *kernel), f"{name}.bias": (out_ch,)})

    def group_norm(name: str, ch: int) -> None:
        shapes.update({f"{name}.weight": (ch,), f"{name}.bias": (ch,)})

    def spatial_norm(name: str, ch: int) -> None:
        group_norm(f"{name}.norm_layer", ch)
        conv(f"{name}.conv_y.conv", ch, LATENT, (1, 1, 1))
        conv(f"{name}.conv_b.conv", ch, LATENT, (1, 1, 1))

    def resnet(name: str, in_ch: int, out_ch: int, norm) -> None:
        norm(f"{name}.norm1", in_ch)
        conv(f"{name}.conv1.conv", out_ch, in_ch, (3, 3, 3))
        norm(f"{name}.norm2", out_ch)
        conv(f"{name}.conv2.conv", out_ch, out_ch, (3, 3, 3))
        if in_ch != out_ch:
            conv(f"{name}.nin_shortcut", out_ch, in_ch, (1, 1, 1))

    conv("encoder.conv_in.conv", VAE_CHANNELS[0], 3, (3, 3, 3))
    ch = VAE_CHANNELS[0]
    for i, out_ch in enumerate(VAE_CHANNELS):
        for j in range(VAE_BLOCKS):
            resnet(f"encoder.down.{i}.block.{j}", ch, out_ch, group_norm)
            ch = out_ch
        if i < len(VAE_CHANNELS) - 1:
            conv(f"encoder.down.{i}.downsample.conv", ch, ch, (3, 3))
    for k in (1, 2):
        resnet(f"encoder.mid.block_{k}", ch, ch, group_norm)
    group_norm("encoder.norm_out", ch)
    conv("encoder.conv_out.conv", 2 * LATENT, ch, (3, 3, 3))
    conv("decoder.conv_in.conv", ch, LATENT, (3, 3, 3))
    for k in (1, 2):
        resnet(f"decoder.mid.block_{k}", ch, ch, spatial_norm)
    for i in reversed(range(len(VAE_CHANNELS))):
        for j in range(VAE_BLOCKS + 1):
            resnet(f"decoder.up.{i}.block.{j}", ch, VAE_CHANNELS[i], spatial_norm)
            ch = VAE_CHANNELS[i]
        if i != 0:
            conv(f"decoder.up.{i}.upsample.conv", ch, ch, (3, 3))
    spatial_norm("decoder.norm_out", ch)
    conv("decoder.conv_out.conv", 3, ch, (3, 3, 3))
    shapes["loss.logvar"] = ()
    generator = torch.Generator().manual_seed(1)
    return {k: 0.05 * torch.randn(s, generator=generator) for k, s in shapes.items()}


def t5_folder(folder: Path) -> None:
    """A transformers T5 folder as the release's `t5-v1_1-xxl_new`: tokenizer and encoder files together."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    spiece_tokenizer(folder)
    vocab = len(T5Tokenizer.from_pretrained(folder))
    config = T5Config(d_model=TINY.text_dim, d_ff=32, d_kv=8, num_layers=1, num_heads=2, vocab_size=vocab)
    T5EncoderModel(config).save_pretrained(folder)


def write_release(src: Path, state: dict[str, torch.Tensor], with_t5: bool = True) -> Path:
    (src / "ckpt" / "1000").mkdir(parents=True)
    (src / "ckpt" / "latest").write_text("1000\n")
    torch.save({"module": state}, src / "ckpt" / "1000" / "mp_rank_00_model_states.pt")
    (src / "pretrained_models").mkdir()
    torch.save({"state_dict": sat_vae()}, src / "pretrained_models" / "videokl_ch16_long_20w.pt")
    if with_t5:
        t5_folder(src / "pretrained_models" / "t5-v1_1-xxl_new")
    return src


def convert(src: Path, out: Path, *extra: str) -> int:
    return main(["convert", "sat-v1", str(src), str(out), *extra])


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = sat_transformer()
    return write_release(tmp_path_factory.mktemp("release"), state), state


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "anisora-v1"
    assert convert(release[0], out) == 0
    return out


@pytest.fixture(scope="module")
def pipe(converted):
    return load_pipeline(converted, layout="v1")


def bf16(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.bfloat16).float()


def test_loads_as_a_v1_pipeline_with_the_grid_of_the_learned_embedding(converted, pipe):
    assert pipe.layout == "v1" and pipe.config.fps == 16 and pipe.config.motion_embedding is False
    config = pipe.transformer.config
    assert (config.sample_frames, config.sample_height, config.sample_width) == (9, 8, 12)
    assert config.use_learned_positional_embeddings and config.use_rotary_positional_embeddings
    assert (config.num_layers, config.num_attention_heads, config.in_channels) == (2, 2, 32)
    assert pipe.vae.config.scaling_factor == 0.7 and pipe.vae.config.latent_channels == LATENT
    scheduler = pipe.scheduler.config
    assert type(pipe.scheduler).__name__ == "CogVideoXDPMScheduler"
    assert scheduler.prediction_type == "v_prediction" and scheduler.rescale_betas_zero_snr
    index = json.loads((converted / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_anisora", "AnisoraPipeline"]
    assert (converted / "pipeline_anisora.py").is_file()  # plain diffusers loads it with trust_remote_code


def test_the_card_names_the_release_and_leaves_the_license_upstream(converted):
    card = (converted / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: diffusers\n") and "license: other" in card
    assert "AniSora V1 (CogVideoX-5B" in card and "bilibili/Index-anisora" in card


def test_weights_are_bf16_on_disk(converted):
    for part in ("transformer", "vae"):
        files = list((converted / part).glob("*.safetensors"))
        assert files
        for file in files:
            with safe_open(file, "pt") as f:
                assert {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 - safe_open is no dict == {"BF16"}


def test_fused_qkv_is_split_into_q_k_v(release, pipe):
    attention = pipe.transformer.transformer_blocks[1].attn1
    fused = release[1][f"{PREFIX}transformer.layers.1.attention.query_key_value.weight"]
    for i, part in enumerate((attention.to_q, attention.to_k, attention.to_v)):
        assert part.bias.tolist() == list(range(i * TINY.hidden, (i + 1) * TINY.hidden))
        torch.testing.assert_close(part.weight.data, bf16(fused[i * TINY.hidden : (i + 1) * TINY.hidden]))


def test_adaln_chunks_land_in_diffusers_order(pipe):
    block = pipe.transformer.transformer_blocks[0]
    for norm, names in ((block.norm1, NORM1), (block.norm2, NORM2)):
        chunks = norm.linear.bias.data.view(6, TINY.hidden)
        expected = [SAT_CHUNKS.index(name) + 1.0 for name in names]
        assert chunks[:, 0].tolist() == expected and bool((chunks == chunks[:, :1]).all())


def test_learned_position_embedding_is_kept(release, pipe):
    planted = release[1][f"{PREFIX}mixins.pos_embed.pos_embedding"]
    torch.testing.assert_close(pipe.transformer.patch_embed.pos_embedding, bf16(planted), rtol=0, atol=0)


def test_sampling_at_the_grid_uses_the_learned_embedding(pipe):
    """diffusers swaps in a sine-cosine embedding when the size or frame count differs from the config's."""
    panel = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)

    def sample() -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        size = dict(num_frames=9, height=64, width=96, num_inference_steps=1, guidance_scale=1.0)
        return pipe([Guide(panel, 0)], **size, generator=generator, output_type="latent").frames

    embedding = pipe.transformer.patch_embed.pos_embedding
    kept = embedding.clone()
    before = sample()
    embedding.add_(torch.randn(embedding.shape, generator=torch.Generator().manual_seed(1)))
    try:
        assert (sample() - before).abs().max() > 1e-3  # about 1e-2; unchanged, the runs agree to 1e-8
    finally:
        embedding.copy_(kept)


def test_vae_levels_are_reversed_for_the_decoder(pipe):
    planted = sat_vae()["decoder.up.0.block.0.conv1.conv.bias"]  # level 0: the highest resolution
    decoded_last = pipe.vae.decoder.up_blocks[-1].resnets[0].conv1.conv.bias
    torch.testing.assert_close(decoded_last.data, bf16(planted), rtol=0, atol=0)


def test_generates_through_the_cli(converted, tmp_path):
    image = tmp_path / "panel.png"
    Image.fromarray((np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)).save(image)
    out = tmp_path / "clip.mp4"
    args = ["--model", str(converted), "--image", str(image), "--frames", "9", "--size", "96x64"]
    assert main(["generate", *args, "--steps", "2", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_the_release_layout_maps_onto_cogvideox_5b_i2v():
    """Shapes only (meta tensors): the full-size release converts to exactly diffusers' model's weights."""
    from diffusers import CogVideoXTransformer3DModel

    state = {k: torch.empty(s, device="meta") for k, s in sat_transformer_shapes(RELEASE).items()}
    state[f"{PREFIX}mixins.pos_embed.freqs_cos"] = rotary_tables(*RELEASE.grid, head_dim=RELEASE.head_dim)[1]
    config = transformer_config(state, Path("ckpt"))
    assert (config["sample_frames"], config["sample_height"], config["sample_width"]) == (49, 90, 160)
    assert (config["num_attention_heads"], config["num_layers"], config["in_channels"]) == (48, 42, 32)
    converted = {
        name: tuple(tensor.shape)
        for sat_name, weight in transformer_weights(state, config, Path("ckpt")).items()
        for name, tensor in diffusers_tensors(sat_name, weight)
    }
    with torch.device("meta"):
        model = CogVideoXTransformer3DModel(**config)
    assert converted == {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_the_release_grid_from_its_rotary_table_or_its_row_count():
    _, cos = rotary_tables(13, 45, 80, head_dim=64)
    rows = TEXT_ROWS + cos.shape[0]  # 226 + 13 x 45 x 80 = 47,026
    state = {f"{PREFIX}mixins.pos_embed.freqs_cos": cos}
    assert patch_grid(state, rows, 64, Path("ckpt")) == (13, 45, 80)
    assert patch_grid({}, rows, 64, Path("ckpt")) == (13, 45, 80)
    with pytest.raises(InputError, match=r"47027 rows; without mixins\.pos_embed\.freqs_cos expected 226 \+"):
        patch_grid({}, rows + 1, 64, Path("ckpt"))


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("unknown", f"unknown key {PREFIX}mixins.lora.weight"),
        ("missing", f"missing key {PREFIX}transformer.layers.1.attention.dense.bias (expected shape (32,))"),
        ("misshaped", f"key {PREFIX}transformer.layers.0.mlp.dense_4h_to_h.weight has shape (32, 64),"
         " expected (32, 128)"),
    ],
)  # fmt: skip
def test_bad_checkpoint_keys_are_one_error_line(tmp_path, capsys, change, message):
    state = sat_transformer()
    if change == "unknown":
        state[f"{PREFIX}mixins.lora.weight"] = torch.zeros(2)
    elif change == "missing":
        del state[f"{PREFIX}transformer.layers.1.attention.dense.bias"]
    else:
        state[f"{PREFIX}transformer.layers.0.mlp.dense_4h_to_h.weight"] = torch.zeros(32, 64)
    src = write_release(tmp_path / "release", state, with_t5=False)
    t5_folder(tmp_path / "t5")
    capsys.readouterr()
    assert convert(src, tmp_path / "out", "--t5", str(tmp_path / "t5")) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_missing_parts_and_existing_output(release, converted, tmp_path, capsys):
    src = tmp_path / "release"
    src.mkdir()
    capsys.readouterr()
    assert convert(src, tmp_path / "out") == 2
    assert "no latest found" in error_line(capsys)
    (src / "latest").write_text("7\n")
    assert convert(src, tmp_path / "out") == 2
    assert "7/mp_rank_00_model_states.pt: missing" in error_line(capsys)
    (src / "7").mkdir()
    (src / "7" / "mp_rank_00_model_states.pt").write_bytes(b"")
    assert convert(src, tmp_path / "out") == 2
    assert "no videokl_ch16_long_20w.pt found" in error_line(capsys)
    (src / "videokl_ch16_long_20w.pt").write_bytes(b"")
    assert convert(src, tmp_path / "out") == 2
    assert "no T5 folder found" in error_line(capsys)
    t5_folder(src / "t5")
    weights = src / "t5" / "model.safetensors"
    weights.rename(tmp_path / "t5-weights")
    capsys.readouterr()
    assert convert(src, tmp_path / "out") == 2
    assert "no T5 weights" in error_line(capsys)
    (tmp_path / "t5-weights").rename(weights)
    assert convert(src, tmp_path / "out") == 2
    assert "mp_rank_00_model_states.pt: cannot read the checkpoint" in error_line(capsys)
    assert not (tmp_path / "out").exists()

    assert convert(release[0], converted) == 2
    assert "exists; pass --overwrite" in error_line(capsys)
    assert convert(release[0], converted, "--overwrite") == 0
