"""Convert an official AniSora Wan release into a diffusers `WanImageToVideoPipeline` directory, streamed.

Two layouts:
- Wan2.1 I2V (AniSora V2, V3, V3.1, anymask): SRC holds Wan's `config.json` and `diffusion_pytorch_model*
  .safetensors` (sharded, with an index), with `Wan2.1_VAE.pth` beside them; a release without the VAE file
  (a DiT meant to drop into a Wan checkout) takes `vae/` from `--base` instead.
- Wan2.2 I2V A14B (AniSora V3.2): `high_noise_model/` and `low_noise_model/`, each such a folder; they become
  diffusers' `transformer/` and `transformer_2/` with `boundary_ratio` 0.9, and there is no CLIP branch.

Every key is renamed with the mappings diffusers ships (`convert_wan_transformer_to_diffusers`,
`convert_wan_vae_to_diffusers`), applied one key at a time: both are pure per-key renames. Names and shapes
are checked against the diffusers model built on the meta device before anything is written; tensors are then
read one at a time and written through `ShardWriter`, so memory stays near one shard.

Beside the DiT a pipeline needs the umT5 text encoder and tokenizer, (Wan2.1) the CLIP image encoder and
processor, and the VAE. Each comes from Wan's official file (`models_t5_umt5-xxl-enc-bf16.pth` with
`google/umt5-xxl/`, `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`, `Wan2.1_VAE.pth`), converted
(`wan_encoders`), found in SRC first and else in `--base` when that is an official Wan checkout; a part
neither holds is linked from `--base` as a diffusers Wan I2V folder. A release laid on top of a Wan checkout
needs no `--base` at all.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from anisora.errors import InputError
from anisora.files import atomic_directory
from anisora.model.hub import write_converted_card

from .shards import DEFAULT_MAX_SHARD_BYTES, ShardWriter
from .wan_encoders import (
    CLIP_FILE,
    T5_FILE,
    clip_conversion,
    clip_image_processor,
    read_state_dict,
    t5_conversion,
    t5_tokenizer,
)

VAE_FILE = "Wan2.1_VAE.pth"
WEIGHTS = "diffusion_pytorch_model"
EXPERTS = {"transformer": "high_noise_model", "transformer_2": "low_noise_model"}  # diffusers <- Wan2.2
BOUNDARY_RATIO = 0.9  # Wan2.2: the high-noise expert runs while t >= 0.9 x 1000
# The parts beside the DiT: the official file each is converted from, else the diffusers components linked.
PARTS = {
    "text": (T5_FILE, ("text_encoder", "tokenizer")),
    "image": (CLIP_FILE, ("image_encoder", "image_processor")),  # Wan2.1 only
    "vae": (VAE_FILE, ("vae",)),
}
REQUIRED_CONFIG = ("dim", "num_heads", "num_layers", "ffn_dim", "in_dim", "out_dim")
CLIP_DIM = 1280  # Wan2.1's image branch takes CLIP ViT-H/14 tokens of this width
TEXT_DIM = 4096  # umT5-XXL; not in Wan's config.json (an ignored config argument there)
FLOW_SHIFT = 5.0
_BLOCK = re.compile(r"(?<=^blocks\.)\d+")  # the block number of a transformer key, in both namings
# Each release's official sampling settings, recorded in model_index.json under "anisora_presets" for
# `anisora.model.info.ModelInfo` and the Wan pipeline to read back.
V3_PRESETS = {
    "fps": 16,
    "num_frames": 81,
    "height": 720,
    "width": 1280,
    "steps": 8,  # distilled: 8 steps at guidance 1
    "guidance": 1.0,
    "prompt_suffix": " There is no text in the video.",  # V3's script appends it to every prompt
}
RELEASE_PRESETS = {
    "v3": V3_PRESETS,  # V3, V3.1, V3.2
    "anymask": V3_PRESETS | {"num_frames": 65},  # its scripts work in 4 s windows of 16 x 4 + 1 frames
    # V2's README: 960x544, 49 frames, Wan's 40 steps and CFG 5; its prompts end with this sentence
    "v2": {"fps": 16, "num_frames": 49, "height": 544, "width": 960, "steps": 40, "guidance": 5.0,
           "prompt_suffix": " The video has no subtitles."},
}  # fmt: skip


def convert_wan(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    base: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    release: str = "v3",
) -> Path:
    """Write the diffusers directory `out` from the AniSora Wan release `src` (`release` names its sampling
    presets, one of RELEASE_PRESETS); return `out`.

    Everything is checked (layout, configs, every key name and shape, the `base` components) before the
    first byte is written, and `out` appears only when complete.
    """
    src, out = Path(src), Path(out)
    if release not in RELEASE_PRESETS:
        raise InputError(f"release must be one of {', '.join(RELEASE_PRESETS)}, got {release!r}")
    if not src.is_dir():
        raise InputError(f"{src}: no such folder")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    _refuse_overlap(out, src, base)
    experts = _find_experts(src)
    configs = {name: _read_wan_config(folder) for name, folder in experts.items()}
    image_branch = len(experts) == 1  # Wan2.1 I2V has the CLIP branch, Wan2.2 I2V has none
    parts = [part for part in PARTS if image_branch or part != "image"]
    homes = {part: _official_home(PARTS[part][0], src, base) for part in parts}
    unconverted = [part for part in parts if homes[part] is None]
    linked = tuple(name for part in unconverted for name in PARTS[part][1])
    base_index = _check_base(base, linked, [PARTS[part][0] for part in unconverted]) if linked else {}
    transformers = {
        name: _transformer_conversion(folder, _transformer_config(configs[name], image_branch))
        for name, folder in experts.items()
    }
    official = {"text": _official_text, "image": _official_image, "vae": _official_vae}
    converted: dict[str, tuple[list[str], Callable[[Path], None]]] = {}
    for part, home in homes.items():
        if home is not None:
            converted |= official[part](home, max_shard_bytes)
    text_len = configs["transformer"].get("text_len", 512)

    with atomic_directory(out) as tmp:
        for name, conversion in transformers.items():
            conversion.write(tmp / name, torch.bfloat16, max_shard_bytes)
        for name, (_, write) in converted.items():
            write(tmp / name)
        _write_scheduler(tmp / "scheduler")
        for name in linked:
            (tmp / name).symlink_to(Path(base, name).resolve(), target_is_directory=True)
        classes = {name: base_index[name] for name in linked} | {
            name: c for name, (c, _) in converted.items()
        }
        presets = RELEASE_PRESETS[release] | {"max_sequence_length": text_len}
        _write_model_index(tmp, classes, two_experts=not image_branch, presets=presets)
        backbone = "Wan2.1 I2V 14B" if image_branch else "Wan2.2 I2V A14B, two experts"
        write_converted_card(
            tmp,
            f"AniSora {release} ({backbone})",
            src,
            f"anisora convert wan --release {release}",
            f"Sampling presets: {json.dumps(presets)}.",
        )
    return out


def _refuse_overlap(out: Path, *inputs: Path | None) -> None:
    """Replacing `out` must not delete an input: refuse an `out` that is or holds one."""
    for given in inputs:
        if given is not None and out.resolve() in (Path(given).resolve(), *Path(given).resolve().parents):
            raise InputError(f"{out} would replace {given}, an input; write the conversion elsewhere")


def _find_experts(src: Path) -> dict[str, Path]:
    """{diffusers transformer folder name: Wan checkpoint folder} for the layout found in `src`."""
    if any((src / folder).exists() for folder in EXPERTS.values()):
        for folder in EXPERTS.values():
            if not (src / folder).is_dir():
                raise InputError(f"{src}: a Wan2.2 release needs both experts; {folder}/ is missing")
        return {name: src / folder for name, folder in EXPERTS.items()}
    if (src / "config.json").is_file():
        return {"transformer": src}
    raise InputError(
        f"{src}: not an AniSora Wan release: expected config.json + {WEIGHTS}*.safetensors (Wan2.1) "
        f"or {'/ and '.join(EXPERTS.values())}/ (Wan2.2)"
    )


def _official_home(file: str, src: Path, base: Path | None) -> Path | None:
    """The folder whose official `file` is converted: SRC, else `base`; None when neither holds it."""
    for folder in (src, base):
        if folder is not None and (Path(folder) / file).is_file():
            return Path(folder)
    return None


def _check_base(base: Path | None, names: tuple[str, ...], files: list[str]) -> dict:
    """The model_index.json of the diffusers folder `base`, once it holds every component in `names` (the
    parts whose official `files` neither SRC nor `base` has)."""
    if base is None:
        raise InputError(
            f"--base is required: SRC has no {', '.join(files)}; name an official Wan checkout that has "
            f"them, or a diffusers Wan I2V folder to link {', '.join(names)} from"
        )
    base = Path(base)
    if not (base / "model_index.json").is_file():
        raise InputError(
            f"--base {base}: neither an official Wan checkout with {', '.join(files)} "
            f"nor a diffusers folder (no model_index.json)"
        )
    index = _read_json(base / "model_index.json")
    for name in names:
        if not (base / name).is_dir() or not isinstance(index.get(name), list) or None in index[name]:
            raise InputError(f"--base {base}: has no {name}/ component (needed: {', '.join(names)})")
    return index


def _read_wan_config(folder: Path) -> dict:
    """Wan's `config.json` in `folder`, once it names an I2V model with every size diffusers needs."""
    path = folder / "config.json"
    wan = _read_json(path)
    missing = [key for key in REQUIRED_CONFIG if key not in wan]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}")
    if wan.get("model_type") != "i2v":
        raise InputError(f"{path}: model_type is {wan.get('model_type')!r}; AniSora releases are 'i2v'")
    dim, heads = wan["dim"], wan["num_heads"]
    if dim % heads:
        raise InputError(f"{path}: dim {dim} is not a multiple of num_heads {heads}")
    return wan


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


