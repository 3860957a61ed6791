"""LaionAestheticScorer on a tiny random CLIP and a random head saved in the published formats."""

import itertools
import pickle
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from anisora.curate.scorers.aesthetic import AestheticConfig, LaionAestheticScorer  # noqa: E402
from anisora.curate.scorers.base import ClipSamples  # noqa: E402
from anisora.errors import InputError  # noqa: E402

PROJ = 8
WIDTHS = (PROJ, 1024, 128, 64, 16, 1)  # the published head, with the tiny CLIP's projection dim as input


def head_state(in_dim=PROJ, seed=0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    widths = (in_dim, *WIDTHS[1:])
    state = {}
    for (a, b), index in zip(itertools.pairwise(widths), (0, 2, 4, 6, 7), strict=True):
        state[f"layers.{index}.weight"] = torch.randn(b, a, generator=gen) / a**0.5
        state[f"layers.{index}.bias"] = torch.randn(b, generator=gen) * 0.1
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    root = tmp_path_factory.mktemp("laion")
    config = CLIPConfig(
        text_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, vocab_size=99
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=PROJ,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(root / "clip")
    processor.save_pretrained(root / "clip")
    # the vision-only layout (CLIPVisionModelWithProjection.save_pretrained) with the same weights
    vision = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(**{**config.vision_config.to_dict(), "projection_dim": PROJ})
    )
    vision.vision_model.load_state_dict(model.vision_model.state_dict())
    vision.visual_projection.load_state_dict(model.visual_projection.state_dict())
    vision.save_pretrained(root / "vision")
    processor.save_pretrained(root / "vision")
    state = head_state()
    torch.save(state, root / "head.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(root / "head.safetensors"))
    return {"root": root, "model": model, "processor": processor, "state": state}


def frames(n=6, seed=0, h=48, w=80):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 1, 3))  # each frame its own colour, plus texture
    return np.clip(base + rng.integers(-40, 40, (n, h, w, 3)), 0, 255).astype(np.uint8)


def clip_of(images):
    h, w, k = images.shape[1], images.shape[2], len(images)
    return ClipSamples("a.mp4", 24.0, w, h, 0, 48, images, tuple(range(0, 8 * k, 8)))


def by_hand(weights, images) -> np.ndarray:
    """The LAION predictor computed here: CLIP image features, L2 norm, then the five Linear layers."""
    pixels = weights["processor"](images=list(images), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        emb = weights["model"].get_image_features(pixel_values=pixels).pooler_output
        x = emb / emb.norm(dim=-1, keepdim=True)
        for index in (0, 2, 4, 6, 7):  # dropout is off at inference, and the head has no activations
            x = x @ weights["state"][f"layers.{index}.weight"].T + weights["state"][f"layers.{index}.bias"]
    return x.squeeze(-1).double().numpy()


def make(weights, **kw):
    root = weights["root"]
    values = {"clip_path": str(root / "clip"), "head_path": str(root / "head.pth"), **kw}
    return LaionAestheticScorer.from_dict(values)


def test_score_equals_hand_computation_for_both_head_formats(weights):
    images = frames()
    expected = by_hand(weights, images)
    assert np.ptp(expected) > 1e-4  # the frames do give different scores
    for head in ("head.pth", "head.safetensors"):
        scorer = make(weights, head_path=str(weights["root"] / head))
        np.testing.assert_allclose(scorer.predict(images), expected, rtol=1e-5, atol=1e-6)
        out = scorer.score(clip_of(images))
        assert set(out) == {"aesthetic_score", "aesthetic_min", "aesthetic_max", "aesthetic_frames"}
        assert out["aesthetic_score"] == pytest.approx(expected.mean(), rel=1e-5, abs=1e-6)
        assert out["aesthetic_min"] == pytest.approx(expected.min(), rel=1e-5, abs=1e-6)
        assert out["aesthetic_max"] == pytest.approx(expected.max(), rel=1e-5, abs=1e-6)
        assert out["aesthetic_frames"] == len(images)
        assert all(type(v) in (float, int) for v in out.values())


def test_deterministic_frames_option_batches_and_vision_only_layout(weights):
    images = frames(7, seed=3)
    expected = by_hand(weights, images)
    a = make(weights).score(clip_of(images))
    assert make(weights).score(clip_of(images)) == a
    small_batches = make(weights, batch_size=2).predict(images)
    np.testing.assert_allclose(small_batches, expected, rtol=1e-5, atol=1e-6)
    vision_only = make(weights, clip_path=str(weights["root"] / "vision")).predict(images)
    np.testing.assert_allclose(vision_only, expected, rtol=1e-5, atol=1e-6)
    two = make(weights, frames=2).score(clip_of(images))  # centres of the two halves: frames 1 and 5 of 7
    assert two["aesthetic_frames"] == 2
    assert two["aesthetic_score"] == pytest.approx(expected[[1, 5]].mean(), rel=1e-5, abs=1e-6)
    empty = make(weights).score(clip_of(images[:0]))
    assert empty["aesthetic_score"] is None and empty["aesthetic_frames"] == 0


def test_pickles_without_the_models(weights):
    images = frames(3, seed=5)
    scorer = make(weights)
    fresh = pickle.loads(pickle.dumps(scorer))
    first = scorer.score(clip_of(images))  # loads the models
    data = pickle.dumps(scorer)
    assert len(data) < 2000
    again = pickle.loads(data)
    assert again.score(clip_of(images)) == first == fresh.score(clip_of(images))
    assert again.cache_key() == scorer.cache_key()
    assert make(weights, frames=4).cache_key() != scorer.cache_key()


def test_clear_errors(weights, tmp_path):
    root = weights["root"]
    with pytest.raises(InputError, match="clip_path is required"):
        LaionAestheticScorer()
    with pytest.raises(InputError, match="does not exist"):
        make(weights, clip_path=str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="does not exist"):
        make(weights, head_path=str(tmp_path / "nowhere.pth"))
    with pytest.raises(InputError):
        make(weights, nope=1)
    with pytest.raises(ValidationError):
        AestheticConfig(clip_path="x", head_path="y", frames=-1)
    # a head for ViT-L/14 (768-d) does not fit this CLIP (8-d)
    torch.save(head_state(in_dim=768), tmp_path / "l14.pth")
    with pytest.raises(InputError, match="768-d"):
        make(weights, head_path=str(tmp_path / "l14.pth")).load()
    # not the LAION head
    torch.save({"fc.weight": torch.zeros(1, 8)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="not the LAION"):
        make(weights, head_path=str(tmp_path / "other.pth")).load()
    broken = head_state()
    broken["layers.2.weight"] = torch.zeros(128, 999)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(InputError, match="does not chain"):
        make(weights, head_path=str(tmp_path / "broken.pth")).load()
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        make(weights, head_path=str(tmp_path / "garbage.pth")).load()
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no CLIP config"):
        make(weights, clip_path=str(tmp_path / "empty_dir")).load()
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(root / "clip" / "config.json", no_weights)
    with pytest.raises(InputError, match="cannot load CLIP"):
        make(weights, clip_path=str(no_weights)).load()
    # weights without the visual projection would leave it random: refused, not scored with noise
    from safetensors.torch import load_file, save_file

    partial = tmp_path / "partial"
    shutil.copytree(root / "clip", partial)
    tensors = load_file(str(partial / "model.safetensors"))
    del tensors["visual_projection.weight"]
    save_file(tensors, str(partial / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(InputError, match="lacks CLIP vision weights"):
        make(weights, clip_path=str(partial)).load()
    assert (root / "clip").is_dir()  # nothing above touched the real weights
