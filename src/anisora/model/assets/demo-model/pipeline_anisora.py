"""diffusers loads AnisoraPipeline, from the installed `anisora` package, with
`DiffusionPipeline.from_pretrained(this_folder, trust_remote_code=True)`."""

from anisora.model.pipeline import AnisoraPipeline

__all__ = ["AnisoraPipeline"]