def _transformer_config(wan: dict, image_branch: bool) -> dict:
    """diffusers' `WanTransformer3DModel` arguments from Wan's config."""
    dim, heads = wan["dim"], wan["num_heads"]
    return {
        "patch_size": [1, 2, 2],
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": wan["in_dim"],
        "out_channels": wan["out_dim"],
        "text_dim": TEXT_DIM,
        "freq_dim": wan.get("freq_dim", 256),
        "ffn_dim": wan["ffn_dim"],
        "num_layers": wan["num_layers"],
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": wan.get("eps", 1e-6),
        "image_dim": CLIP_DIM if image_branch else None,
        "added_kv_proj_dim": dim if image_branch else None,
    }


@dataclass
class _Conversion:
    """One diffusers model to write: the model on the meta device (its config) and, per source key, the
    diffusers key; `tensors` yields the source's (key, tensor) pairs one at a time."""

    model: torch.nn.Module
    renames: dict[str, str]
    tensors: Callable[[], Iterator[tuple[str, torch.Tensor]]]

    def write(self, folder: Path, dtype: torch.dtype, max_shard_bytes: int) -> None:
        self.model.save_config(folder)
        with ShardWriter(folder, prefix=WEIGHTS, max_shard_bytes=max_shard_bytes, dtype=dtype) as writer:
            for key, tensor in self.tensors():
                writer.add(self.renames[key], tensor)


