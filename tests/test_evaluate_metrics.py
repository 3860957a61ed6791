"""Evaluation metrics: known answers on synthetic videos, adapters on tiny random local models, bad input."""

import itertools
import json
import math

import cv2
import numpy as np
import pytest

from anisora.errors import InputError
from anisora.evaluate import METRICS, offline_metrics
from anisora.evaluate.features import HistogramThumbnailFeatures
from anisora.evaluate.metrics import (
    PSNR,
    SSIM,
    BackgroundConsistency,
    DynamicDegree,
    GuideFidelity,
    I2VBackground,
    I2VSubject,
    MotionMaskPrecision,
    MotionScore,
    MotionSmoothness,
    SubjectConsistency,
    psnr,
    ssim,
)

BG, FG = (30, 60, 90), (240, 200, 40)


def square_video(n=12, size=64, top=10, x0=8, step=3, side=12):
    """A flat square `side` px wide moving right by `step` px per frame over a flat background (rows
    top .. top + side)."""
    video = np.empty((n, size, size, 3), np.uint8)
    video[:] = BG
    for t in range(n):
        x = x0 + step * t
        video[t, top : top + side, x : x + side] = FG
    return video


def static_video(n=9, size=64, seed=0):
    frame = np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), np.uint8)
    return np.repeat(frame, n, axis=0)


def noise_video(n=9, size=64, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), np.uint8)


def ramp_video(n=9, size=32):
    """Flat frames whose grey level rises by 10 per frame: every odd frame is the mean of its neighbours."""
    grey = np.arange(n, dtype=np.uint8) * 10
    return np.broadcast_to(grey[:, None, None, None], (n, size, size, 3)).copy()


# ---------------------------------------------------------------------------------------- known answers


def test_static_video_is_smooth_still_and_consistent():
    video = static_video()
    assert MotionSmoothness().score([video])[0].value == pytest.approx(1.0, abs=1e-9)
    dynamic = DynamicDegree().score([video])[0]
    assert dynamic.value == 0.0 and dynamic.details["pairs_moving"] == 0
    assert MotionScore().score([video], fps=16)[0].value == 0.0
    for metric in (SubjectConsistency(), BackgroundConsistency()):
        result = metric.score([video])[0]
        assert result.value == pytest.approx(1.0, abs=1e-6)
        assert result.per_frame.shape == (len(video) - 1,)
    nothing = MotionMaskPrecision().score([video], mask=[np.ones((64, 64), bool)])[0]
    assert math.isnan(nothing.value) and nothing.details["moving_share"] == 0.0


def test_noise_is_not_smooth():
    smooth = MotionSmoothness().score([static_video(), noise_video()])
    assert smooth[0].value > 0.999
    assert smooth[1].value < 0.8  # re-interpolated noise misses by ~70 grey levels
    assert smooth[1].per_frame.shape == (4,)  # frames 1, 3, 5, 7 are rebuilt from 0, 2, 4, 6, 8


def test_even_length_skips_the_last_odd_frame_and_fades_are_smooth():
    result = MotionSmoothness().score([ramp_video(n=8)])[0]
    assert result.per_frame.shape == (3,)  # frames 1, 3, 5; frame 7 has no right neighbour
    assert result.value == pytest.approx(1.0, abs=1e-9)


def test_moving_square_is_smooth_and_dynamic():
    video = square_video(n=16)
    assert MotionSmoothness().score([video])[0].value > 0.99
    dynamic = DynamicDegree(fps=8).score([video])[0]
    # VBench rule: 16 frames need round(4 * 16 / 16) = 4 pairs above 6 * 64 / 256 = 1.5 px
    assert dynamic.value == 1.0
    assert dynamic.details == {"threshold": 1.5, "pairs_needed": 4.0, "pairs_moving": 15.0}
    assert np.all(np.abs(dynamic.per_frame - 3.0) < 0.5)  # top-5% flow ~ the 3 px/frame step
    slow = DynamicDegree(fps=8).score([square_video(n=16, step=1)])[0]
    assert slow.value == 0.0  # 1 px/frame is below the 1.5 px threshold
    assert DynamicDegree(fps=4).score([video])[0].details["threshold"] == 3.0  # max(1, 8 / fps) = 2
    assert MotionScore().score([video], fps=16)[0].value > 10.0  # 480p-equivalent pixels


