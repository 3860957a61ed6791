"""`anisora convert sat-v1`: AniSora V1 (CogVideoX-5B, SAT format) -> a diffusers CogVideoX I2V directory.

The release holds the transformer as a SAT checkpoint (a `latest` file naming the iteration, then
`<iter>/mp_rank_00_model_states.pt`), the VAE as `videokl_ch16_long_20w.pt` and T5 v1.1 XXL as a transformers
folder. The output opens with `load_pipeline` in the "v1" layout (noise + guide latents, 32 input channels).
Checkpoints are read memory-mapped and streamed in bf16 into safetensors shards, so memory stays near one
shard, not the model. The video grid (`sample_frames/height/width`) is the one the learned position embedding
was trained for: read from the checkpoint's rotary table, else the release's 720p grid (see `patch_grid`).

Key names and shapes follow the official module definitions: SAT's BaseTransformer layers and the mixins of
`dit_video_concat.py` (patch embedding, 3D rotary + learned position embedding, AdaLN with q/k norms, final
layer), and the VAE of `vae_modules/cp_enc_dec.py`. Every key is checked before anything is written.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import InputError
from ...files import atomic_directory
from ..hub import write_converted_card

PREFIX = "model.diffusion_model."
# Parts of a SAT diffusion engine other than the transformer (frozen T5, VAE): converted from their own files.
FOREIGN_PREFIXES = ("conditioner.", "first_stage_model.")
ROTARY_TABLES = ("mixins.pos_embed.freqs_sin", "mixins.pos_embed.freqs_cos")  # recomputed by diffusers
POS_EMBEDDING = "mixins.pos_embed.pos_embedding"
TEXT_LENGTH = 226  # T5 tokens; the learned position embedding's first rows
TEMPORAL_COMPRESSION = 4
RELEASE_PATCH_GRID = (45, 80)  # the 720p config's (latent 90 x 160) grid, used when no rotary table says
VAE_FILE = "videokl_ch16_long_20w.pt"
VAE_SCALING_FACTOR = 0.7
FPS = 16  # the release samples 49 frames at 16 fps
TOKENIZER_FILES = (
    "spiece.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.json",
)
T5_MODEL_PATTERNS = ("config.json", "*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json")


@dataclass(frozen=True)
class Release:
    checkpoint: Path
    vae: Path
    t5: Path


def convert_sat_v1(
    src: str | Path, out: str | Path, *, t5: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Write the diffusers directory `out` from the release in `src`; returns `out`."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    release = find_release(Path(src), None if t5 is None else Path(t5))
    state = _load(release.checkpoint, "module")
    vae_state = _load(release.vae, "state_dict")
    transformer = _meta_model(CogVideoXTransformer3DModel, transformer_config(state, release.checkpoint))
    vae = _meta_model(AutoencoderKLCogVideoX, vae_config(vae_state, release.vae))
    weights = transformer_weights(state, transformer.config, release.checkpoint)
    vae_weights = diffusers_vae_weights(vae_state, vae, release.vae)
    with atomic_directory(out) as tmp:
        converted = (pair for name, tensor in weights.items() for pair in diffusers_tensors(name, tensor))
        _write_model(tmp / "transformer", transformer, converted)
        _write_model(tmp / "vae", vae, vae_weights.items())
        _copy_t5(release.t5, tmp)
        _write_scheduler(tmp / "scheduler")
        _write_model_index(tmp)
        write_converted_card(
            tmp,
            "AniSora V1 (CogVideoX-5B image-to-video)",
            Path(src),
            "anisora convert sat-v1",
            "Samples with DPM++2M, 50 steps, CFG 6 with the official dynamic CFG, 49 frames at 16 fps.",
        )
    return out


# --- finding the release's parts ---


def find_release(src: Path, t5: Path | None) -> Release:
    if not src.is_dir():
        raise InputError(f"{src}: not a folder (expected the AniSora V1 release)")
    latest = _find_one(src, "latest", "the SAT checkpoint's `latest` file")
    iteration = latest.read_text(encoding="utf-8").strip()
    checkpoint = latest.parent / iteration / "mp_rank_00_model_states.pt"
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: missing (named by {latest})")
    vae = _find_one(src, VAE_FILE, "the VAE")
    t5 = _t5_folder(src if t5 is None else t5, given=t5 is not None)
    _t5_model_files(t5)  # checked before the long conversion, not after it
    return Release(checkpoint, vae, t5)


def _find_one(src: Path, name: str, what: str) -> Path:
    found = sorted(p for p in src.rglob(name) if p.is_file())
    if not found:
        raise InputError(f"{src}: no {name} found ({what})")
    return found[0]


def _t5_folder(root: Path, given: bool) -> Path:
    """The T5 folder: `root` itself when given by --t5, else the first folder under it holding a T5 config."""
    candidates = [root] if given else sorted(p.parent for p in root.rglob("config.json"))
    for folder in candidates:
        if _is_t5(folder):
            return folder
    what = "a T5 folder (config.json of model_type t5 + spiece.model)"
    raise InputError(
        f"{root} is not {what}" if given else f"{root}: no T5 folder found ({what}); pass --t5 DIR"
    )


def _is_t5(folder: Path) -> bool:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (
        isinstance(config, dict) and config.get("model_type") == "t5" and (folder / "spiece.model").is_file()
    )


def _load(path: Path, entry: str) -> dict[str, torch.Tensor]:
    try:
        saved = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as error:
        raise InputError(f"{path}: cannot read the checkpoint ({error})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get(entry), dict):
        raise InputError(f"{path}: expected a dict with a {entry!r} entry (a state dict)")
    return saved[entry]


# --- checking keys ---


def check_keys(path: Path, found: dict[str, tuple], expected: dict[str, tuple]) -> None:
    """One InputError for the first unknown, missing or mis-shaped key, naming it and the expected shape."""
    problems = [f"unknown key {k}" for k in found if k not in expected]
    problems += [f"missing key {k} (expected shape {expected[k]})" for k in expected if k not in found]
    problems += [
        f"key {k} has shape {found[k]}, expected {expected[k]}"
        for k in expected
        if k in found and found[k] != expected[k]
    ]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(f"{path}: {problems[0]}{more}")


def _shape(state: dict[str, torch.Tensor], key: str, path: Path, ndim: int) -> tuple[int, ...]:
    """The shape of a key the architecture is read from."""
    if key not in state:
        raise InputError(f"{path}: missing key {key} (the architecture is read from it)")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise InputError(f"{path}: key {key} has shape {shape}, expected {ndim} dimensions")
    return shape


# --- transformer ---


def transformer_config(state: dict[str, torch.Tensor], path: Path) -> dict:
    """The diffusers `CogVideoXTransformer3DModel` config, read from the checkpoint's shapes."""
    hidden, in_channels, patch, _ = _shape(state, f"{PREFIX}mixins.patch_embed.proj.weight", path, 4)
    _, text_dim = _shape(state, f"{PREFIX}mixins.patch_embed.text_proj.weight", path, 2)
    time_dim, _ = _shape(state, f"{PREFIX}time_embed.0.weight", path, 2)
    (head_dim,) = _shape(state, f"{PREFIX}mixins.adaln_layer.query_layernorm_list.0.weight", path, 1)
    out_rows, _ = _shape(state, f"{PREFIX}mixins.final_layer.linear.weight", path, 2)
    _, rows, _ = _shape(state, f"{PREFIX}{POS_EMBEDDING}", path, 3)
    layers = _count(state, rf"{re.escape(PREFIX)}transformer\.layers\.(\d+)\.")
    frames, height, width = patch_grid(state, rows, head_dim, path)
    return dict(
        num_attention_heads=hidden // head_dim,
        attention_head_dim=head_dim,
        in_channels=in_channels,
        out_channels=out_rows // patch**2,
        time_embed_dim=time_dim,
        text_embed_dim=text_dim,
        num_layers=layers,
        sample_frames=(frames - 1) * TEMPORAL_COMPRESSION + 1,
        sample_height=height * patch,
        sample_width=width * patch,
        patch_size=patch,
        max_text_seq_length=TEXT_LENGTH,
        norm_eps=1e-6,  # SAT's layer norms
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    )


