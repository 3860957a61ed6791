"""`anisora convert wan` on tiny random checkpoints written in the official Wan layout.

The fixtures are built from key and shape lists read off Wan's own module definitions (`WanModel`, the Wan
VAE), never from diffusers' `state_dict()`, so the tests are not circular: a conversion that loads strictly
into diffusers proves the naming, and planted values prove the tricky moves.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from anisora.cli import main
from anisora.model.convert.wan import convert_wan

TINY = {"dim": 32, "num_heads": 2, "num_layers": 2, "ffn_dim": 64}
WAN21 = (
    "text_encoder",
    "tokenizer",
    "image_encoder",
    "image_processor",
)  # what a Wan2.1 release takes from base


# ----- the official layouts -------------------------------------------------------------------------------


def wan_transformer_shapes(dim, num_heads, num_layers, ffn_dim, in_dim=36, out_dim=16, image_branch=True):
    """Wan's `WanModel` (model_type i2v) parameters: patch (1, 2, 2), text 4096, freq 256, CLIP 1280."""
    shapes = {"patch_embedding.weight": (dim, in_dim, 1, 2, 2), "patch_embedding.bias": (dim,)}
    shapes.update(_linear("text_embedding.0", 4096, dim) | _linear("text_embedding.2", dim, dim))
    shapes.update(_linear("time_embedding.0", 256, dim) | _linear("time_embedding.2", dim, dim))
    shapes.update(_linear("time_projection.1", dim, 6 * dim))
    for n in range(num_layers):
        block = f"blocks.{n}"
        for attn in ("self_attn", "cross_attn"):
            image = image_branch and attn == "cross_attn"  # the CLIP tokens' own keys and values
            for proj in ("q", "k", "v", "o", *(("k_img", "v_img") if image else ())):
                shapes.update(_linear(f"{block}.{attn}.{proj}", dim, dim))
            for norm in ("norm_q", "norm_k", *(("norm_k_img",) if image else ())):
                shapes[f"{block}.{attn}.{norm}.weight"] = (dim,)
        shapes.update({f"{block}.norm3.weight": (dim,), f"{block}.norm3.bias": (dim,)})  # the cross-attn norm
        shapes.update(_linear(f"{block}.ffn.0", dim, ffn_dim) | _linear(f"{block}.ffn.2", ffn_dim, dim))
        shapes[f"{block}.modulation"] = (1, 6, dim)
    shapes.update(_linear("head.head", dim, out_dim * 4))
    shapes["head.modulation"] = (1, 2, dim)
    if image_branch:
        shapes.update({"img_emb.proj.0.weight": (1280,), "img_emb.proj.0.bias": (1280,)})
        shapes.update(_linear("img_emb.proj.1", 1280, 1280) | _linear("img_emb.proj.3", 1280, dim))
        shapes.update({"img_emb.proj.4.weight": (dim,), "img_emb.proj.4.bias": (dim,)})
    return shapes


def wan_vae_shapes(base=8, z=16):
    """Wan's `WanVAE_` parameters (dim_mult 1, 2, 4, 4; 2 residual blocks; temporal down: no, yes, yes)."""
    shapes = {}
    dims = [base * m for m in (1, 1, 2, 4, 4)]
    shapes.update(_conv("encoder.conv1", 3, dims[0], (3, 3, 3)))
    index = 0
    for level, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        for _ in range(2):
            shapes.update(_residual(f"encoder.downsamples.{index}", d_in, d_out))
            index, d_in = index + 1, d_out
        if level < 3:
            shapes.update(_resample(f"encoder.downsamples.{index}", d_out, down=True, temporal=level > 0))
            index += 1
    shapes.update(_middle("encoder.middle", dims[-1]))
    shapes.update(_head("encoder.head", dims[-1], 2 * z))
    shapes.update(_conv("conv1", 2 * z, 2 * z, (1, 1, 1)) | _conv("conv2", z, z, (1, 1, 1)))

    dims = [base * m for m in (4, 4, 4, 2, 1)]
    shapes.update(_conv("decoder.conv1", z, dims[0], (3, 3, 3)))
    shapes.update(_middle("decoder.middle", dims[0]))
    index = 0
    for level, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        d_in = d_in // 2 if level > 0 else d_in  # the upsampler before halved the channels
        for _ in range(3):
            shapes.update(_residual(f"decoder.upsamples.{index}", d_in, d_out))
            index, d_in = index + 1, d_out
        if level < 3:
            shapes.update(_resample(f"decoder.upsamples.{index}", d_out, down=False, temporal=level < 2))
            index += 1
    shapes.update(_head("decoder.head", dims[-1], 3))
    return shapes


