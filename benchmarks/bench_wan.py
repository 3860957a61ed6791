"""Wan backbone benchmarks (AniSora V3.1 / V3.2), measured in one run on the CPU (plus the GPU where one is
present):

1. Wall time of `AnisoraWanPipeline` vs diffusers' `WanImageToVideoPipeline` on the very same tiny random
   components (the same module objects), Wan2.1 (V3.1's layout, CLIP branch) and Wan2.2 (V3.2's two
   experts): the same first-frame request, UniPC steps, seed, size and frame count, decoded to pixels, at
   guidance 5 (two transformer calls a step) and 1 (one, as the V3.x releases sample); goal ratio of bests
   <= 1.05. Runs alternate and the best and median of each are kept, because this machine is shared.
2. Peak memory of each pipeline on that request at guidance 5, each in a fresh child process (best of 3):
   peak RSS during the call above the resident size before it.
3. Memory needs of the real models, computed from the configs on the meta device: parameters of V3.1's
   transformer, V3.2's two experts, umT5-XXL, CLIP ViT-H/14 and the Wan VAE in bf16 and fp8, the activations
   of one transformer forward at 81 frames 480p and 720p, and from them the GPU memory each memory mode needs.
4. Per-image VAE encoding of guides (official V1) against whole-video encoding (V3: a zero video holding
   the guides, encoded as one video), on the tiny Wan VAE: the relative L2 distance of the condition latent
   at each guide's latent frame.

Where CUDA is available, `gpu_wan.py` then times the real-size transformer step and VAE on the GPU.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # its CLIP processor notice, in every process

import multiprocessing as mp
import statistics
import time

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanTransformer3DModel
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

from anisora.model.backbones.wan import AnisoraWanPipeline
from anisora.model.conditioning import Guide, condition_video, latent_index
from anisora.model.presets import build_wan_components
from bench_generate import rss_mib
from gpu_wan import FRAMES, SIZES, latent_shape, transformer_config, video_tokens
from gpu_wan import run as run_gpu

HEIGHT, WIDTH, TINY_FRAMES, STEPS, SEED, REPEATS = 160, 192, 17, 8, 0, 5  # ~1 s a call on this CPU
GUIDANCES = (5.0, 1.0)
BACKBONES = {"Wan2.1": False, "Wan2.2": True}  # name -> two experts
PROMPT = "a cat jumps over a fence"
MIB, GIB = 2**20, 2**30

UMT5_XXL = dict(
    d_model=4096, d_ff=10240, num_layers=24, num_heads=64, d_kv=64, vocab_size=256384,
    feed_forward_proj="gated-gelu",
)  # fmt: skip
CLIP_VIT_H14 = dict(
    hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120, patch_size=14,
    image_size=224,
)  # fmt: skip


def make_pipelines(experts: bool) -> tuple[AnisoraWanPipeline, WanImageToVideoPipeline]:
    components = build_wan_components(experts=experts, seed=0)
    ours = AnisoraWanPipeline(**components)
    theirs = WanImageToVideoPipeline(**components)
    for pipe in (ours, theirs):
        pipe.set_progress_bar_config(disable=True)
    return ours, theirs


def first_frame() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def run_ours(pipe: AnisoraWanPipeline, image: np.ndarray, guidance: float) -> np.ndarray:
    out = pipe(
        [Guide(image, 0, 1.0)],
        prompt=PROMPT,
        num_frames=TINY_FRAMES,
        height=HEIGHT,
        width=WIDTH,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(SEED),
        output_type="np",
    )
    return out.frames


def run_theirs(pipe: WanImageToVideoPipeline, image: np.ndarray, guidance: float) -> np.ndarray:
    out = pipe(
        image=Image.fromarray(image),
        prompt=PROMPT,
        num_frames=TINY_FRAMES,
        height=HEIGHT,
        width=WIDTH,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(SEED),
        output_type="np",
    )
    return out.frames[0]


def wall_time() -> None:
    image = first_frame()
    print(
        f"1. wall time, tiny random components, {WIDTH}x{HEIGHT} x {TINY_FRAMES} frames, UniPC {STEPS} steps,"
    )
    print(f"   decoded to pixels, {REPEATS} alternating runs; goal: ratio of bests ours / diffusers <= 1.05:")
    print("   backbone  guidance   ours best / median   diffusers best / median   ratio")
    for backbone, experts in BACKBONES.items():
        ours, theirs = make_pipelines(experts)
        for guidance in GUIDANCES:
            runs = {"ours": (run_ours, ours), "diffusers": (run_theirs, theirs)}
            frames = {name: fn(pipe, image, guidance) for name, (fn, pipe) in runs.items()}  # warm-up
            difference = np.abs(frames["ours"] / 255 - frames["diffusers"]).max()
            assert difference <= 1 / 255, f"{backbone} at guidance {guidance}: outputs differ by {difference}"
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(REPEATS):
                for name, (fn, pipe) in runs.items():
                    start = time.perf_counter()
                    fn(pipe, image, guidance)
                    times[name].append(time.perf_counter() - start)
            cells = [f"{min(ts):.3f} / {statistics.median(ts):.3f} s" for ts in times.values()]
            ratio = min(times["ours"]) / min(times["diffusers"])
            print(f"   {backbone:9s} {guidance:8g}   {cells[0]:18s}   {cells[1]:23s}   {ratio:.3f}")


def _memory_child(which: str, experts: bool, queue) -> None:
    torch.set_num_threads(1)
    ours, theirs = make_pipelines(experts)
    fn, pipe = (run_ours, ours) if which == "ours" else (run_theirs, theirs)
    image = first_frame()
    resident, _ = rss_mib()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS to the current RSS, so the next peak is the call's
    fn(pipe, image, GUIDANCES[0])
    queue.put((resident, rss_mib()[1]))


def peak_memory(repeats: int = 3) -> None:
    ctx = mp.get_context("spawn")
    print(
        f"2. peak RSS of the call above the resident size before it, guidance {GUIDANCES[0]:g}, each pipeline"
    )
    print(f"   in a fresh process, best of {repeats} (measured):")
    for backbone, experts in BACKBONES.items():
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "diffusers": []}
        for _ in range(repeats):  # the call's RSS peak varies between processes: keep the lowest
            for which, runs in results.items():
                queue = ctx.Queue()
                child = ctx.Process(target=_memory_child, args=(which, experts, queue))
                child.start()
                runs.append(queue.get())
                child.join()
        for which, runs in results.items():
            resident, call_peak = min(runs, key=lambda r: r[1] - r[0])
            spread = ", ".join(f"{peak - res:.0f}" for res, peak in runs)
            print(
                f"   {backbone} {which:9s} resident {resident:.0f} MiB, call peak {call_peak:.0f} MiB"
                f" (+{call_peak - resident:.0f} MiB; runs {spread})"
            )


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def activation_bytes(height: int, width: int) -> tuple[int, int, int]:
    """(tokens, hidden-state bytes, rough peak bytes) of one transformer forward, batch 1, on an 81-frame
    clip. Classifier-free guidance runs its unconditional pass as a second call, so it adds nothing.

    Peak ~ 6 hidden-size buffers + 2 FFN buffers, each bf16: the residual stream (kept in fp32 around the
    norms), its normalised copy, q, k, v and the attention output; the FFN's up-projection and its GELU, which
    coexist. Counting live tensors through a narrow Wan model (4 heads) gave 11.7 hidden-size buffers, i.e.
    6.3 + 2 FFN buffers of 2.7 each."""
    config = transformer_config()
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    tokens = video_tokens(height, width, FRAMES)
    hidden = tokens * dim * 2
    return tokens, hidden, 6 * hidden + 2 * tokens * config["ffn_dim"] * 2


def real_size() -> None:
    # torch.device("meta"), not accelerate.init_empty_weights: that unties umT5's input embeddings from
    # `shared` and counts the 1.05 B-parameter table twice.
    with torch.device("meta"):
        v31 = WanTransformer3DModel(**transformer_config())
        expert = WanTransformer3DModel(**transformer_config(image_branch=False))
        params = {
            "V3.1 transformer (Wan2.1-I2V-14B)": _params(v31),
            "V3.2 experts (Wan2.2-I2V-A14B), 2 x": 2 * _params(expert),
            "umT5-XXL encoder": _params(UMT5EncoderModel(UMT5Config(**UMT5_XXL))),
            "CLIP ViT-H/14 vision": _params(CLIPVisionModel(CLIPVisionConfig(**CLIP_VIT_H14))),
            "Wan VAE": _params(AutoencoderKLWan()),
        }
    print("3. real sizes, from the configs on the meta device (computed, not measured):")
    print(f"   {'part':38s} {'params':>9s} {'bf16 GiB':>9s} {'fp8 GiB':>8s}")
    for name, n in params.items():
        print(f"   {name:38s} {n / 1e9:7.3f} B {2 * n / GIB:9.2f} {n / GIB:8.2f}")

    print(f"   one transformer forward, {FRAMES} frames, batch 1 (activations, rough; see activation_bytes):")
    activations = {}
    for size, (height, width) in SIZES.items():
        tokens, hidden, peak = activation_bytes(height, width)
        activations[size] = peak
        t, h, w = latent_shape(height, width)
        print(
            f"   {size} {width}x{height}: latent {t}x{h}x{w}, {tokens} tokens,"
            f" hidden states {hidden / MIB:.0f} MiB, peak ~ {peak / GIB:.1f} GiB"
        )

    bf16 = {name: 2 * n for name, n in params.items()}
    encoders = {
        "V3.1": [bf16["umT5-XXL encoder"], bf16["CLIP ViT-H/14 vision"], bf16["Wan VAE"]],
        "V3.2": [bf16["umT5-XXL encoder"], bf16["Wan VAE"]],
    }
    transformers = {"V3.1": [v31], "V3.2": [expert, expert]}
    print("   GPU memory needed, GiB: bf16 weights unless said + the activations above (the tiled VAE")
    print("   decode is a later phase, measured on the GPU); V3.2 runs one expert at a time:")
    columns = [(release, size) for release in transformers for size in SIZES]
    print(f"   {'mode':40s}" + "".join(f"{r} {s}".rjust(11) for r, s in columns))
    needs = {
        column: memory_modes(transformers[column[0]], encoders[column[0]], activations[column[1]])
        for column in columns
    }
    for mode in needs[columns[0]]:
        print(f"   {mode:40s}" + "".join(f"{needs[column][mode] / GIB:11.1f}" for column in columns))


def memory_modes(transformers: list[torch.nn.Module], others: list[int], activations: int) -> dict[str, int]:
    """Bytes on the GPU per memory mode, from the transformers (one resident at a time when offloaded), the
    other components' bf16 bytes and one transformer forward's activation bytes."""
    one, block = _params(transformers[0]), _params(transformers[0].blocks[0])
    return {
        "all on GPU": 2 * sum(_params(t) for t in transformers) + sum(others) + activations,
        "model offload (one component at a time)": max(2 * one + activations, *others),
        # fp8 storage, 1 byte a parameter; each block is upcast to bf16 as it runs
        "fp8 layerwise storage + model offload": max(one + 2 * block + activations, *others),
        "sequential offload (one block at a time)": 2 * block + activations,
    }


def guide_encoding() -> None:
    """Whole-video vs per-image encoding of guides at frames 0, 8 and 16, with `AnisoraWanPipeline`'s own
    condition video and encoder."""
    pipe, _ = make_pipelines(experts=False)
    rng = np.random.default_rng(SEED)
    frames = (0, 8, 16)
    guides = []
    for frame in frames:  # smooth random images: bicubic-upsampled 8x10 noise
        noise = Image.fromarray(rng.integers(0, 256, (8, 10, 3), np.uint8))
        guides.append(Guide(np.asarray(noise.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)), frame))
    video, _ = condition_video(TINY_FRAMES, HEIGHT, WIDTH, guides)
    with torch.no_grad():
        whole = pipe._encode(video, "cpu", torch.float32)[0]
        zero = pipe._encode(np.zeros_like(video), "cpu", torch.float32)[0]
        alone = [pipe._encode(video[g.frame : g.frame + 1], "cpu", torch.float32)[0, :, 0] for g in guides]
    print(f"4. guide encoding on the tiny random Wan VAE, guides at frames {frames} of {TINY_FRAMES}:")
    print("   relative L2 distance |a - b| / |b| of the normalised latent at each guide's latent frame, with")
    print("   b = the whole zero-video-with-guides encoding and a = the guide encoded alone (1-frame video);")
    print("   for scale, a = the zero video's encoding: the guide's own effect, small because the random")
    print("   VAE's latents are mostly a constant offset")
    for guide, own in zip(guides, alone, strict=True):
        index = latent_index(guide.frame)
        target = whole[:, index]
        alone_distance = (own - target).norm() / target.norm()
        guide_effect = (zero[:, index] - target).norm() / target.norm()
        print(
            f"   frame {guide.frame:2d} -> latent frame {index}: encoded alone {alone_distance:.3f},"
            f" zero video {guide_effect:.3f}"
        )


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    wall_time()
    peak_memory()
    real_size()
    guide_encoding()
    if torch.cuda.is_available():
        run_gpu()
    else:
        print("GPU part skipped: CUDA is not available (run benchmarks/gpu_wan.py on a GPU machine)")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
