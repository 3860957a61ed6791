"""The double-blind human test: raters compare two anonymised videos of the same benchmark case.

`RatingSession` pairs the videos of 2+ run directories (see `anisora evaluate run`): an item is one case and
one unordered pair of runs that both have `videos/<case>.mp4`. `RatingStore` keeps assignments (a random
token per shown pair, with the hidden left/right runs) and votes in SQLite; `win_rates` turns the votes into
per-pair win rates with 95% Wilson score intervals. Raters only ever see tokens, prompts and tasks, never
which run is which. The web page lives in `rating_app`.

Who rates is never the client's word: a rater is an invitation (`RatingStore.invite`: a secret token per
invited person, stored in the votes file, whose votes count as one rater, "rater-N"), or, for requests from
this machine without one, the single local rater "local".
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import secrets
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from ..errors import InputError
from .cases import CASE_ID
from .results import run_file

CHOICES = ("left", "right", "tie")
SIDES = ("left", "right")
LOCAL_RATER = "local"  # whoever rates from this machine without an invitation
Z_95 = 1.959963984540054

_SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS runs (name TEXT PRIMARY KEY, dir TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invitations (
    token TEXT PRIMARY KEY, rater TEXT NOT NULL UNIQUE, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    token TEXT PRIMARY KEY, case_id TEXT NOT NULL, task TEXT,
    left_run TEXT NOT NULL, right_run TEXT NOT NULL, rater TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    token TEXT PRIMARY KEY REFERENCES assignments (token), case_id TEXT NOT NULL, task TEXT,
    left_run TEXT NOT NULL, right_run TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie')), rater TEXT NOT NULL,
    created TEXT NOT NULL
);
-- one vote per rater and item, whichever token (two open tabs) or side order it came through
CREATE UNIQUE INDEX IF NOT EXISTS one_vote_per_item
    ON votes (rater, case_id, min(left_run, right_run), max(left_run, right_run));
"""


class UnknownTokenError(InputError):
    """No pair was handed out under this token (or it belongs to runs this session does not serve)."""


class DuplicateVoteError(InputError):
    """The rater has already voted on this pair (through this token or another one)."""


class NotInvitedError(InputError):
    """A request from another machine without a valid invitation."""


class Item(NamedTuple):
    """One comparable unit: a case and an unordered pair of run names, a < b."""

    case: str
    a: str
    b: str


@dataclass(frozen=True)
class CaseInfo:
    task: str | None = None
    label: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class Run:
    name: str
    dir: Path
    cases: dict[str, CaseInfo]  # the cases with videos/<case>.mp4, and what results.jsonl says of them

    def video(self, case: str) -> Path:
        return self.dir / "videos" / f"{case}.mp4"


@dataclass(frozen=True)
class Assignment:
    token: str
    case: str
    task: str | None
    left: str
    right: str
    rater: str


@dataclass(frozen=True)
class Vote:
    case: str
    task: str | None
    left: str
    right: str
    choice: str
    rater: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_rated_run(path: str | Path) -> Run:
    """A run directory: its name (run.json), its case videos and, when present, results.jsonl's metadata."""
    run_dir = Path(os.path.realpath(path))  # realpath: a symlink loop is a folder that holds no run
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{run_dir}: not a run directory (no run.json)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{run_dir / 'run.json'}: unreadable: {exc}") from None
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{run_dir / 'run.json'}: no run name")
    videos = sorted(
        p.stem for p in (run_dir / "videos").glob("*.mp4") if CASE_ID.fullmatch(p.stem) and p.is_file()
    )
    records = _read_results(run_dir / "results.jsonl")
    cases = {}
    for case in videos:
        record = records.get(case, {})
        cases[case] = CaseInfo(record.get("task"), record.get("label"), record.get("prompt"))
    return Run(name.strip(), run_dir, cases)


