"""`anisora studio` and `anisora worker`: the command layer over the studio app and its worker."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from ..errors import InputError


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
        args.guide_fit_steps,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .supervisor import on_stop_signals, supervise, worker_devices

    # first, so that a stop asked while torch and the model load (seconds on a busy machine) ends the
    # worker cleanly instead of killing it
    stop = threading.Event()
    on_stop_signals(stop)
    from ..model.loading import check_load
    from ..model.request import LoadOptions
    from ..model.weights import demo_model_dir
    from .db import open_db
    from .worker import Worker, resolve_device

    if not args.data.is_dir():
        raise InputError(f"data folder {args.data} does not exist: give the studio's (on shared storage)")
    devices = worker_devices(args.devices) if args.devices else [args.device]
    devices = [resolve_device(device) for device in devices]  # an unknown or missing device: one line, now
    check_load(LoadOptions(str(args.model or demo_model_dir())))  # and so is a folder that is no model
    if len(devices) > 1:
        return supervise([_worker_command(args, device) for device in devices], stop)
    db = open_db(args.db)
    worker = Worker(
        db,
        args.data,
        args.model,
        args.steps,
        args.burn_subtitles,
        device=devices[0],
        model_name=args.model_name,
        guide_fit_steps=args.guide_fit_steps,
    )
    print(f"worker {worker.worker_id} on {db.display_url}; Ctrl-C to stop", flush=True)
    worker.run_forever(stop)
    return 0


def _worker_command(args: argparse.Namespace, device: str) -> list[str]:
    """The `anisora worker` command line of one device's worker process."""
    command = [sys.executable, "-m", "anisora.cli", "worker", "--device", device]
    command += ["--quiet"] if args.quiet else ["--verbose"] * args.verbose
    command += ["--db", args.db, "--data", str(args.data)]
    options = [("--model", args.model), ("--model-name", args.model_name), ("--steps", args.steps)]
    for flag, value in [*options, ("--guide-fit-steps", args.guide_fit_steps)]:
        if value is not None:
            command += [flag, str(value)]
    return command + (["--burn-subtitles"] if args.burn_subtitles else [])


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
    st.add_argument(
        "--guide-fit-steps",
        type=int,
        help="decoder steps fitting each clip's guides (default: the model's; 0: off, quicker on a CPU)",
    )
    st.add_argument("--burn-subtitles", action="store_true", help="also draw the subtitles into the video")
    st.set_defaults(func=_studio, log_timestamps=True)

    wo = sub.add_parser("worker", help="run studio workers (one per device) against a shared database")
    wo.add_argument("--db", required=True, help="the studio's database URL")
    wo.add_argument("--data", type=Path, required=True, help="the studio's data folder (shared storage)")
    where = wo.add_mutually_exclusive_group()
    where.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    where.add_argument(
        "--devices",
        help="one worker process per device: 'all' (every visible GPU; one cpu worker without one) or a list,"
        " e.g. cuda:0,cuda:1 (cpu,cpu: two CPU workers)",
    )
    wo.add_argument("--model", help="model folder (default: the shipped demo model)")
    wo.add_argument(
        "--model-name", help="the name jobs ask for this model by (default: the model folder's name)"
    )
    wo.add_argument("--steps", type=int, help="sampling steps per clip (default: the model's)")
    wo.add_argument(
        "--guide-fit-steps",
        type=int,
        help="decoder steps fitting each clip's guides (default: the model's; 0: off, quicker on a CPU)",
    )
    wo.add_argument("--burn-subtitles", action="store_true", help="also draw the subtitles into the video")
    wo.set_defaults(func=_worker, log_timestamps=True)