def test_motion_mask_precision_inside_and_outside():
    video = square_video()  # moves through rows 10..21, columns 8..52
    inside = np.zeros((64, 64), bool)
    inside[4:30, 2:62] = True
    outside = np.zeros((64, 64), bool)
    outside[36:, :] = True
    results = MotionMaskPrecision().score([video, video], mask=[inside, outside])
    assert results[0].value == 1.0 and results[1].value == 0.0
    assert np.all(results[0].per_frame == 1.0) and results[0].per_frame.shape == (len(video) - 1,)
    moving = MotionMaskPrecision().moving(video).any(axis=0)
    assert results[0].details["recall"] == pytest.approx(moving.sum() / inside.sum())
    assert results[0].details["iou"] == pytest.approx(moving.sum() / inside.sum())  # U inside K: U | K = K
    assert results[1].details == {"recall": 0.0, "iou": 0.0, "moving_share": pytest.approx(moving.mean())}
    gt = np.zeros((len(video), 64, 64), np.uint8)  # per-frame foreground labels, ToonWorld style
    gt[:, 10:22, 8:56] = 1
    with_gt = MotionMaskPrecision().score([video], mask=[inside], motion_gt=[gt])[0]
    assert with_gt.details["recall"] == pytest.approx((moving & inside & (gt.any(0) > 0)).sum() / (12 * 48))
    assert with_gt.details["recall"] > results[0].details["recall"]


def test_i2v_identical_frames_match_the_input_image():
    image = static_video(n=1, seed=3)[0]
    video = np.repeat(image[None], 6, axis=0)
    for metric in (I2VSubject(), I2VBackground()):
        result = metric.score([video], image=[image])[0]
        assert result.value == pytest.approx(1.0, abs=1e-6)
        assert result.per_frame.shape == (6,)
    other = I2VSubject().score([video], image=[static_video(n=1, seed=4)[0]])[0]
    assert other.value < 0.9


class TableFeatures:
    """Features looked up by each frame's first pixel value: lets the formulas be checked by hand."""

    name, version, weights = "table", "1", "test"

    def __init__(self, table):
        self.table = table

    def embed(self, frames):
        return np.stack([self.table[int(f[0, 0, 0])] for f in frames]).astype(np.float32)


def test_consistency_formulas_by_hand():
    s = math.sqrt(0.5)
    table = {0: [1.0, 0.0], 1: [s, s], 2: [0.0, 1.0], 3: [-1.0, 0.0]}
    features = TableFeatures(table)
    video = np.repeat(np.array([0, 1, 2], np.uint8)[:, None, None, None], 3, 3).repeat(16, 1).repeat(16, 2)
    subject = SubjectConsistency(features).score([video])[0]
    # t=1: (cos(f1, f0) + cos(f1, f0)) / 2 = s; t=2: (cos(f2, f0) = 0, cos(f2, f1) = s) / 2
    assert subject.per_frame == pytest.approx([s, s / 2])
    assert subject.value == pytest.approx(0.75 * s)
    image = np.full((16, 16, 3), 3, np.uint8)  # opposite of frame 0: cosine -1 clamps to 0
    i2v = I2VSubject(features).score([video], image=[image])[0]
    assert i2v.per_frame == pytest.approx([0.0, 0.0, 0.0])
    assert i2v.value == pytest.approx(0.4 * 0.0 + 0.3 * s + 0.3 * s)
    image = np.full((16, 16, 3), 1, np.uint8)
    i2v = I2VBackground(features).score([video], image=[image])[0]
    assert i2v.value == pytest.approx(0.4 * 1.0 + 0.3 * s + 0.3 * s)
    assert i2v.details["image_mean"] == pytest.approx((2 * s + 1) / 3)