def _linear(name, d_in, d_out):
    return {f"{name}.weight": (d_out, d_in), f"{name}.bias": (d_out,)}


def _conv(name, d_in, d_out, kernel):
    return {f"{name}.weight": (d_out, d_in, *kernel), f"{name}.bias": (d_out,)}


def _residual(name, d_in, d_out):
    shapes = {f"{name}.residual.0.gamma": (d_in, 1, 1, 1), f"{name}.residual.3.gamma": (d_out, 1, 1, 1)}
    shapes.update(_conv(f"{name}.residual.2", d_in, d_out, (3, 3, 3)))
    shapes.update(_conv(f"{name}.residual.6", d_out, d_out, (3, 3, 3)))
    if d_in != d_out:
        shapes.update(_conv(f"{name}.shortcut", d_in, d_out, (1, 1, 1)))
    return shapes


def _resample(name, dim, down, temporal):
    shapes = _conv(f"{name}.resample.1", dim, dim if down else dim // 2, (3, 3))
    if temporal:
        shapes.update(_conv(f"{name}.time_conv", dim, dim if down else 2 * dim, (3, 1, 1)))
    return shapes


def _middle(name, dim):
    shapes = _residual(f"{name}.0", dim, dim) | _residual(f"{name}.2", dim, dim)
    shapes[f"{name}.1.norm.gamma"] = (dim, 1, 1)
    shapes.update(_conv(f"{name}.1.to_qkv", dim, 3 * dim, (1, 1)) | _conv(f"{name}.1.proj", dim, dim, (1, 1)))
    return shapes


def _head(name, dim, d_out):
    return {f"{name}.0.gamma": (dim, 1, 1, 1)} | _conv(f"{name}.2", dim, d_out, (3, 3, 3))


def random_tensors(shapes, seed):
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}


def write_wan_checkpoint(folder, tensors, shards, **sizes):
    """Wan's checkpoint folder: config.json (with these sizes), `shards` safetensors files and their index."""
    folder.mkdir(parents=True, exist_ok=True)
    wan_config = {"_class_name": "WanModel", "model_type": "i2v", "in_dim": 36, "out_dim": 16, "eps": 1e-6}
    (folder / "config.json").write_text(json.dumps(wan_config | sizes | {"freq_dim": 256, "text_len": 512}))
    keys = list(tensors)
    weight_map = {}
    for k in range(shards):
        name = f"diffusion_pytorch_model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[k::shards]
        save_file({key: tensors[key] for key in part}, folder / name)
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))


