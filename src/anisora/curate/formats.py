"""The exported training set in the tables training tools read, paths relative to the export folder:

- `metadata.jsonl` (`file_name`, `text`) and a dataset card `README.md` whose YAML names the clips and that
  file as the train split: `datasets.load_dataset(OUT)` gives each clip with its prompt (a video folder).
  The card is what makes it robust: without it `datasets` infers splits from file names, so `train.parquet`
  beside the clips, or a clip cut from "show_test_01.mkv", would hide clips in the wrong split;
- `opensora.csv` (`path,text,num_frames,height,width,fps,aes,flow,ocr`): Open-Sora's data table, with the
  written clip's own frame count, size and rate, the aesthetic score (empty without an aesthetic model),
  the motion score as `flow` and the text area share as `ocr`;
- `prompt.txt` and `videos.txt`: finetrainers' line-aligned prompts and clip paths (a prompt's line breaks
  become spaces, as one line must hold it);
- `train.jsonl` (`video`, `prompt`): this project's own `anisora train` reads `train.parquet` beside it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..files import atomic_output
from ..media import probe

OPENSORA_COLUMNS = ("path", "text", "num_frames", "height", "width", "fps", "aes", "flow", "ocr")


def write_training_tables(out: Path, records: Sequence[dict]) -> None:
    """Every table of the module docstring for `records` (manifest rows with `clip_path` relative to
    `out` and `prompt`), each written atomically."""
    prompts = [" ".join(str(r["prompt"]).split()) for r in records]
    pairs = list(zip([r["clip_path"] for r in records], prompts, strict=True))
    _write(out / "metadata.jsonl", "".join(_line({"file_name": p, "text": t}) for p, t in pairs))
    _write(out / "train.jsonl", "".join(_line({"video": p, "prompt": t}) for p, t in pairs))
    _write(out / "prompt.txt", "".join(t + "\n" for _, t in pairs))
    _write(out / "videos.txt", "".join(p + "\n" for p, _ in pairs))
    _write(out / "opensora.csv", _opensora(out, records, prompts))
    _write(out / "README.md", _dataset_card(len(pairs)))


def _dataset_card(count: int) -> str:
    split = {"split": "train", "path": ["clips/*.mp4", "metadata.jsonl"]}
    front = yaml.safe_dump({"configs": [{"config_name": "default", "data_files": [split]}]}, sort_keys=False)
    body = (
        f"{count} clips exported by `anisora curate export`, each with its training prompt. "
        '`datasets.load_dataset("path/to/this/folder")` loads them; `opensora.csv`, `prompt.txt` + '
        "`videos.txt` and `train.parquet` describe the same clips for Open-Sora, finetrainers and "
        "`anisora train`."
    )
    return f"---\n{front}---\n\n# Training clips\n\n{body}\n"


def _opensora(out: Path, records: Sequence[dict], prompts: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OPENSORA_COLUMNS)
    for record, text in zip(records, prompts, strict=True):
        clip = probe(out / record["clip_path"])
        scores = [record.get(k) for k in ("aesthetic_score", "motion_score", "text_area")]
        writer.writerow(
            [record["clip_path"], text, clip.frame_count, clip.height, clip.width, round(clip.fps, 6)]
            + ["" if v is None else v for v in scores]
        )
    return buffer.getvalue()


def _line(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def _write(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