def test_default_features_are_unit_and_named():
    features = HistogramThumbnailFeatures()
    frames = np.concatenate([static_video(n=2), square_video(n=2)])
    f = features.embed(frames)
    assert f.shape == (4, 8**3 + 16 * 16 * 3) and f.dtype == np.float32
    assert np.linalg.norm(f, axis=1) == pytest.approx(1.0, abs=1e-6)
    assert f[0] @ f[1] == pytest.approx(1.0, abs=1e-6)
    assert f[0] @ f[2] < 0.7
    assert "histogram" in features.weights and "classical" in features.weights


def test_psnr_ssim_and_guide_fidelity():
    video = noise_video(n=4, size=40)
    same = PSNR().score([video], reference=[video])[0]
    assert np.all(same.per_frame == 100.0) and same.value == 100.0  # capped, not infinite
    off_by_one = np.clip(video.astype(int) + 1, 0, 255).astype(np.uint8)
    off_by_one[video == 255] = 254  # every pixel differs by exactly 1: MSE 1
    assert psnr(video[0], off_by_one[0]) == pytest.approx(20 * math.log10(255), abs=1e-6)
    assert SSIM().score([video], reference=[video])[0].value == pytest.approx(1.0, abs=1e-12)
    assert ssim(video[0], video[1]) < 0.1
    skimage = pytest.importorskip("skimage.metrics")
    blurred = cv2.GaussianBlur(video[0], (5, 5), 1.0)
    luma = [im.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) for im in (video[0], blurred)]
    expected = skimage.structural_similarity(
        *luma, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(video[0], blurred) == pytest.approx(expected, abs=1e-6)
    guides = {0: video[0], -1: video[1]}  # the last frame's guide is wrong
    fidelity = GuideFidelity().score([video], guides=[guides])[0]
    assert fidelity.details["psnr@0"] == 100.0 and fidelity.details["psnr@3"] < 15.0
    assert fidelity.value == pytest.approx((100.0 + fidelity.details["psnr@3"]) / 2)
    assert fidelity.per_frame.shape == (2,)


def test_psnr_of_the_unguided_frames_and_inside_the_moving_region():
    """A cross-fade's guide frames are exact and its ghost sits where the truth moves: the two details see
    past both."""
    truth = noise_video(n=5, size=40)
    moving = np.zeros((40, 40), bool)
    moving[10:20, 10:30] = True
    video = truth.copy()
    video[1:4][:, moving] = 255 - video[1:4][:, moving]  # in-betweens wrong inside the region only
    result = PSNR().score(
        [video], reference=[truth], guides=[{0: truth[0], -1: truth[-1]}], motion_gt=[moving]
    )
    details = result[0].details
    inside = [psnr(video[i][moving], truth[i][moving]) for i in (1, 2, 3)]
    assert details["moving"] == pytest.approx(np.mean(inside), abs=1e-9) and details["moving"] < 10
    assert details["unguided"] == pytest.approx(result[0].per_frame[1:4].mean(), abs=1e-9)
    assert result[0].value > details["unguided"] + 30  # the guides at 100 dB lift the plain mean
    assert PSNR().score([video], reference=[truth])[0].details == {}
    still = PSNR().score([video], reference=[truth], motion_gt=[np.zeros((40, 40), bool)])[0]
    assert math.isnan(still.details["moving"])


def test_registry_and_names():
    assert len(METRICS) == 15
    for name, cls in METRICS.items():
        assert cls.name == name and cls.version
    for metric in offline_metrics():
        described = metric.describe()
        assert set(described) == {"name", "version", "weights"} and described["weights"]
    assert "BRISQUE" in METRICS["imaging_quality_brisque"].weights


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("videos", "inputs", "message"),
    [
        ([static_video().astype(np.float32)], {}, "must be uint8 frames"),
        ([static_video()[..., 0]], {}, "must be uint8 frames"),
        (static_video(), {}, "pass \\[video\\]"),
        ([static_video(n=2)], {}, "needs at least 3"),
        ([static_video(size=8)], {}, "16\\+ px"),
        ([], {}, "non-empty list"),
    ],
)
def test_bad_videos(videos, inputs, message):
    with pytest.raises(InputError, match=message):
        MotionSmoothness().score(videos, **inputs)


