"""Captioners (none, template, Qwen2-VL on a tiny random model) and the training-prompt suffix."""

import pickle
import shutil

import numpy as np
import pytest

from anisora.curate.captions import (
    Captioner,
    NoCaptioner,
    Qwen2VLCaptioner,
    TemplateCaptioner,
    build_captioner,
)
from anisora.curate.scorers.base import ClipSamples
from anisora.errors import InputError
from anisora.prompts import training_prompt


def clip_of(frames) -> ClipSamples:
    frames = np.asarray(frames, np.uint8)
    h, w, k = frames.shape[1], frames.shape[2], len(frames)
    return ClipSamples("a.mp4", 24.0, w, h, 0, 10 * k, frames, tuple(range(0, 10 * k, 10)))


# ---------------------------------------------------------------- training prompt


def test_training_prompt_official_suffix():
    assert (
        training_prompt("A girl waves.", 4.73, 2.25)
        == "A girl waves. aesthetic score: 4.7. motion score: 2.2."
    )
    assert (
        training_prompt("A girl waves", 4.73, 2.25)
        == "A girl waves. aesthetic score: 4.7. motion score: 2.2."
    )
    assert training_prompt("", 5, 1) == "aesthetic score: 5.0. motion score: 1.0."
    assert training_prompt("   ", 5.0, 1.0) == "aesthetic score: 5.0. motion score: 1.0."
    assert (
        training_prompt("  A  boy\nruns! ", 6.0, 3.0)
        == "A boy runs! aesthetic score: 6.0. motion score: 3.0."
    )
    assert training_prompt("女孩挥手。", 4.0, 2.0) == "女孩挥手。 aesthetic score: 4.0. motion score: 2.0."
    # the documented rounding: f"{x:.1f}" (nearest decimal of the binary value, exact ties to even)
    for value, text in (
        (2.25, "2.2"),
        (2.35, "2.4"),
        (4.75, "4.8"),
        (0.05, "0.1"),
        (4.73, "4.7"),
        (-0.04, "0.0"),
    ):
        assert training_prompt("", value, 1.0) == f"aesthetic score: {text}. motion score: 1.0."
    assert training_prompt("x", np.float32(4.7), np.float64(1.26)).endswith(
        "aesthetic score: 4.7. motion score: 1.3."
    )
    for bad in (float("nan"), float("inf"), None, "high"):
        with pytest.raises(InputError):
            training_prompt("x", bad, 1.0)


# ---------------------------------------------------------------- none / template

FULL = {
    "duration_seconds": 4.2,
    "borders_letterbox": True,
    "borders_pillarbox": False,
    "text_coverage": 3.5,
    "motion_static": False,
    "motion_score": 5.1,
    "quality_score": 8.0,
}


def test_none_and_template_captions():
    clip = clip_of(np.zeros((2, 8, 8, 3)))
    assert NoCaptioner().caption(clip, FULL) == ""
    template = TemplateCaptioner()
    assert (
        template.caption(clip, FULL)
        == "A 4-second letterboxed animated clip with on-screen text and a lot of motion."
    )
    assert template.caption(clip, {}) == "An animated clip."
    assert template.caption(clip, {"motion_score": 0.3}) == "An animated clip with little motion."
    assert template.caption(clip, {"motion_score": np.float32(2.0)}) == "An animated clip with some motion."
    assert (
        template.caption(clip, {"motion_static": True, "motion_score": 9.0})
        == "An animated clip with no motion."
    )
    scores = {"duration_seconds": 8.4, "borders_pillarbox": True, "text_area": 0.2, "motion_score": None}
    assert template.caption(clip, scores) == "An 8-second pillarboxed animated clip."
    assert template.caption(clip, {"duration_seconds": 11.0}) == "An 11-second animated clip."
    assert template.caption(clip, {"duration_seconds": 2.0, "text_score": 1.0}) == (
        "A 2-second animated clip with on-screen text."
    )
    strict = TemplateCaptioner.from_dict({"text_percent": 5.0, "lots_of_motion": 6.0})
    assert strict.caption(clip, FULL) == "A 4-second letterboxed animated clip with some motion."
    assert strict.cache_key() != template.cache_key()
    assert pickle.loads(pickle.dumps(template)).caption(clip, FULL) == template.caption(clip, FULL)


def test_build_captioner_factory():
    assert isinstance(build_captioner("none", {}), NoCaptioner)
    assert isinstance(build_captioner("template", None), TemplateCaptioner)
    assert build_captioner("template", {"little_motion": 0.5}).config.little_motion == 0.5
    assert all(isinstance(build_captioner(n, {}), Captioner) for n in ("none", "template"))
    with pytest.raises(InputError, match="unknown captioner"):
        build_captioner("blip", {})
    with pytest.raises(InputError, match=r"captions\.options\.colour: unknown key"):
        build_captioner("template", {"colour": 1})
    with pytest.raises(InputError, match="model_path is required"):
        build_captioner("qwen2vl", {})
    with pytest.raises(InputError, match="not a directory"):
        build_captioner("qwen2vl", {"model_path": "/nonexistent/qwen"})
    with pytest.raises(InputError, match="dtype"):
        build_captioner("qwen2vl", {"model_path": "/tmp", "dtype": "int8"})


