"""Generation benchmarks, measured in one run on the CPU (plus the GPU where one is present):

1. Wall time of `AnisoraPipeline` vs diffusers' `CogVideoXImageToVideoPipeline` on the very same "tiny" v1
   components (the same module objects), DPM scheduler, steps, guidance 6, seed, size and frame count, asked
   for a first-frame video decoded by the VAE; goal ratio of bests <= 1.05. Runs alternate and the best and
   median of each are kept, because this machine is shared.
2. Peak memory of each pipeline on that request, each in a fresh child process (best of 3): peak RSS after
   imports and build, and the peak during the call above the resident size before it (plus
   `torch.cuda.max_memory_allocated` where CUDA is available).
3. Memory needs of the real 5B model, computed from the configs (built on the meta device): parameter memory
   of the transformer, VAE and T5-XXL in bf16 / fp32, and the activation sizes of one transformer forward at
   49 frames 480x720 with CFG. Where CUDA is available, that forward, the VAE decode and our whole pipeline
   (T5-XXL, transformer, VAE in bf16; all on the GPU, with VAE tiling, with model CPU offload) are measured.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import multiprocessing as mp
import statistics
import time

import numpy as np
import torch
from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline
from PIL import Image

from anisora.model.conditioning import Guide
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components, transformer_config

SIZE, FRAMES, STEPS, GUIDANCE, SEED, REPEATS = 128, 17, 10, 6.0, 0, 5  # ~1.2 s a call on this CPU
PROMPT = "a cat jumps over a fence"
MIB = 2**20


def make_pipelines() -> tuple[AnisoraPipeline, CogVideoXImageToVideoPipeline]:
    components = build_components("tiny", "v1", seed=0)
    components["scheduler"] = CogVideoXDPMScheduler.from_config(components["scheduler"].config)
    ours = AnisoraPipeline(**components)
    components.pop("motion_embedding")
    theirs = CogVideoXImageToVideoPipeline(**components)
    for pipe in (ours, theirs):
        pipe.set_progress_bar_config(disable=True)
    return ours, theirs


def first_frame() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def run_ours(pipe: AnisoraPipeline, image: np.ndarray) -> np.ndarray:
    out = pipe(
        [Guide(image, 0, 1.0)],
        prompt=PROMPT,
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        generator=torch.Generator().manual_seed(SEED),
    )
    return out.frames


def run_theirs(pipe: CogVideoXImageToVideoPipeline, image: np.ndarray) -> np.ndarray:
    out = pipe(
        image=Image.fromarray(image),
        prompt=PROMPT,
        num_frames=FRAMES,
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        generator=torch.Generator().manual_seed(SEED),
        max_sequence_length=pipe.transformer.config.max_text_seq_length,  # the length ours encodes to
        output_type="np",
    )
    return out.frames[0]


def wall_time() -> None:
    ours, theirs = make_pipelines()
    image = first_frame()
    runs = {"ours": (run_ours, ours), "diffusers": (run_theirs, theirs)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    shapes = {name: fn(pipe, image).shape for name, (fn, pipe) in runs.items()}  # warm-up
    assert shapes["ours"] == shapes["diffusers"], shapes
    for _ in range(REPEATS):
        for name, (fn, pipe) in runs.items():
            start = time.perf_counter()
            fn(pipe, image)
            times[name].append(time.perf_counter() - start)
    print(f"1. wall time, tiny v1, {SIZE}x{SIZE} x {FRAMES} frames, DPM {STEPS} steps, CFG {GUIDANCE:g}:")
    for name, ts in times.items():
        print(f"   {name:9s} best {min(ts):.3f} s, median {statistics.median(ts):.3f} s ({REPEATS} runs)")
    ratio = min(times["ours"]) / min(times["diffusers"])
    print(f"   ratio ours / diffusers (bests) {ratio:.3f} (goal <= 1.05)")


def rss_mib() -> tuple[float, float]:
    """(resident, peak resident) of this process in MiB, from /proc (Linux).

    Not `ru_maxrss`: a spawned child inherits in it the RSS of the parent it was forked from (the kernel
    keeps the pre-exec high-water mark), which here hides the call's peak under the parent's size.
    """
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _memory_child(which: str, queue) -> None:
    torch.set_num_threads(1)
    ours, theirs = make_pipelines()
    fn, pipe = (run_ours, ours) if which == "ours" else (run_theirs, theirs)
    image = first_frame()
    cuda = torch.cuda.is_available()
    if cuda:
        pipe.to("cuda")
        torch.cuda.reset_peak_memory_stats()
    resident, built_peak = rss_mib()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS to the current RSS, so the next peak is the call's
    fn(pipe, image)
    gpu = torch.cuda.max_memory_allocated() / MIB if cuda else None
    queue.put((built_peak, resident, rss_mib()[1], gpu))


def peak_memory(repeats: int = 3) -> None:
    ctx = mp.get_context("spawn")
    results: dict[str, list[tuple]] = {"ours": [], "diffusers": []}
    for _ in range(repeats):  # the call's RSS peak varies by tens of MiB between processes: keep the lowest
        for which, runs in results.items():
            queue = ctx.Queue()
            child = ctx.Process(target=_memory_child, args=(which, queue))
            child.start()
            runs.append(queue.get())
            child.join()
    print(f"2. peak RSS on the same request, each pipeline in a fresh process, best of {repeats} (measured):")
    for which, runs in results.items():
        built_peak, resident, call_peak, gpu = min(runs, key=lambda r: r[2] - r[1])
        spread = ", ".join(f"{r[2] - r[1]:.0f}" for r in runs)
        line = f"   {which:9s} after imports+build: peak {built_peak:.0f} MiB, resident {resident:.0f} MiB;"
        line += f" call peak {call_peak:.0f} MiB (+{call_peak - resident:.0f} MiB; runs {spread})"
        if gpu is not None:
            line += f"; CUDA max allocated {gpu:.1f} MiB"
        print(line)


def real_size() -> None:
    with torch.device("meta"):
        parts = build_components("5b", "anisora")
    print("3. 5B model (anisora layout), computed from the configs on the meta device, not measured:")
    for name in ("transformer", "vae", "text_encoder"):
        n = sum(p.numel() for p in parts[name].parameters())
        gib = n / 2**30
        print(f"   {name:12s} {n / 1e9:6.3f} B params: {2 * gib:6.2f} GiB bf16, {4 * gib:6.2f} GiB fp32")
    config = parts["transformer"].config
    heads, batch = config.num_attention_heads, 2
    inner = heads * config.attention_head_dim
    tokens = 13 * (60 * 90) // 4 + 226  # 49 frames -> 13 latent frames of 60x90, 2x2 patches; + text
    hidden = batch * tokens * inner * 2
    print(f"   one forward at 49 frames 480x720 with CFG (batch 2): {tokens} tokens (17550 video + 226 text)")
    print(f"   hidden states (inner {inner}) {hidden / MIB:.0f} MiB bf16", end="")
    print(f", feed-forward intermediate (4x inner, gelu) {4 * hidden / MIB:.0f} MiB")
    scores = batch * heads * tokens**2 * 2
    print(
        f"   attention scores if materialised {scores / 2**30:6.1f} GiB per layer; "
        "SDPA flash / memory-efficient: not materialised"
    )
    if torch.cuda.is_available():
        measure_5b_forward()


def measure_5b_forward() -> None:
    """On CUDA: the 5B transformer (random bf16 weights) at 49 frames 480x720 with CFG, timed per step,
    and the 5B VAE decoding those 13 latent frames with and without tiling."""
    try:
        _measure_transformer()
        torch.cuda.empty_cache()
        _measure_vae()
        torch.cuda.empty_cache()
        _measure_pipeline()
    except torch.cuda.OutOfMemoryError as exc:
        print(f"   measured on CUDA: out of memory ({exc})")


def _measure_transformer() -> None:
    from diffusers import CogVideoXTransformer3DModel
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    torch.cuda.reset_peak_memory_stats()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):  # built in place: no 20 GiB fp32 copy on the host
            model = CogVideoXTransformer3DModel(**transformer_config("5b", "anisora")).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    c = model.config
    weights = torch.cuda.memory_allocated() / 2**30
    x = torch.randn(2, 13, c.in_channels, 60, 90, device="cuda", dtype=torch.bfloat16)
    text = torch.randn(2, 226, c.text_embed_dim, device="cuda", dtype=torch.bfloat16)
    grid = (30, 45)  # 60x90 latent cells in 2x2 patches
    rotary = get_3d_rotary_pos_embed(c.attention_head_dim, ((0, 0), grid), grid, 13, device="cuda")
    t = torch.tensor([500, 500], device="cuda")
    with torch.no_grad():
        seconds = _cuda_seconds(lambda: model(x, text, t, image_rotary_emb=rotary, return_dict=False))
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(
        f"   measured on CUDA, bf16 transformer forward, batch 2 (one CFG step): weights {weights:.2f} GiB,"
    )
    print(f"     max allocated {peak:.2f} GiB, {seconds:.2f} s/step -> 50 steps {50 * seconds:.0f} s")


def _measure_vae() -> None:
    from diffusers import AutoencoderKLCogVideoX

    from anisora.model.presets import vae_config

    vae = AutoencoderKLCogVideoX(**vae_config("5b")).to("cuda", torch.bfloat16).eval()
    latents = torch.randn(1, 16, 13, 60, 90, device="cuda", dtype=torch.bfloat16)
    for tiled in (False, True):
        vae.enable_tiling() if tiled else vae.disable_tiling()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            seconds = _cuda_seconds(lambda: vae.decode(latents), repeats=1)
        peak = torch.cuda.max_memory_allocated() / 2**30
        name = "tiled" if tiled else "untiled"
        print(f"   measured on CUDA, bf16 VAE decode 49x480x720, {name}: {peak:.2f} GiB, {seconds:.1f} s")


def _measure_pipeline(steps: int = 4) -> None:
    """Our pipeline end to end with all 5B components (T5-XXL included): first + last guides, motion mask."""
    from anisora.model.presets import char_tokenizer

    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            components = build_components("5b", "anisora")
    finally:
        torch.set_default_dtype(torch.float32)
    components["tokenizer"] = char_tokenizer()  # any T5 tokenizer: only the token count matters here
    pipe = AnisoraPipeline(**components)
    pipe.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    image = np.random.default_rng(0).integers(0, 256, (480, 720, 3), dtype=np.uint8)
    mask = np.zeros((480, 720), np.uint8)
    mask[:, 360:] = 255
    for mode in ("all on GPU", "all on GPU + VAE tiling", "model CPU offload + VAE tiling"):
        if "offload" in mode:
            pipe.enable_model_cpu_offload()
        if "tiling" in mode:
            pipe.vae.enable_tiling()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        pipe(
            [Guide(image, 0), Guide(image, 48)],
            prompt=PROMPT,
            num_frames=49,
            height=480,
            width=720,
            motion_mask=mask,
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(SEED),
        )
        torch.cuda.synchronize()
        seconds, peak = time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**30
        print(f"   measured on CUDA, AnisoraPipeline 5B bf16, 49x480x720, {steps} steps, {mode}:")
        print(f"     {seconds:.1f} s, peak {peak:.2f} GiB")


def _cuda_seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    wall_time()
    peak_memory()
    real_size()
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