def _transformer_conversion(folder: Path, config: dict) -> _Conversion:
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    with torch.device("meta"):
        model = WanTransformer3DModel(**config)
    files = _safetensors_files(folder)
    shapes = ((file, key, shape) for file in files for key, shape in _safetensors_shapes(file))
    renames = _match(shapes, _renamer(convert_wan_transformer_to_diffusers), model, f"{folder}/{WEIGHTS}*")
    return _Conversion(model, renames, lambda: _safetensors_tensors(files))


def _official_text(folder: Path, max_shard_bytes: int) -> dict[str, tuple[list[str], Callable[[Path], None]]]:
    """{component: (model_index entry, writer)} for Wan's umT5 file and tokenizer in `folder`."""
    conversion = t5_conversion(folder / T5_FILE)
    if conversion.config.d_model != TEXT_DIM:
        raise InputError(
            f"{folder / T5_FILE}: umT5 width {conversion.config.d_model}; the Wan DiT takes {TEXT_DIM}"
        )
    tokenizer = t5_tokenizer(folder, conversion.config.vocab_size)
    return {
        "text_encoder": (
            ["transformers", "UMT5EncoderModel"],
            partial(conversion.write, max_shard_bytes=max_shard_bytes),
        ),
        "tokenizer": (["transformers", type(tokenizer).__name__], tokenizer.save_pretrained),
    }


def _official_image(
    folder: Path, max_shard_bytes: int
) -> dict[str, tuple[list[str], Callable[[Path], None]]]:
    """{component: (model_index entry, writer)} for the vision tower of Wan's CLIP file in `folder`."""
    conversion = clip_conversion(folder / CLIP_FILE)
    if conversion.config.hidden_size != CLIP_DIM:
        raise InputError(
            f"{folder / CLIP_FILE}: CLIP width {conversion.config.hidden_size}; the Wan DiT takes {CLIP_DIM}"
        )
    processor = clip_image_processor(conversion.config.image_size)
    return {
        "image_encoder": (
            ["transformers", "CLIPVisionModel"],
            partial(conversion.write, max_shard_bytes=max_shard_bytes),
        ),
        # transformers 5 loads this name as CLIPImageProcessorPil where torchvision is missing
        "image_processor": (["transformers", "CLIPImageProcessor"], processor.save_pretrained),
    }


def _official_vae(folder: Path, max_shard_bytes: int) -> dict[str, tuple[list[str], Callable[[Path], None]]]:
    conversion = _vae_conversion(folder / VAE_FILE)
    # It stays float32 (254 MB), as Wan and diffusers run it.
    write = partial(conversion.write, dtype=torch.float32, max_shard_bytes=max_shard_bytes)
    return {"vae": (["diffusers", "AutoencoderKLWan"], write)}