def _read_results(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    records = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                records[record["case"]] = record
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{path}:{number}: not a result record") from None
    return records


def _merge_case_info(runs: Sequence[Run]) -> dict[str, CaseInfo]:
    """One CaseInfo per case, each field from the first run that has it; runs that disagree on a case's
    prompt or task compare different things."""
    merged: dict[str, CaseInfo] = {}
    for run in runs:
        for case, info in run.cases.items():
            known = merged.get(case, CaseInfo())
            for field in ("prompt", "task"):
                mine, theirs = getattr(info, field), getattr(known, field)
                if mine is not None and theirs is not None and mine != theirs:
                    raise InputError(
                        f"case {case!r} has a different {field} in run {run.name!r} than in the runs before "
                        f"it ({mine!r}, not {theirs!r}): compare runs of the same benchmark"
                    )
            fields = zip(astuple(known), astuple(info), strict=True)
            merged[case] = CaseInfo(*(old or new for old, new in fields))
    return merged


class RatingStore:
    """Assignments and votes in one SQLite file (WAL). A connection per call, so any thread may use it."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InputError(f"{self.path}: no such ratings database")
        try:
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a ratings database: {exc}") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: cannot open the ratings database: {exc}") from None
        try:
            with db:  # one transaction: commit on success, roll back on error
                yield db
        finally:
            db.close()

    def register_runs(self, runs: Sequence[Run]) -> None:
        """Record where each run name comes from; a name already bound to another directory is refused,
        since its votes would mix two systems."""
        with self._connect() as db:
            for run in runs:
                row = db.execute("SELECT dir FROM runs WHERE name = ?", (run.name,)).fetchone()
                if row is None:
                    db.execute("INSERT INTO runs VALUES (?, ?, ?)", (run.name, str(run.dir), _now()))
                elif row[0] != str(run.dir):
                    raise InputError(
                        f"run name {run.name!r} is already used in {self.path} by {row[0]}, not {run.dir}: "
                        "give each system its own name (--name at run time) or use another --db"
                    )

    def invite(self, count: int) -> list[str]:
        """`count` new invitation tokens, one per rater, named rater-N on from the invitations before."""
        if count < 1:
            raise InputError(f"invite at least one rater, not {count}")
        tokens = [secrets.token_urlsafe(16) for _ in range(count)]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # count and insert under one write lock: numbers never clash
            (before,) = db.execute("SELECT count(*) FROM invitations").fetchone()
            db.executemany(
                "INSERT INTO invitations VALUES (?, ?, ?)",
                [(token, f"rater-{before + i}", _now()) for i, token in enumerate(tokens, 1)],
            )
        return tokens

    def invited_rater(self, token: str) -> str | None:
        """The rater an invitation token stands for; None for a token never issued."""
        with self._connect() as db:
            row = db.execute("SELECT rater FROM invitations WHERE token = ?", (token,)).fetchone()
        return row[0] if row else None

    def assign(self, case: str, task: str | None, left: str, right: str, rater: str) -> str:
        """Hand out a pair under a new random token."""
        token = secrets.token_urlsafe(16)
        with self._connect() as db:
            db.execute(
                "INSERT INTO assignments VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token, case, task, left, right, rater, _now()),
            )
        return token

    def assignment(self, token: str) -> Assignment | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT token, case_id, task, left_run, right_run, rater FROM assignments WHERE token = ?",
                (token,),
            ).fetchone()
        return Assignment(*row) if row else None

    def vote(self, token: str, choice: str, rater: str) -> None:
        if choice not in CHOICES:
            raise InputError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
        with self._connect() as db:
            row = db.execute(
                "SELECT case_id, task, left_run, right_run, rater FROM assignments WHERE token = ?", (token,)
            ).fetchone()
            if row is None:
                raise UnknownTokenError("unknown token: this pair was never handed out")
            case, task, left, right, owner = row
            if owner != rater:
                raise InputError("this pair was handed out to another rater")
            try:
                db.execute(
                    "INSERT INTO votes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (token, case, task, left, right, choice, rater, _now()),
                )
            except sqlite3.IntegrityError:
                raise DuplicateVoteError(f"{rater} has already voted on this pair") from None

    def votes(self) -> list[Vote]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT case_id, task, left_run, right_run, choice, rater FROM votes ORDER BY created, rowid"
            ).fetchall()
        return [Vote(*row) for row in rows]

    def vote_counts(self, rater: str | None = None) -> Counter[Item]:
        """Votes per item, of every rater or of one."""
        query = "SELECT case_id, min(left_run, right_run), max(left_run, right_run), count(*) FROM votes"
        args: tuple[str, ...] = ()
        if rater is not None:
            query += " WHERE rater = ?"
            args = (rater,)
        query += " GROUP BY 1, 2, 3"
        with self._connect() as db:
            return Counter({Item(case, a, b): n for case, a, b, n in db.execute(query, args)})


def _input_images(run_dirs: list[Path]) -> dict[str, Path]:
    """{case: its guide image at frame 0} from the bench files the runs name (run.json "bench")."""
    from .cases import load_bench

    images: dict[str, Path] = {}
    for run_dir in run_dirs:
        try:
            run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        bench = run_file(run_dir, run.get("bench")) if isinstance(run, dict) else None
        if bench is None or not bench.is_file():
            continue
        for case in load_bench(bench).cases:
            first = [g.image for g in case.request.guides if g.at_start]
            if first and case.id not in images:
                images[case.id] = first[0]
    return images


class RatingSession:
    """Pairs the videos of 2+ runs for raters; the page's backend, free of any web framework."""

    def __init__(
        self, run_dirs: Sequence[str | Path], store: RatingStore, *, rng: random.Random | None = None
    ):
        runs = [load_rated_run(d) for d in run_dirs]
        if len(runs) < 2:
            raise InputError("a blind comparison needs at least two run directories")
        names = Counter(run.name for run in runs)
        if twice := sorted(name for name, n in names.items() if n > 1):
            raise InputError(
                f"run name {twice[0]!r} is used by more than one run directory: "
                "name each system at run time (anisora evaluate run --name NAME)"
            )
        self.runs = {run.name: run for run in runs}
        self.cases = _merge_case_info(runs)
        self.items = [
            Item(case, a.name, b.name)
            for case in sorted(self.cases)
            for a, b in itertools.combinations(sorted(runs, key=lambda r: r.name), 2)
            if case in a.cases and case in b.cases
        ]
        if not self.items:
            raise InputError("no case has a video (videos/<case>.mp4) in two of the given runs")
        self.inputs = _input_images([Path(d) for d in run_dirs])
        self.store = store
        self.rng = rng or random.SystemRandom()
        store.register_runs(runs)

    def rater(self, invite: str | None, local: bool) -> str:
        """Who is rating: the rater of a valid invitation, else, for a request from this machine (`local`),
        the local rater; anyone else is refused."""
        if invite:
            rater = self.store.invited_rater(invite)
            if rater is None:
                raise NotInvitedError("this invitation is not valid: ask for a new invitation link")
            return rater
        if not local:
            raise NotInvitedError("rating from another machine needs an invitation link")
        return LOCAL_RATER

    def next_pair(self, rater: str) -> dict | None:
        """A new pair for this rater (see `rater`): among the items they have not voted on, one of those with
        the fewest votes overall, sides in random order. None when they have voted on every item. The
        answer names no run: the videos are fetched by token and side."""
        mine = self.store.vote_counts(rater)
        todo = [item for item in self.items if item not in mine]
        if not todo:
            return None
        counts = self.store.vote_counts()
        fewest = min(counts[item] for item in todo)
        item = self.rng.choice([item for item in todo if counts[item] == fewest])
        left, right = self.rng.sample([item.a, item.b], 2)
        info = self.cases[item.case]
        token = self.store.assign(item.case, info.task, left, right, rater)
        return {
            "token": token,
            "case": item.case,
            "prompt": info.prompt,
            "task": info.task,
            "label": info.label,
            "image": item.case in self.inputs,  # fetched by token, like the videos
        }

    def image(self, token: str) -> Path | None:
        """The case's input image (its guide at frame 0, from the runs' bench), if it has one."""
        assignment = self.store.assignment(token)
        if assignment is None:
            raise UnknownTokenError(f"unknown token {token!r}")
        return self.inputs.get(assignment.case)

    def video(self, token: str, side: str) -> Path:
        """The mp4 shown on one side of a handed-out pair."""
        if side not in SIDES:
            raise InputError(f"side must be left or right, not {side!r}")
        assignment = self.store.assignment(token)
        run = self.runs.get(getattr(assignment, side)) if assignment else None
        if run is None or assignment.case not in run.cases:
            raise UnknownTokenError("unknown token: this pair was never handed out")
        return run.video(assignment.case)

    def vote(self, token: str, choice: str, rater: str) -> None:
        self.store.vote(token, choice, rater)

    def progress(self, rater: str) -> tuple[int, int]:
        """(items this rater has voted on, items in this session)."""
        mine = self.store.vote_counts(rater)
        return sum(item in mine for item in self.items), len(self.items)


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes may be fractional: ties count half)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class WinRate:
    """Votes between runs a and b (a < b), over all tasks (task None) or one task."""

    a: str
    b: str
    task: str | None
    n: int
    wins_a: int
    wins_b: int
    ties: int
    raters: int

    @property
    def rate(self) -> float:
        """Win rate of a, ties counted half."""
        return (self.wins_a + self.ties / 2) / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.wins_a + self.ties / 2, self.n)