def write_base(folder, names=WAN21):
    """A stand-in diffusers Wan I2V folder: its model_index.json and the component folders."""
    classes = {
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "image_encoder": ["transformers", "CLIPVisionModel"],
        "image_processor": ["transformers", "CLIPImageProcessor"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    for name in names:
        (folder / name).mkdir(parents=True)
    index = {"_class_name": "WanImageToVideoPipeline"} | {name: classes[name] for name in names}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.fixture
def wan21(tmp_path):
    """A Wan2.1 I2V release folder (4 shards + Wan2.1_VAE.pth) and a base folder; its tensors by name."""
    release = tmp_path / "anisoraV3"
    tensors = random_tensors(wan_transformer_shapes(**TINY), seed=0)
    write_wan_checkpoint(release, tensors, shards=4, **TINY)
    vae = random_tensors(wan_vae_shapes(), seed=1)
    torch.save(vae, release / "Wan2.1_VAE.pth")
    return release, write_base(tmp_path / "base"), tensors, vae


def convert(src, out, base, *extra):
    return main(["convert", "wan", str(src), str(out), "--base", str(base), *extra])


def stored(folder):
    """The tensors of a diffusers weights folder, as stored (dtype included)."""
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, framework="pt") as f:
            tensors.update({key: f.get_tensor(key) for key in f.keys()})  # noqa: SIM118 (not a dict)
    return tensors


# ----- Wan2.1 (V2, V3, V3.1, anymask) ---------------------------------------------------------------------


def test_wan21_release_converts_to_a_diffusers_directory(wan21, tmp_path, capsys):
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from diffusers.loaders.single_file_utils import (
        convert_wan_transformer_to_diffusers,
        convert_wan_vae_to_diffusers,
    )

    release, base, tensors, vae = wan21
    out = tmp_path / "out"
    assert convert(release, out, base) == 0
    assert str(out) in capsys.readouterr().out

    # Every tensor in bf16 under exactly the names and values diffusers' own whole-dict converter gives.
    written = stored(out / "transformer")
    expected = convert_wan_transformer_to_diffusers(dict(tensors))
    assert written.keys() == expected.keys()
    assert all(t.dtype == torch.bfloat16 for t in written.values())
    assert all(torch.equal(written[k], expected[k].bfloat16()) for k in expected)

    model = WanTransformer3DModel.from_pretrained(out / "transformer")
    assert model.config.image_dim == 1280 and model.config.added_kv_proj_dim == 32
    assert model.config.num_attention_heads == 2 and model.config.attention_head_dim == 16
    assert model.config.in_channels == 36 and model.config.num_layers == 2

    def same(param, key):
        return torch.equal(param.detach().float(), tensors[key].bfloat16().float())

    assert same(model.blocks[1].scale_shift_table, "blocks.1.modulation")
    assert same(model.scale_shift_table, "head.modulation")
    assert same(model.blocks[0].attn2.add_k_proj.weight, "blocks.0.cross_attn.k_img.weight")
    assert same(model.blocks[1].attn2.norm_added_k.weight, "blocks.1.cross_attn.norm_k_img.weight")
    # Wan's norm3 is the affine cross-attention norm: diffusers' norm2; diffusers' norm3 has no weights.
    assert same(model.blocks[0].norm2.weight, "blocks.0.norm3.weight")
    assert model.blocks[0].norm3.weight is None
    assert same(model.condition_embedder.image_embedder.ff.net[2].weight, "img_emb.proj.3.weight")

    # The VAE keeps float32 and loads strictly.
    vae_written = stored(out / "vae")
    vae_expected = convert_wan_vae_to_diffusers(dict(vae))
    assert vae_written.keys() == vae_expected.keys()
    assert all(torch.equal(vae_written[k], vae_expected[k]) for k in vae_expected)
    autoencoder = AutoencoderKLWan.from_pretrained(out / "vae")
    assert autoencoder.config.base_dim == 8 and autoencoder.config.z_dim == 16
    shortcut = autoencoder.decoder.up_blocks[1].resnets[0].conv_shortcut.weight
    assert torch.equal(shortcut.detach(), vae["decoder.upsamples.4.shortcut.weight"])

    scheduler = UniPCMultistepScheduler.from_pretrained(out / "scheduler")
    assert scheduler.config.use_flow_sigmas and scheduler.config.flow_shift == 5.0
    assert scheduler.config.prediction_type == "flow_prediction"

    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "WanImageToVideoPipeline"
    assert index["image_encoder"] == ["transformers", "CLIPVisionModel"]
    assert index["transformer_2"] == [None, None] and index["boundary_ratio"] is None
    presets = index["anisora_presets"]
    assert (presets["fps"], presets["num_frames"], presets["height"], presets["width"]) == (16, 81, 720, 1280)
    assert (presets["steps"], presets["guidance"]) == (8, 1.0)  # the shift is the scheduler's (above)
    assert presets["prompt_suffix"] == " There is no text in the video."
    for name in ("text_encoder", "tokenizer", "image_encoder", "image_processor"):
        assert (out / name).resolve() == (base / name).resolve()


@pytest.mark.parametrize(
    ("release", "expected"),
    [("v2", (16, 49, 544, 960, 40, 5.0, " The video has no subtitles.")),
     ("anymask", (16, 65, 720, 1280, 8, 1.0, " There is no text in the video."))],
)  # fmt: skip
def test_the_release_names_its_presets(wan21, tmp_path, release, expected):
    src, base, _, _ = wan21
    assert convert(src, tmp_path / "out", base, "--release", release) == 0
    presets = json.loads((tmp_path / "out" / "model_index.json").read_text())["anisora_presets"]
    names = ("fps", "num_frames", "height", "width", "steps", "guidance", "prompt_suffix")
    assert tuple(presets[name] for name in names) == expected
    card = (tmp_path / "out" / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "other" and front["license_link"].endswith("bilibili/Index-anisora")
    assert front["pipeline_tag"] == "image-to-video" and f"AniSora {release} (Wan2.1" in card


def test_per_key_renaming_matches_the_whole_dict_converters(wan21):
    from diffusers.loaders.single_file_utils import (
        convert_wan_transformer_to_diffusers,
        convert_wan_vae_to_diffusers,
    )

    from anisora.model.convert.wan import _renamer

    _, _, tensors, vae = wan21
    pairs = ((convert_wan_transformer_to_diffusers, tensors), (convert_wan_vae_to_diffusers, vae))
    for convert_dict, source in pairs:
        rename = _renamer(convert_dict)
        whole = convert_dict(dict(source))
        per_key = {rename(key): source[key] for key in source}
        assert per_key.keys() == whole.keys()
        assert all(per_key[k] is whole[k] for k in whole)


# ----- Wan2.2 (V3.2) ----------------------------------------------------------------------------------------


def test_wan22_experts_become_transformer_and_transformer_2(tmp_path):
    from diffusers import WanTransformer3DModel

    release = tmp_path / "anisoraV3.2"
    experts = {}
    for seed, folder in enumerate(("high_noise_model", "low_noise_model")):
        experts[folder] = random_tensors(wan_transformer_shapes(**TINY, image_branch=False), seed=seed)
        write_wan_checkpoint(release / folder, experts[folder], shards=2, **TINY)
    torch.save(random_tensors(wan_vae_shapes(), seed=5), release / "Wan2.1_VAE.pth")
    base = write_base(tmp_path / "base", names=("text_encoder", "tokenizer"))
    out = tmp_path / "out"
    convert_wan(release, out, base=base, max_shard_bytes=64 << 10)  # many output shards and an index

    for name, folder in (("transformer", "high_noise_model"), ("transformer_2", "low_noise_model")):
        model = WanTransformer3DModel.from_pretrained(out / name)
        assert model.config.image_dim is None and model.config.added_kv_proj_dim is None
        planted = experts[folder]["blocks.0.modulation"].bfloat16().float()
        assert torch.equal(model.blocks[0].scale_shift_table.detach().float(), planted)
        assert all(t.dtype == torch.bfloat16 for t in stored(out / name).values())
        assert len(list((out / name).glob("diffusion_pytorch_model-*-of-*.safetensors"))) > 2
    index = json.loads((out / "model_index.json").read_text())
    assert index["boundary_ratio"] == 0.9
    assert index["transformer_2"] == ["diffusers", "WanTransformer3DModel"]
    assert index["image_encoder"] == [None, None] and not (out / "image_encoder").exists()


# ----- errors ---------------------------------------------------------------------------------------------


def _add_unknown(tensors):
    tensors["blocks.0.cross_attn.extra.weight"] = torch.zeros(32, 32)


def _drop_k_img(tensors):
    del tensors["blocks.1.cross_attn.k_img.weight"]


def _misshape_ffn(tensors):
    tensors["blocks.1.ffn.0.weight"] = torch.zeros(65, 32)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_add_unknown, "unknown key 'blocks.0.cross_attn.extra.weight'"),
        (_drop_k_img, "missing key 'blocks.1.cross_attn.k_img.weight' (shape [32, 32])"),
        (_misshape_ffn, "key 'blocks.1.ffn.0.weight' has shape [65, 32], expected [64, 32]"),
    ],
)
def test_a_bad_key_is_one_error_line_naming_it(tmp_path, capsys, damage, message):
    release = tmp_path / "release"
    tensors = random_tensors(wan_transformer_shapes(**TINY), seed=0)
    damage(tensors)
    write_wan_checkpoint(release, tensors, shards=3, **TINY)
    torch.save(random_tensors(wan_vae_shapes(), seed=1), release / "Wan2.1_VAE.pth")
    out = tmp_path / "out"

    assert convert(release, out, write_base(tmp_path / "base")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("anisora: error: ")
    assert message in err
    assert not out.exists() and list(tmp_path.iterdir()) == [release, tmp_path / "base"]


def test_a_folder_that_is_no_release_says_what_is_expected(tmp_path, capsys):
    base = write_base(tmp_path / "base")
    release = tmp_path / "release"
    release.mkdir()
    assert convert(release, tmp_path / "out", base) == 2
    assert "not an AniSora Wan release: expected config.json" in capsys.readouterr().err

    write_wan_checkpoint(release / "high_noise_model", {}, shards=1, **TINY)
    assert convert(release, tmp_path / "out", base) == 2
    assert "needs both experts; low_noise_model/ is missing" in capsys.readouterr().err

    write_wan_checkpoint(release / "low_noise_model", {}, shards=1, **TINY)
    config = json.loads((release / "low_noise_model" / "config.json").read_text())
    (release / "low_noise_model" / "config.json").write_text(json.dumps(config | {"model_type": "t2v"}))
    assert convert(release, tmp_path / "out", base) == 2
    assert "model_type is 't2v'; AniSora releases are 'i2v'" in capsys.readouterr().err


def test_a_bad_vae_key_is_named(wan21, tmp_path, capsys):
    release, base, _, vae = wan21
    del vae["decoder.upsamples.4.shortcut.weight"]
    torch.save(vae, release / "Wan2.1_VAE.pth")

    assert convert(release, tmp_path / "out", base) == 2
    assert "missing key 'decoder.up_blocks.1.resnets.0.conv_shortcut.weight' (diffusers name)" in (
        capsys.readouterr().err
    )


def test_base_is_required_and_checked(wan21, tmp_path, capsys):
    release, _, _, _ = wan21
    assert main(["convert", "wan", str(release), str(tmp_path / "out")]) == 2
    assert "--base is required" in capsys.readouterr().err

    partial = write_base(tmp_path / "t2v", names=("text_encoder", "tokenizer"))
    assert convert(release, tmp_path / "out", partial) == 2
    assert "has no image_encoder/ component" in capsys.readouterr().err


def test_existing_out_is_refused_unless_overwrite(wan21, tmp_path, capsys):
    release, base, _, _ = wan21
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    assert convert(release, out, base) == 2
    assert "pass --overwrite" in capsys.readouterr().err and (out / "keep.txt").exists()
    assert convert(release, out, base, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and (out / "transformer" / "config.json").exists()
    assert convert(release, out, base, "--overwrite") == 0  # the old links go, not what they point to
    assert (base / "text_encoder").is_dir() and (out / "text_encoder").resolve() == (base / "text_encoder")


def test_an_input_is_never_replaced(wan21, tmp_path, capsys):
    release, base, _, _ = wan21
    assert convert(release, release, base, "--overwrite") == 2
    assert "would replace" in capsys.readouterr().err
    assert convert(release, tmp_path, base, "--overwrite") == 2  # a folder holding the release
    assert (release / "config.json").exists()


def test_a_dit_only_release_takes_the_vae_from_base(wan21, tmp_path, capsys):
    release, _, _, _ = wan21
    (release / "Wan2.1_VAE.pth").unlink()  # V3.1 and anymask ship the DiT for a Wan2.1 checkout
    without_vae = write_base(tmp_path / "no_vae")
    assert convert(release, tmp_path / "out", without_vae) == 2
    assert "has no vae/ component" in capsys.readouterr().err

    base = write_base(tmp_path / "with_vae", names=(*WAN21, "vae"))
    assert convert(release, tmp_path / "out", base) == 0
    assert (tmp_path / "out" / "vae").resolve() == (base / "vae").resolve()
    index = json.loads((tmp_path / "out" / "model_index.json").read_text())
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]


# ----- memory ---------------------------------------------------------------------------------------------

_PEAK_SCRIPT = """
import sys
from anisora.model.convert.wan import convert_wan

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

src, warm, base, out = sys.argv[1:5]
convert_wan(warm, out + "-warm", base=base, max_shard_bytes=8 << 20)  # imports and first-call caches
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # reset the peak (VmHWM) to the current RSS
before = rss("VmRSS:")
convert_wan(src, out, base=base, max_shard_bytes=8 << 20)
print(rss("VmHWM:") - before)
"""


def test_peak_memory_stays_near_one_shard(tmp_path):
    sizes = {"dim": 256, "num_heads": 2, "num_layers": 16, "ffn_dim": 2048}
    shapes = wan_transformer_shapes(**sizes)
    release = tmp_path / "big"
    write_wan_checkpoint(release, random_tensors(shapes, seed=0), shards=8, **sizes)
    torch.save(random_tensors(wan_vae_shapes(), seed=1), release / "Wan2.1_VAE.pth")
    warm = tmp_path / "warm"
    write_wan_checkpoint(warm, random_tensors(wan_transformer_shapes(**TINY), seed=2), shards=2, **TINY)
    torch.save(random_tensors(wan_vae_shapes(), seed=1), warm / "Wan2.1_VAE.pth")
    base = write_base(tmp_path / "base")
    model_bytes = sum(f.stat().st_size for f in release.glob("*.safetensors"))

    script = textwrap.dedent(_PEAK_SCRIPT)
    args = [sys.executable, "-c", script, str(release), str(warm), str(base), str(tmp_path / "out")]
    peak = int(subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()[-1])

    print(f"model {model_bytes / 2**20:.0f} MiB in 8 shards; peak RSS increase {peak / 2**20:.1f} MiB")
    assert model_bytes > 100 * 2**20
    # Streaming holds one mapped input shard (15 MiB), the writer's 8 MiB shard and its serialised copy,
    # and one tensor (6 MiB): about 40 MiB. Loading the model whole would hold all of it plus a bf16 copy.
    assert peak < model_bytes / 2


# ----- the pipeline -----------------------------------------------------------------------------------------


def write_tiny_base(folder):
    """A real diffusers Wan I2V base: tiny random umT5 (width 4096, as Wan's text_dim), CLIP vision (width
    1280, as Wan's image branch), the repository's character tokenizer and a CLIP image processor."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    from anisora.model.presets import char_tokenizer

    torch.manual_seed(0)
    text = UMT5Config(vocab_size=256, d_model=4096, d_kv=8, d_ff=16, num_layers=1, num_heads=2)
    vision = CLIPVisionConfig(
        hidden_size=1280, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=32
    )
    vision.patch_size = 16
    components = {
        "text_encoder": UMT5EncoderModel(text),
        "tokenizer": char_tokenizer(),
        "image_encoder": CLIPVisionModel(vision),
        "image_processor": CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32),
    }
    index = {"_class_name": "WanImageToVideoPipeline"}
    for name, component in components.items():
        component.save_pretrained(folder / name)
        index[name] = ["transformers", type(component).__name__]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def test_converted_folder_runs_in_diffusers_wan_pipeline(wan21, tmp_path):
    from diffusers import WanImageToVideoPipeline
    from PIL import Image

    release, _, _, _ = wan21
    out = tmp_path / "out"
    assert convert(release, out, write_tiny_base(tmp_path / "real_base")) == 0

    pipe = WanImageToVideoPipeline.from_pretrained(out)
    assert pipe.transformer_2 is None and pipe.image_encoder is not None
    image = Image.new("RGB", (32, 32), (200, 120, 40))
    video = pipe(
        image=image,
        prompt="a cat waves",
        height=32,
        width=32,
        num_frames=5,
        num_inference_steps=2,
        guidance_scale=1.0,
        max_sequence_length=16,
        output_type="np",
    ).frames
    assert video.shape == (1, 5, 32, 32, 3)