def _vae_conversion(path: Path) -> _Conversion:
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    state = read_state_dict(path)
    # The width and latent channels are read from the checkpoint; the rest of the VAE is fixed by Wan.
    for key in ("encoder.conv1.weight", "conv2.weight"):
        if key not in state:
            raise InputError(f"{path}: missing key {key!r}")
    with torch.device("meta"):
        model = AutoencoderKLWan(
            base_dim=state["encoder.conv1.weight"].shape[0], z_dim=state["conv2.weight"].shape[0]
        )
    shapes = ((path, key, tensor.shape) for key, tensor in state.items())
    renames = _match(shapes, _renamer(convert_wan_vae_to_diffusers), model, str(path))
    return _Conversion(model, renames, lambda: iter(state.items()))


def _renamer(convert: Callable[[dict], dict]) -> Callable[[str], str | None]:
    """A per-key form of diffusers' whole-dict converter (None when the key does not map to exactly one)."""

    def rename(key: str) -> str | None:
        converted = convert({key: torch.empty(0)})
        return next(iter(converted)) if len(converted) == 1 else None

    return rename


def _match(shapes, rename: Callable[[str], str | None], model: torch.nn.Module, where: str) -> dict[str, str]:
    """{source key: diffusers key} once every source key maps onto a distinct weight of `model` with its shape
    and every weight of `model` is covered; else one InputError naming the first offending key."""
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    renames: dict[str, str] = {}
    taken: dict[str, str] = {}
    for file, key, shape in shapes:
        new = rename(key)
        if new not in expected:
            raise InputError(f"{file}: unknown key {key!r} (no {type(model).__name__} weight of that name)")
        if new in taken:
            raise InputError(f"{file}: key {key!r} repeats {taken[new]!r} (both are {new!r})")
        if tuple(shape) != expected[new]:
            raise InputError(f"{file}: key {key!r} has shape {list(shape)}, expected {list(expected[new])}")
        renames[key], taken[new] = new, key
    missing = [key for key in expected if key not in taken]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        first = missing[0]
        raise InputError(
            f"{where}: missing key {_source_name(first, renames)} (shape {list(expected[first])}){more}"
        )
    return renames


def _source_name(missing: str, renames: dict[str, str]) -> str:
    """The source name of the missing diffusers key, guessed from the same weight of another block
    (`blocks.3.x` from `blocks.0.x`); else the diffusers name, said to be one."""
    number = _BLOCK.search(missing)
    if number:
        for key, new in renames.items():
            if _BLOCK.search(key) and _BLOCK.sub("#", new) == _BLOCK.sub("#", missing):
                return repr(_BLOCK.sub(number.group(), key))
    return f"{missing!r} (diffusers name)"


def _safetensors_files(folder: Path) -> list[Path]:
    """The shard files of a Wan checkpoint folder, from its index when there is one."""
    index = folder / f"{WEIGHTS}.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise InputError(f"{index}: not a safetensors index (no weight_map)")
        files = [folder / name for name in dict.fromkeys(weight_map.values())]
        for file in files:
            if not file.is_file():
                raise InputError(f"{index}: lists {file.name}, which is missing")
        return files
    files = sorted(folder.glob(f"{WEIGHTS}*.safetensors"))
    if not files:
        raise InputError(f"{folder}: no {WEIGHTS}*.safetensors")
    return files


def _safetensors_shapes(file: Path) -> Iterator[tuple[str, list[int]]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(file, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                yield key, f.get_slice(key).get_shape()
    except SafetensorError as err:
        raise InputError(f"{file}: not a readable safetensors file ({err})") from None


def _safetensors_tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    from safetensors import safe_open

    for file in files:
        with safe_open(file, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                yield key, f.get_tensor(key)


def _write_scheduler(folder: Path) -> None:
    from diffusers import UniPCMultistepScheduler

    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=FLOW_SHIFT,
        num_train_timesteps=1000,
    )
    scheduler.save_config(folder)


def _write_model_index(folder: Path, classes: dict[str, list], two_experts: bool, presets: dict) -> None:
    from diffusers import __version__

    index = {
        "_class_name": "WanImageToVideoPipeline",
        "_diffusers_version": __version__,
        "image_encoder": [None, None],
        "image_processor": [None, None],
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "transformer_2": ["diffusers", "WanTransformer3DModel"] if two_experts else [None, None],
        "vae": ["diffusers", "AutoencoderKLWan"],
        "boundary_ratio": BOUNDARY_RATIO if two_experts else None,
        "expand_timesteps": False,
        "anisora_presets": presets,
    }
    index.update(classes)  # text_encoder, tokenizer, image_encoder, image_processor, vae
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