def win_rates(store: RatingStore) -> list[WinRate]:
    """Per unordered pair of runs: one row over all tasks, then one per task, in name and task order."""
    groups: dict[tuple[str, str, str | None], list[tuple[str | None, str]]] = defaultdict(list)
    for vote in store.votes():
        a, b = sorted((vote.left, vote.right))
        winner = {"left": vote.left, "right": vote.right}.get(vote.choice)  # None for a tie
        outcome = "tie" if winner is None else "a" if winner == a else "b"
        groups[a, b, None].append((vote.rater, outcome))
        if vote.task is not None:
            groups[a, b, vote.task].append((vote.rater, outcome))
    rates = []
    for (a, b, task), outcomes in groups.items():
        counts = Counter(outcome for _, outcome in outcomes)
        raters = len({rater for rater, _ in outcomes})
        rates.append(WinRate(a, b, task, len(outcomes), counts["a"], counts["b"], counts["tie"], raters))
    return sorted(rates, key=lambda r: (r.a, r.b, r.task is not None, r.task or ""))


def format_win_rates(rates: Sequence[WinRate]) -> str:
    """A plain-text table of win rates (A = the first name of each pair)."""
    if not rates:
        return "no votes yet"
    header = (
        "model A",
        "model B",
        "task",
        "votes",
        "raters",
        "A wins",
        "B wins",
        "ties",
        "A win rate",
        "95% CI",
    )
    rows = [
        (
            r.a,
            r.b,
            r.task or "all",
            str(r.n),
            str(r.raters),
            str(r.wins_a),
            str(r.wins_b),
            str(r.ties),
            f"{r.rate:.3f}",
            "[{:.3f}, {:.3f}]".format(*r.interval),
        )
        for r in rates
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    left_aligned = 3  # names and task; numbers are right-aligned

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left_aligned else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    notes = "A win rate = (A wins + ties / 2) / votes; 95% Wilson score interval."
    return "\n".join([line(header), *(line(row) for row in rows), "", notes])
