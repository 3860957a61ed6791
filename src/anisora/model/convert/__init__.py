"""Converters from the official AniSora release layouts to diffusers directories, streamed tensor by tensor.

`sat_v1` turns AniSora V1 (CogVideoX-5B in SAT format) into a CogVideoX directory; `wan` turns the Wan2.1
releases (V2, V3, V3.1, anymask) and Wan2.2's two experts (V3.2) into a Wan directory. `anisora convert`
is the command layer (`cli.py`).
"""
