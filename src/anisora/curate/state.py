"""The run's state in `DIR/state.sqlite`: which videos are finished, their candidate rows, cached scores.

Only the parent process writes, one transaction per video, so a run killed at any moment (kill -9) leaves
every video either fully recorded or not at all; the next run redoes exactly the unfinished ones.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY, path TEXT NOT NULL, fingerprint TEXT NOT NULL, analysis_key TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, stage TEXT, info TEXT, seconds REAL
);
CREATE TABLE IF NOT EXISTS clips (
    clip_id TEXT PRIMARY KEY, video_id TEXT NOT NULL, position INTEGER NOT NULL, row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS clips_by_video ON clips (video_id, position);
CREATE TABLE IF NOT EXISTS scores (
    video_key TEXT NOT NULL, span TEXT NOT NULL, cache_key TEXT NOT NULL, scores TEXT NOT NULL,
    PRIMARY KEY (video_key, span, cache_key)
);
"""


class RunState:
    def __init__(self, out_dir: Path):
        self.db = sqlite3.connect(out_dir / "state.sqlite")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def finished(self, video_id: str, fingerprint: str, analysis_key: str) -> bool:
        """True when this exact file was already processed (or failed) with the same analysis settings."""
        row = self.db.execute(
            "SELECT 1 FROM videos WHERE video_id = ? AND fingerprint = ? AND analysis_key = ?",
            (video_id, fingerprint, analysis_key),
        ).fetchone()
        return row is not None

    def cached_scores(self, video_id: str, fingerprint: str) -> dict[str, dict[str, dict]]:
        cached: dict[str, dict[str, dict]] = {}
        for span, key, scores in self.db.execute(
            "SELECT span, cache_key, scores FROM scores WHERE video_key = ?", (f"{video_id}:{fingerprint}",)
        ):
            cached.setdefault(span, {})[key] = json.loads(scores)
        return cached

    def record(self, result, analysis_key: str) -> None:
        """Store one video's outcome atomically (replacing what an earlier run stored for it)."""
        with self.db:
            self.db.execute("DELETE FROM clips WHERE video_id = ?", (result.video_id,))
            self.db.execute(
                "INSERT OR REPLACE INTO videos VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.video_id,
                    result.path,
                    result.fingerprint,
                    analysis_key,
                    "done" if result.ok else "failed",
                    result.error,
                    result.stage,
                    json.dumps(result.video),
                    result.seconds,
                ),
            )
            self.db.executemany(
                "INSERT INTO clips VALUES (?, ?, ?, ?)",
                [(r["clip_id"], result.video_id, i, json.dumps(r)) for i, r in enumerate(result.rows)],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                [
                    (f"{result.video_id}:{result.fingerprint}", span, key, json.dumps(values))
                    for span, key, values in result.scores
                ],
            )

    def rows(self) -> list[dict]:
        """Every candidate row of every finished video, in a stable order (source path, then position)."""
        query = """SELECT clips.row FROM clips JOIN videos USING (video_id)
                   WHERE videos.status = 'done' ORDER BY videos.path, clips.position"""
        return [json.loads(r) for (r,) in self.db.execute(query)]

    def failures(self) -> list[dict]:
        query = "SELECT path, error, stage FROM videos WHERE status = 'failed' ORDER BY path"
        return [{"source": p, "error": e, "stage": s} for p, e, s in self.db.execute(query)]

    def videos(self) -> list[dict]:
        query = "SELECT path, status, info, seconds FROM videos ORDER BY path"
        return [
            {"source": p, "status": s, **json.loads(i or "{}"), "seconds": t}
            for p, s, i, t in self.db.execute(query)
        ]