def patch_grid(state: dict[str, torch.Tensor], rows: int, head_dim: int, path: Path) -> tuple[int, int, int]:
    """(latent frames, patch rows, patch columns) that the learned position embedding's rows cover.

    The rotary table, flattened over (frame, row, column), says the grid exactly: the first frequency of each
    axis is 1, so its column changes exactly when that axis' position does. Without it, the release's 720p
    grid is assumed and the frame count follows from the row count."""
    video = rows - TEXT_LENGTH
    table = state.get(PREFIX + ROTARY_TABLES[1])
    if table is None:
        height, width = RELEASE_PATCH_GRID
        if video <= 0 or video % (height * width):
            raise InputError(
                f"{path}: {POS_EMBEDDING} has {rows} rows; without {ROTARY_TABLES[1]} expected"
                f" {TEXT_LENGTH} + frames x {height} x {width}"
            )
        return video // (height * width), height, width
    if tuple(table.shape) != (video, head_dim):
        raise InputError(
            f"{path}: key {PREFIX}{ROTARY_TABLES[1]} has shape {tuple(table.shape)},"
            f" expected {(video, head_dim)} ({POS_EMBEDDING} rows less {TEXT_LENGTH} text rows)"
        )
    frame_axis, row_axis = table[:, 0].float(), table[:, head_dim // 4].float()
    plane = _run_length(frame_axis)
    width = min(_run_length(row_axis), plane)
    return video // plane, plane // width, width


def _run_length(column: torch.Tensor) -> int:
    """How many leading entries equal the first."""
    changed = torch.nonzero(column != column[0])
    return int(changed[0, 0]) if len(changed) else len(column)


def sat_transformer_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Every key of the official SAT transformer (without the prefix) and its shape, for `config`."""
    hidden = config["num_attention_heads"] * config["attention_head_dim"]
    time_dim, patch = config["time_embed_dim"], config["patch_size"]
    rows = TEXT_LENGTH + _video_rows(config)
    shapes: dict[str, tuple[int, ...]] = {}

    def linear(name: str, out_features: int, in_features: int) -> None:
        shapes.update({f"{name}.weight": (out_features, in_features), f"{name}.bias": (out_features,)})

    def norm(name: str, size: int) -> None:
        shapes.update({f"{name}.weight": (size,), f"{name}.bias": (size,)})

    for i in range(config["num_layers"]):
        layer = f"transformer.layers.{i}"
        norm(f"{layer}.input_layernorm", hidden)
        linear(f"{layer}.attention.query_key_value", 3 * hidden, hidden)
        linear(f"{layer}.attention.dense", hidden, hidden)
        norm(f"{layer}.post_attention_layernorm", hidden)
        linear(f"{layer}.mlp.dense_h_to_4h", 4 * hidden, hidden)
        linear(f"{layer}.mlp.dense_4h_to_h", hidden, 4 * hidden)
        linear(f"mixins.adaln_layer.adaLN_modulations.{i}.1", 12 * hidden, time_dim)
        norm(f"mixins.adaln_layer.query_layernorm_list.{i}", config["attention_head_dim"])
        norm(f"mixins.adaln_layer.key_layernorm_list.{i}", config["attention_head_dim"])
    norm("transformer.final_layernorm", hidden)
    shapes["mixins.patch_embed.proj.weight"] = (hidden, config["in_channels"], patch, patch)
    shapes["mixins.patch_embed.proj.bias"] = (hidden,)
    linear("mixins.patch_embed.text_proj", hidden, config["text_embed_dim"])
    shapes[POS_EMBEDDING] = (1, rows, hidden)
    norm("mixins.final_layer.norm_final", hidden)
    linear("mixins.final_layer.linear", patch * patch * config["out_channels"], hidden)
    linear("mixins.final_layer.adaLN_modulation.1", 2 * hidden, time_dim)
    linear("time_embed.0", time_dim, hidden)
    linear("time_embed.2", time_dim, time_dim)
    return shapes


def _video_rows(config: dict) -> int:
    frames = (config["sample_frames"] - 1) // TEMPORAL_COMPRESSION + 1
    patch = config["patch_size"]
    return frames * (config["sample_height"] // patch) * (config["sample_width"] // patch)


# SAT module -> diffusers module, for weights that move unchanged.
_MODULES = {
    "transformer.final_layernorm": "norm_final",
    "mixins.patch_embed.proj": "patch_embed.proj",
    "mixins.patch_embed.text_proj": "patch_embed.text_proj",
    "mixins.final_layer.norm_final": "norm_out.norm",
    "mixins.final_layer.linear": "proj_out",
    "mixins.final_layer.adaLN_modulation.1": "norm_out.linear",
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
}
_LAYER_MODULES = {
    "input_layernorm": "norm1.norm",
    "attention.dense": "attn1.to_out.0",
    "post_attention_layernorm": "norm2.norm",
    "mlp.dense_h_to_4h": "ff.net.0.proj",
    "mlp.dense_4h_to_h": "ff.net.2",
}
_LAYER = re.compile(r"transformer\.layers\.(\d+)\.(.+)")
_ADALN = re.compile(r"mixins\.adaln_layer\.adaLN_modulations\.(\d+)\.1")
_QK_NORM = re.compile(r"mixins\.adaln_layer\.(query|key)_layernorm_list\.(\d+)")
# SAT's 12 AdaLN chunks: shift, scale, gate for attention, then for the MLP, on video; the same six on text.
# diffusers' norm1 takes the attention ones (video, then text), norm2 the MLP ones, each shift, scale, gate.
_NORM1_CHUNKS, _NORM2_CHUNKS = (0, 1, 2, 6, 7, 8), (3, 4, 5, 9, 10, 11)


def diffusers_tensors(name: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The diffusers weights of one checked SAT transformer weight (`name` without the prefix)."""
    if name == POS_EMBEDDING:
        return [("patch_embed.pos_embedding", tensor)]
    module, param = name.rsplit(".", 1)
    if module in _MODULES:
        return [(f"{_MODULES[module]}.{param}", tensor)]
    if match := _ADALN.fullmatch(module):
        chunks = tensor.chunk(12)
        block = f"transformer_blocks.{match[1]}"
        return [
            (f"{block}.norm1.linear.{param}", torch.cat([chunks[i] for i in _NORM1_CHUNKS])),
            (f"{block}.norm2.linear.{param}", torch.cat([chunks[i] for i in _NORM2_CHUNKS])),
        ]
    if match := _QK_NORM.fullmatch(module):
        return [(f"transformer_blocks.{match[2]}.attn1.norm_{match[1][0]}.{param}", tensor)]
    match = _LAYER.fullmatch(module)
    block = f"transformer_blocks.{match[1]}"
    if match[2] == "attention.query_key_value":
        q, k, v = tensor.chunk(3)
        return [(f"{block}.attn1.to_{n}.{param}", t) for n, t in zip("qkv", (q, k, v), strict=True)]
    return [(f"{block}.{_LAYER_MODULES[match[2]]}.{param}", tensor)]


def transformer_weights(state: dict[str, torch.Tensor], config, path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's transformer weights by SAT name (without the prefix), once every key is checked."""
    others = [k for k in state if not k.startswith(PREFIX) and not k.startswith(FOREIGN_PREFIXES)]
    if others:
        raise InputError(f"{path}: unknown key {others[0]} (outside {PREFIX})")
    weights = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    for name in ROTARY_TABLES:
        weights.pop(name, None)
    expected = {PREFIX + k: shape for k, shape in sat_transformer_shapes(config).items()}
    check_keys(path, {PREFIX + k: tuple(v.shape) for k, v in weights.items()}, expected)
    return weights


# --- VAE ---


def vae_config(state: dict[str, torch.Tensor], path: Path) -> dict:
    """The diffusers `AutoencoderKLCogVideoX` config, read from the SAT VAE's shapes."""
    levels = _count(state, r"encoder\.down\.(\d+)\.")
    blocks = _count(state, r"encoder\.down\.0\.block\.(\d+)\.")
    if not levels or not blocks:
        raise InputError(f"{path}: no encoder.down.N.block.M keys (not a SAT CogVideoX VAE)")
    channels = [
        _shape(state, f"encoder.down.{i}.block.0.conv1.conv.weight", path, 5)[0] for i in range(levels)
    ]
    latent = _shape(state, "encoder.conv_out.conv.weight", path, 5)[0] // 2
    return dict(
        block_out_channels=channels,
        down_block_types=["CogVideoXDownBlock3D"] * levels,
        up_block_types=["CogVideoXUpBlock3D"] * levels,
        latent_channels=latent,
        layers_per_block=blocks,
        norm_num_groups=32,  # SAT's Normalize
        temporal_compression_ratio=TEMPORAL_COMPRESSION,
        scaling_factor=VAE_SCALING_FACTOR,
    )


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    indices = {int(m[1]) for k in state if (m := re.match(pattern, k))}
    return max(indices) + 1 if indices else 0


_VAE_RENAMES = (
    (re.compile(r"^(encoder|decoder)\.mid\.block_1\."), r"\1.mid_block.resnets.0."),
    (re.compile(r"^(encoder|decoder)\.mid\.block_2\."), r"\1.mid_block.resnets.1."),
    (re.compile(r"^encoder\.down\."), "encoder.down_blocks."),
    (re.compile(r"\.block\.(\d+)\."), r".resnets.\1."),
    (re.compile(r"\.downsample\."), ".downsamplers.0."),
    (re.compile(r"\.upsample\."), ".upsamplers.0."),
    (re.compile(r"\.nin_shortcut\."), ".conv_shortcut."),
)
_UP = re.compile(r"^decoder\.up\.(\d+)\.")


def diffusers_vae_name(name: str, levels: int) -> str:
    """SAT's decoder lists its levels from the highest resolution; diffusers' in decoding order."""
    name = _UP.sub(lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.", name)
    for pattern, replacement in _VAE_RENAMES:
        name = pattern.sub(replacement, name)
    return name


def diffusers_vae_weights(state: dict[str, torch.Tensor], vae, path: Path) -> dict[str, torch.Tensor]:
    """The VAE weights by diffusers name, once every key is checked against the diffusers model `vae`."""
    weights = {k: v for k, v in state.items() if not k.startswith("loss.")}  # the training loss' own nets
    sat_names = {diffusers_vae_name(k, len(vae.config.block_out_channels)): k for k in weights}
    expected = {
        sat_names.get(k, f"<the one for diffusers' {k}>"): tuple(v.shape) for k, v in vae.state_dict().items()
    }
    check_keys(path, {k: tuple(v.shape) for k, v in weights.items()}, expected)
    return {name: weights[sat_name] for name, sat_name in sat_names.items()}


# --- writing ---


def _meta_model(model_class, config: dict):
    """The diffusers model for `config` without memory: its config and state-dict shapes."""
    with torch.device("meta"):
        return model_class(**config)


def _write_model(folder: Path, model, tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """A diffusers model folder: the config of `model` (on the meta device), bf16 safetensors shards."""
    from .shards import DEFAULT_MAX_SHARD_BYTES, ShardWriter

    shards = dict(
        prefix="diffusion_pytorch_model", max_shard_bytes=DEFAULT_MAX_SHARD_BYTES, dtype=torch.bfloat16
    )
    with ShardWriter(folder, **shards) as writer:
        for name, tensor in tensors:
            writer.add(name, tensor)
    model.save_config(folder)


def _t5_model_files(t5: Path) -> list[Path]:
    files = sorted({p for pattern in T5_MODEL_PATTERNS for p in t5.glob(pattern) if p.is_file()})
    if not any(p.name != "config.json" and "index" not in p.name for p in files):
        raise InputError(f"{t5}: no T5 weights (*.safetensors or *.bin)")
    return files


def _copy_t5(t5: Path, out: Path) -> None:
    """The T5 folder's tokenizer files to tokenizer/, its model files to text_encoder/."""
    tokenizer, text_encoder = out / "tokenizer", out / "text_encoder"
    tokenizer.mkdir()
    text_encoder.mkdir()
    for name in TOKENIZER_FILES:
        if (t5 / name).is_file():
            shutil.copy2(t5 / name, tokenizer / name)
    for path in _t5_model_files(t5):
        shutil.copy2(path, text_encoder / path.name)


def _write_scheduler(folder: Path) -> None:
    from diffusers import CogVideoXDPMScheduler

    from ..presets import SCHEDULER

    CogVideoXDPMScheduler(**SCHEDULER, snr_shift_scale=1.0).save_pretrained(folder)  # DPM++2M, as V1 samples


def _write_model_index(out: Path) -> None:
    """model_index.json and pipeline.py as `AnisoraPipeline.save_pretrained` writes them."""
    import diffusers

    from ..hub import class_entry, write_pipeline_file
    from ..pipeline import AnisoraPipeline

    write_pipeline_file(out, AnisoraPipeline)
    index = {
        "_class_name": class_entry(AnisoraPipeline),
        "_diffusers_version": diffusers.__version__,
        "fps": FPS,
        "motion_embedding": False,
        "scheduler": ["diffusers", "CogVideoXDPMScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "text_encoder_name": None,
        "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLCogVideoX"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
