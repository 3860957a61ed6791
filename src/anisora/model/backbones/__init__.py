"""Backbones beside CogVideoX (`anisora.model.pipeline`): each subclasses a diffusers pipeline and takes the
same guides, with `anisora.model.conditioning` the one place where guides and masks become model input."""