def test_bad_inputs():
    video = square_video()
    with pytest.raises(InputError, match="mask is 32x32 but the frames are 64x64"):
        MotionMaskPrecision().score([video], mask=[np.ones((32, 32), bool)])
    with pytest.raises(InputError, match="needs the input mask"):
        MotionMaskPrecision().score([video])
    with pytest.raises(InputError, match="one entry per video \\(2\\), got 1"):
        MotionMaskPrecision().score([video, video], mask=[np.ones((64, 64), bool)])
    with pytest.raises(InputError, match="mask must be a bool or integer array"):
        MotionMaskPrecision().score([video], mask=[np.ones((64, 64), np.float32)])
    with pytest.raises(InputError, match="unexpected input prompt"):
        SubjectConsistency().score([video], prompt=["a cat"])
    with pytest.raises(InputError, match="input image must be a uint8"):
        I2VSubject().score([video], image=[video])
    with pytest.raises(InputError, match="reference must be a uint8 array"):
        PSNR().score([video], reference=[video[:-1]])
    with pytest.raises(InputError, match="guide frame index 12 is outside"):
        GuideFidelity().score([video], guides=[{12: video[0]}])
    with pytest.raises(InputError, match="fps must be a positive number"):
        DynamicDegree().score([video], fps=0)


# ---------------------------------------------------------------------------------------- imaging quality


def test_brisque_imaging_quality_is_named_and_bounded():
    from anisora.curate.scorers.quality import QualityScorer
    from anisora.evaluate.metrics import BrisqueImagingQuality

    rng = np.random.default_rng(5)
    textured = cv2.GaussianBlur(rng.integers(0, 256, (2, 48, 48, 3), np.uint8).reshape(96, 48, 3), (3, 3), 0)
    video = textured.reshape(2, 48, 48, 3)
    flat = np.full((2, 48, 48, 3), 128, np.uint8)
    metric = BrisqueImagingQuality(max_frames=2)
    result, undefined = metric.score([video, flat])
    curation = [QualityScorer().frame_scores(frame) for frame in video]
    raw = [f["brisque"] for f in curation]
    assert result.per_frame == pytest.approx([min(max((100 - b) / 100, 0), 1) for b in raw])
    assert 0.0 <= result.value <= 1.0 and result.details["brisque"] == pytest.approx(np.mean(raw))
    assert result.details["quality_score"] == pytest.approx(np.mean([f["score"] for f in curation]))
    assert math.isnan(undefined.value)  # BRISQUE is undefined on flat frames
    assert metric.name == "imaging_quality_brisque" and "not VBench's MUSIQ" in metric.weights


# ---------------------------------------------------------------------------------------- adapters

torch = pytest.importorskip("torch")


class TinyInterpolator(torch.nn.Module):
    """A 1x1 convolution over [img0, img1]; `average()` sets it to (img0 + img1) / 2."""

    def __init__(self):
        super().__init__()
        self.mix = torch.nn.Conv2d(6, 3, 1)

    def forward(self, img0, img1, t):
        assert img0.shape[-1] % 16 == 0 and img0.shape[-2] % 16 == 0 and float(t.flatten()[0]) == 0.5
        return {"imgt_pred": self.mix(torch.cat([img0, img1], dim=1))}  # AMT's output layout

    def average(self):
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.bias.zero_()
            for c in range(3):
                self.mix.weight[c, c] = 0.5
                self.mix.weight[c, c + 3] = 0.5
        return self


