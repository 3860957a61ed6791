"""`anisora studio` and `anisora worker`: the command layer over the studio app and its worker."""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path


def _studio(args: argparse.Namespace) -> int:
    from .app import serve

    token = args.token or os.environ.get("ANISORA_STUDIO_TOKEN")
    serve(
        args.data,
        args.host,
        args.port,
        args.db,
        token,
        args.workers,
        args.model,
        args.steps,
        args.burn_subtitles,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .db import open_db
    from .worker import Worker

    worker = Worker(open_db(args.db), args.data, args.model, args.steps, args.burn_subtitles)
    print(f"worker {worker.worker_id} on {args.db}; Ctrl-C to stop", flush=True)
    worker.run_forever(threading.Event())
    return 0


def add_studio_parsers(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("studio", help="serve the motion-comic studio (web page, API, queue, worker)")
    st.add_argument(
        "--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need a token)"
    )
    st.add_argument("--port", type=int, default=8000)
    st.add_argument("--data", type=Path, default=Path("studio-data"), help="media and SQLite folder")
    st.add_argument(
        "--db", help="database URL (default sqlite:///DATA/studio.sqlite; postgresql://... for many hosts)"
    )
    st.add_argument(
        "--token", help="access token (default: $ANISORA_STUDIO_TOKEN, else generated off loopback)"
    )
    st.add_argument(
        "--workers", type=int, default=1, help="worker threads in this process (0: external only)"
    )
    st.add_argument("--model", help="model folder (default: the shipped demo model)")
    st.add_argument("--steps", type=int, help="sampling steps per clip (default: the model's)")
    st.add_argument("--burn-subtitles", action="store_true", help="also draw the subtitles into the video")
    st.set_defaults(func=_studio)

    wo = sub.add_parser("worker", help="run a studio worker against a shared database")
    wo.add_argument("--db", required=True, help="the studio's database URL")
    wo.add_argument("--data", type=Path, required=True, help="the studio's data folder (shared storage)")
    wo.add_argument("--model", help="model folder (default: the shipped demo model)")
    wo.add_argument("--steps", type=int, help="sampling steps per clip (default: the model's)")
    wo.add_argument("--burn-subtitles", action="store_true", help="also draw the subtitles into the video")
    wo.set_defaults(func=_worker)
