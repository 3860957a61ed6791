"""The masking strategy and the training config."""

import numpy as np
import pytest
from pydantic import ValidationError

from anisora.errors import InputError
from anisora.model.conditioning import latent_index
from anisora.train.config import load_train_config
from anisora.train.masking import MaskingConfig, sample_guide_frames


def test_guide_frequencies_follow_the_paper():
    config = MaskingConfig()
    draws = [sample_guide_frames(33, np.random.default_rng([7, i]), config) for i in range(4000)]
    first = np.mean([0 in d for d in draws])
    last = np.mean([32 in d for d in draws])
    other = np.mean([any(0 < f < 32 for f in d) for d in draws])
    none = np.mean([not d for d in draws])
    # each opened with p = 0.5 after the 5% that drop all: 0.95 * 0.5 = 0.475
    for share in (first, last, other):
        assert 0.44 < share < 0.51
    assert 0.05 + 0.95 * 0.125 - 0.03 < none < 0.05 + 0.95 * 0.125 + 0.03
    for d in draws:  # on distinct latent frames, in order, inside the clip
        assert d == sorted(d) and len({latent_index(f) for f in d}) == len(d) and all(0 <= f < 33 for f in d)


def test_images_and_short_clips():
    config = MaskingConfig(p_first=1, p_last=1, p_other=1, p_drop_all=0)
    assert sample_guide_frames(1, np.random.default_rng(0), config) == []  # the image task has no guide
    middle = sample_guide_frames(9, np.random.default_rng(0), config)
    assert middle[0] == 0 and middle[-1] == 8 and 1 <= middle[1] <= 4
    with pytest.raises(ValidationError, match="p_first"):
        MaskingConfig(p_first=1.5)


def test_train_config_defaults_and_errors(tmp_path):
    config = load_train_config(None)
    assert config.masking.p_drop_all == 0.05 and config.optim.steps > 0
    path = tmp_path / "stage.yaml"
    path.write_text("optim:\n  stepz: 3\n")
    with pytest.raises(InputError, match=r"stage\.yaml: optim\.stepz: unknown key \(did you mean steps\?\)"):
        load_train_config(path)
    path.write_text("masking:\n  p_first: 0.9\n")
    assert load_train_config(path, {"optim": {"steps": 7}}).optim.steps == 7
    assert load_train_config(path).masking.p_first == 0.9