def test_learned_interpolator_from_checkpoint(tmp_path):
    from anisora.evaluate.metrics import LearnedInterpolator

    torch.save({"state_dict": TinyInterpolator().average().state_dict()}, tmp_path / "amt.pth")  # AMT layout
    torch.save(TinyInterpolator().state_dict(), tmp_path / "plain.pth")  # a bare state dict, random weights
    averaging = LearnedInterpolator.from_checkpoint(tmp_path / "amt.pth", TinyInterpolator)
    metric = MotionSmoothness(averaging)
    assert str(tmp_path / "amt.pth") in metric.weights and metric.weights.startswith("learned")
    video = ramp_video(n=7, size=20)  # 20 px: padded to 32 for the module, cropped back
    assert metric.score([video])[0].value == pytest.approx(1.0, abs=1e-9)
    random = LearnedInterpolator.from_checkpoint(tmp_path / "plain.pth", TinyInterpolator)
    assert MotionSmoothness(random).score([video])[0].value < 0.99
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match="does not fit TinyInterpolator"):
        LearnedInterpolator.from_checkpoint(tmp_path / "wrong.pth", TinyInterpolator)
    with pytest.raises(InputError, match="is not a file"):
        LearnedInterpolator.from_checkpoint(tmp_path / "missing.pth", TinyInterpolator)


transformers = pytest.importorskip("transformers")

CHARS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny random CLIP (with image processor and tokenizer) and DINOv2 models saved with save_pretrained."""
    from transformers import (
        BitImageProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPTokenizer,
        Dinov2Config,
        Dinov2Model,
    )

    root = tmp_path_factory.mktemp("tiny")
    vocab = ["<|startoftext|>", "<|endoftext|>", *CHARS, *(c + "</w>" for c in CHARS)]
    (root / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (root / "merges.txt").write_text("#version: 0.2\n")
    layers = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(**layers, vocab_size=len(vocab), bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(**layers, image_size=32, patch_size=8),
        projection_dim=8,
    )
    torch.manual_seed(0)
    clip = CLIPModel(config).eval()
    clip.save_pretrained(root / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "clip"
    )
    CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt")).save_pretrained(root / "clip")
    dino = Dinov2Model(Dinov2Config(**layers, image_size=32, patch_size=8)).eval()
    dino.save_pretrained(root / "dino")
    BitImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(root / "dino")
    dino.save_pretrained(root / "dino_no_processor")
    return {"root": root, "clip": clip, "dino": dino}


def unit(x):
    x = x.detach().float().numpy()
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_dino_adapter(tiny):
    from transformers import AutoImageProcessor

    from anisora.evaluate.features import DinoFeatures

    path = tiny["root"] / "dino"
    features = DinoFeatures(path, batch_size=2)
    frames = np.concatenate([square_video(n=3, size=40), static_video(n=2, size=40)])
    processor = AutoImageProcessor.from_pretrained(path)
    pixels = processor(images=list(frames), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = unit(tiny["dino"](pixel_values=pixels).last_hidden_state[:, 0])
    assert features.embed(frames) == pytest.approx(expected, abs=1e-5)
    metric = SubjectConsistency(features)
    assert metric.weights == f"dino: {path}"
    assert metric.score([static_video(n=3, size=40)])[0].value == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match=r"no preprocessor_config\.json"):
        DinoFeatures(tiny["root"] / "dino_no_processor").embed(frames)
    with pytest.raises(InputError, match="not a DINO ViT"):
        DinoFeatures(tiny["root"] / "clip").embed(frames)
    with pytest.raises(InputError, match="is not a directory"):
        DinoFeatures(tiny["root"] / "missing")


def test_clip_adapter_and_text_video_consistency(tiny):
    from transformers import AutoImageProcessor, AutoTokenizer

    from anisora.evaluate.features import ClipFeatures
    from anisora.evaluate.metrics import TextVideoConsistency

    path = tiny["root"] / "clip"
    model = tiny["clip"]
    video = square_video(n=4, size=40)
    pixels = AutoImageProcessor.from_pretrained(path)(images=list(video), return_tensors="pt")["pixel_values"]
    tokens = AutoTokenizer.from_pretrained(path)(["a square moves"], padding=True, return_tensors="pt")
    with torch.no_grad():
        images = model.get_image_features(pixel_values=pixels)
        text = model.get_text_features(**tokens)
    images, text = unit(getattr(images, "pooler_output", images)), unit(getattr(text, "pooler_output", text))
    features = ClipFeatures(path)
    assert features.embed(video) == pytest.approx(images, abs=1e-5)
    assert features.embed_text(["a square moves"]) == pytest.approx(text, abs=1e-5)
    result = TextVideoConsistency(features).score([video], prompt=["a square moves"])[0]
    assert result.per_frame == pytest.approx(images @ text[0], abs=1e-5)
    assert result.value == pytest.approx(float((images @ text[0]).mean()), abs=1e-5)
    assert BackgroundConsistency(features).score([static_video(n=3, size=40)])[0].value == pytest.approx(1.0)
    with pytest.raises(InputError, match="unavailable: it needs a local CLIP directory"):
        TextVideoConsistency()
    with pytest.raises(InputError, match="not CLIPModel"):
        ClipFeatures(tiny["root"] / "dino").embed(video)


class TinyDreamSim(torch.nn.Module):
    """DreamSim's interface: `embed` of (N, 3, S, S) images in [0, 1]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.proj = torch.nn.Conv2d(3, 6, 4, stride=4)

    def embed(self, x):
        assert x.shape[1:] == (3, 32, 32)
        if not torch.compiler.is_exporting():
            self.seen = (float(x.min()), float(x.max()))
        return self.proj(x).mean(dim=(2, 3))