# ---------------------------------------------------------------- Qwen2-VL adapter

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
SPECIAL += ["<|image_pad|>", "<|video_pad|>"]
WORDS = ["system", "user", "assistant", "You", "are", "a", "helpful", "assistant.", "Describe", "the", "clip"]
WORDS += ["girl", "waves", "runs", "jumps", "sky", "red"]
PROMPT = "Describe the clip"


def save_tiny_qwen2vl(path, vocab_order=None):
    """A random Qwen2-VL (hidden 32, one layer each side) with a WordLevel tokenizer and the PIL image
    processor, all written with save_pretrained: the same files a real checkpoint has."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokens = ["<unk>", *SPECIAL, *WORDS]
    if vocab_order is not None:
        tokens = [tokens[i] for i in vocab_order]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL,
    )
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=28 * 28, max_pixels=56 * 84, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    ids = {t: vocab[t] for t in SPECIAL}
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=1,
            embed_dim=32,
            hidden_size=32,
            num_heads=2,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = None  # generate exactly max_new_tokens in the tests
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    image_processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return save_tiny_qwen2vl(tmp_path_factory.mktemp("qwen2vl") / "model")


def squares(n=5, seed=0, side=64):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, side, side, 3)).astype(np.uint8)


def test_qwen2vl_caption_is_a_deterministic_string(qwen_dir):
    clip = clip_of(squares())
    captioner = build_captioner(
        "qwen2vl", {"model_path": str(qwen_dir), "max_new_tokens": 6, "prompt": PROMPT}
    )
    first = captioner.caption(clip, {})
    assert isinstance(first, str) and first == " ".join(first.split())
    assert captioner.caption(clip, {}) == first
    fresh = pickle.loads(pickle.dumps(captioner))  # the loaded model does not travel
    assert not hasattr(fresh, "_model")
    assert fresh.caption(clip, {}) == first
    assert len(pickle.dumps(captioner)) < 2000


def test_qwen2vl_prompt_and_frames_reach_generate(qwen_dir):
    import torch
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    frames = squares(5, seed=1)
    captioner = Qwen2VLCaptioner.from_dict(
        {"model_path": str(qwen_dir), "max_new_tokens": 5, "frames": 3, "prompt": PROMPT}
    )
    captioner.load()
    model = captioner._model
    calls = []
    original = model.generate

    def spy(**kwargs):
        out = original(**kwargs)
        calls.append((kwargs, out))
        return out

    model.generate = spy
    text = captioner.caption(clip_of(frames), {"motion_score": 1.0})
    kwargs, out = calls[-1]
    # the frames: centres of three equal parts of five -> 0, 2, 4; 64x64 -> 56x56 -> a 4x4 patch grid each
    processor = Qwen2VLImageProcessorPil.from_pretrained(qwen_dir)
    expected = processor(images=list(frames[[0, 2, 4]]), return_tensors="pt")
    torch.testing.assert_close(kwargs["pixel_values"], expected["pixel_values"])
    assert kwargs["image_grid_thw"].tolist() == [[1, 4, 4]] * 3
    assert kwargs["do_sample"] is False and kwargs["max_new_tokens"] == 5
    # the prompt: Qwen2-VL ChatML with one vision block of 4 image tokens per frame, then the prompt
    tokenizer = AutoTokenizer.from_pretrained(qwen_dir)
    image_id = model.config.image_token_id
    ids = kwargs["input_ids"][0]
    assert int((ids == image_id).sum()) == 12
    assert kwargs["mm_token_type_ids"][0].tolist() == (ids == image_id).long().tolist()
    vision = "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>"
    chat = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{vision * 3}{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert ids.tolist() == tokenizer(chat, add_special_tokens=False)["input_ids"]
    # 3-D rotary positions were used: each 4-token image advances the position by 2 -> delta -2 per image
    assert model.model.rope_deltas.flatten().tolist() == [-6]
    # the caption is the decoded continuation
    assert out.shape[1] == ids.shape[0] + 5
    assert text == " ".join(tokenizer.decode(out[0, ids.shape[0] :], skip_special_tokens=True).split())
    # other frames, other pixels at the model
    captioner.caption(clip_of(squares(5, seed=2)), {})
    assert not torch.equal(calls[-1][0]["pixel_values"], kwargs["pixel_values"])
    assert torch.equal(calls[-1][0]["input_ids"], kwargs["input_ids"])


def test_qwen2vl_tokenizer_must_match_the_model(qwen_dir, tmp_path):
    from transformers import AutoTokenizer

    other = tmp_path / "other"
    shutil.copytree(qwen_dir, other)
    n = 1 + len(SPECIAL) + len(WORDS)
    order = list(range(n))
    order[6], order[9] = order[9], order[6]  # <|image_pad|> moves: the tokenizer no longer fits the model
    scratch = save_tiny_qwen2vl(tmp_path / "scratch", vocab_order=order)
    AutoTokenizer.from_pretrained(scratch).save_pretrained(other)
    with pytest.raises(InputError, match="image token id"):
        build_captioner("qwen2vl", {"model_path": str(other)}).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="cannot load Qwen2-VL"):
        build_captioner("qwen2vl", {"model_path": str(tmp_path / "empty")}).load()