class Exported(torch.nn.Module):
    """What a user exports: forward = DreamSim's embed."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.embed(x)


def test_dreamsim_adapter(tmp_path):
    from anisora.evaluate.features import DreamSimFeatures

    model = TinyDreamSim().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(Exported(model), (torch.rand(2, 3, 32, 32),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "dreamsim.pt2")
    direct = DreamSimFeatures(model, image_size=32, batch_size=3)
    loaded = DreamSimFeatures.from_path(tmp_path / "dreamsim.pt2", image_size=32, batch_size=3)
    assert loaded.weights == str(tmp_path / "dreamsim.pt2")
    frames = np.concatenate([square_video(n=3, size=40), static_video(n=2, size=40)])
    assert loaded.embed(frames) == pytest.approx(direct.embed(frames), abs=1e-5)
    assert model.seen[0] >= 0.0 and 0.9 < model.seen[1] <= 1.0  # RGB scaled to [0, 1], not normalised
    image = frames[3]
    result = I2VBackground(loaded).score([np.repeat(image[None], 4, 0)], image=[image])[0]
    assert result.value == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match=r"not a torch\.export archive"):
        (tmp_path / "junk.pt2").write_bytes(b"junk")
        DreamSimFeatures.from_path(tmp_path / "junk.pt2")


def test_aesthetic_quality_reuses_the_curation_predictor(tiny, tmp_path):
    from anisora.curate.scorers.aesthetic import AestheticConfig, LaionAestheticScorer
    from anisora.evaluate.metrics import AestheticQuality

    gen = torch.Generator().manual_seed(0)
    widths = (8, 1024, 128, 64, 16, 1)  # the published head's widths, input = the tiny CLIP's 8-d projection
    state = {}
    for (a, b), index in zip(itertools.pairwise(widths), (0, 2, 4, 6, 7), strict=True):
        state[f"layers.{index}.weight"] = torch.randn(b, a, generator=gen) / a**0.5
        state[f"layers.{index}.bias"] = torch.randn(b, generator=gen) * 0.1
    torch.save(state, tmp_path / "head.pth")
    clip_path = tiny["root"] / "clip"
    metric = AestheticQuality(clip_path, tmp_path / "head.pth", max_frames=3)
    video = square_video(n=6, size=40)
    result = metric.score([video])[0]
    config = AestheticConfig(clip_path=str(clip_path), head_path=str(tmp_path / "head.pth"))
    scorer = LaionAestheticScorer(config)
    expected = scorer.predict(video[[1, 3, 5]]) / 10.0  # 3 frames spread over 6: the centres of 3 parts
    assert result.per_frame == pytest.approx(expected, abs=1e-6)
    assert result.value == pytest.approx(expected.mean(), abs=1e-6)
    assert "LAION" in metric.weights and str(clip_path) in metric.weights
    with pytest.raises(InputError, match="clip_path is required"):
        AestheticQuality()
