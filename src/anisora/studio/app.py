"""`anisora studio`: the motion-comic web app (page + HTTP API with OpenAPI at /docs) over the job queue.

Every state change goes through the database, so the page is only a view: closing the browser changes
nothing, and several browsers, API clients and workers can share one studio. A server bound to anything but
loopback requires a token (header `Authorization: Bearer TOKEN`, or `?token=` once, which sets a cookie).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from ..errors import InputError
from . import jobs, service
from .db import Database, open_db
from .tts import EMOTIONS, engines, voices

try:
    from fastapi import FastAPI, File, HTTPException, Request, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from pydantic import BaseModel, Field
except ImportError:
    raise InputError("the studio needs the studio extra: pip install 'anisora[studio]'") from None

PAGE = Path(__file__).parent / "assets" / "studio.html"
COOKIE = "anisora_studio_token"
STALE_S = 60.0  # a running job whose worker has not reported for this long is re-queued


class CharacterBody(BaseModel):
    name: str = Field(max_length=service.MAX_NAME)
    engine: str = "espeak-ng"
    voice: str = "en-us"
    speed: float = 1.0
    pitch: float = 1.0


class EpisodeBody(BaseModel):
    title: str = Field(max_length=service.MAX_NAME)


class LineBody(BaseModel):
    text: str = Field(max_length=service.MAX_TEXT)
    character_id: int | None = None
    emotion: str = "neutral"


class KeyframeBody(BaseModel):
    at: float
    image: str


class ShotBody(BaseModel):
    panel: str
    prompt: str = Field("", max_length=service.MAX_PROMPT)
    presets: list[str] = []
    mask: str | None = None
    last_frame: str | None = None
    motion: float | None = None
    seconds: float | None = None
    seed: int = 0
    lines: list[LineBody] = []
    keyframes: list[KeyframeBody] = []


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(db: Database, data: Path, token: str | None = None, reaper: bool = True) -> FastAPI:
    """The app; `token` (None: no check) guards every route. With `reaper`, running jobs whose worker went
    silent are re-queued at start and every few seconds."""
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if reaper:
            jobs.requeue_stale(db, STALE_S)
            thread = threading.Thread(target=_reap, args=(db, stop), daemon=True)
            thread.start()
        yield
        stop.set()

    app = FastAPI(title="anisora studio", lifespan=lifespan)

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        if token is None:
            return await call_next(request)
        given = request.query_params.get("token")
        header = request.headers.get("authorization", "")
        offered = (
            given or (header[7:] if header.startswith("Bearer ") else None) or request.cookies.get(COOKIE)
        )
        if not offered or not hmac.compare_digest(offered, token):
            return JSONResponse(
                {"detail": "a token is required (Authorization: Bearer TOKEN)"}, status_code=401
            )
        response = await call_next(request)
        if given:  # remember it so the page's own requests and media need no token in the URL
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(InputError)
    async def bad_input(_request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(jobs.JobNotFound)  # an InputError, but a missing resource: 404, not 400
    async def no_job(_request: Request, exc: jobs.JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(LookupError)
    async def not_found(_request: Request, exc: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=404)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    @app.get("/api/options")
    def options() -> dict:
        """Quick prompts, emotions, voice engines (with why one is unavailable) and their voices."""
        available = engines()
        return {
            "quick_prompts": list(service.QUICK_PROMPTS),
            "emotions": list(EMOTIONS),
            "engines": {
                name: {"unavailable": why, "voices": voices(name) if why is None else []}
                for name, why in available.items()
            },
            "duration": {"min": service.MIN_S, "max": service.MAX_S},
        }

    @app.post("/api/uploads")
    async def upload(file: UploadFile = File(...)) -> dict:  # noqa: B008 (FastAPI's parameter style)
        content = await file.read(service.MAX_UPLOAD_BYTES + 1)
        return {"name": service.save_upload(data, content)}

    @app.get("/api/uploads/{name}")
    def uploaded(name: str) -> FileResponse:
        try:
            return FileResponse(service.upload_path(data, name), media_type="image/png")
        except InputError:
            raise HTTPException(404, "no such upload") from None

    @app.get("/api/characters")
    def characters() -> list[dict]:
        return service.list_characters(db)

    @app.post("/api/characters", status_code=201)
    def add_character(body: CharacterBody) -> dict:
        return service.create_character(db, service.CharacterIn(**body.model_dump()))

    @app.get("/api/episodes")
    def episodes() -> list[dict]:
        return service.list_episodes(db)

    @app.post("/api/episodes", status_code=201)
    def add_episode(body: EpisodeBody) -> dict:
        return service.create_episode(db, body.title)

    @app.get("/api/episodes/{episode_id}")
    def episode(episode_id: int) -> dict:
        return service.get_episode(db, episode_id)

    @app.post("/api/episodes/{episode_id}/shots", status_code=201)
    def add_shot(episode_id: int, body: ShotBody) -> dict:
        fields = body.model_dump()
        fields["lines"] = tuple(service.LineIn(**line) for line in fields["lines"])
        fields["presets"] = tuple(fields["presets"])
        fields["keyframes"] = tuple(service.KeyframeIn(**k) for k in fields["keyframes"])
        return service.create_shot(db, data, episode_id, service.ShotIn(**fields))

    @app.post("/api/episodes/{episode_id}/render")
    def render(episode_id: int, burn: bool = False) -> dict:
        return service.render_episode(db, data, episode_id, burn)

    @app.get("/api/episodes/{episode_id}/video")
    def episode_video(episode_id: int) -> FileResponse:
        return _result_file(
            data / "episodes" / f"episode{episode_id}" / "episode.mp4", f"episode{episode_id}.mp4"
        )

    @app.get("/api/episodes/{episode_id}/srt")
    def episode_srt(episode_id: int) -> FileResponse:
        return _result_file(
            data / "episodes" / f"episode{episode_id}" / "episode.srt", f"episode{episode_id}.srt"
        )

    @app.get("/api/shots/{shot_id}")
    def shot(shot_id: int) -> dict:
        return service.get_shot(db, shot_id)

    @app.post("/api/shots/{shot_id}/jobs", status_code=201)
    def enqueue(shot_id: int) -> dict:
        service.get_shot(db, shot_id)  # 404 for an unknown shot
        active = [
            j for j in jobs.list_jobs(db, shot_id=shot_id) if j["status"] in ("queued", "running", "paused")
        ]
        if active:
            raise HTTPException(
                409, f"shot {shot_id} already has job {active[0]['id']} ({active[0]['status']})"
            )
        return jobs.job_view(db, jobs.enqueue(db, shot_id))

    @app.get("/api/jobs")
    def list_jobs(status: str | None = None) -> list[dict]:
        return jobs.list_jobs(db, status)

    @app.get("/api/jobs/{job_id}")
    def job(job_id: int) -> dict:
        return jobs.job_view(db, job_id)

    @app.post("/api/jobs/{job_id}/{action}")
    def control(job_id: int, action: str) -> dict:
        actions = {"pause": jobs.pause, "resume": jobs.resume, "cancel": jobs.cancel, "retry": jobs.retry}
        if action not in actions:
            raise HTTPException(404, f"no action {action}; use pause, resume, cancel or retry")
        return actions[action](db, job_id)  # the job's view after the change

    @app.get("/api/jobs/{job_id}/{kind}")
    def result(job_id: int, kind: str) -> FileResponse:
        if kind not in ("video", "srt", "wav"):
            raise HTTPException(404, "results are video, srt and wav")
        view = jobs.job_view(db, job_id)
        if view["status"] != "done":
            raise HTTPException(409, f"job {job_id} is {view['status']}, not done")
        path = data / view["result"][kind]
        return _result_file(path, f"shot{view['shot_id']}-job{job_id}{path.suffix}")

    return app


def _result_file(path: Path, name: str) -> FileResponse:
    if not path.is_file():
        raise HTTPException(404, "not made yet")
    types = {".mp4": "video/mp4", ".srt": "application/x-subrip", ".wav": "audio/wav"}
    return FileResponse(path, media_type=types[path.suffix], filename=name)


def _reap(db: Database, stop: threading.Event, every: float = 5.0) -> None:
    while not stop.wait(every):
        jobs.requeue_stale(db, STALE_S)


def serve(
    data: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    db_url: str | None = None,
    token: str | None = None,
    workers: int = 1,
    model: str | None = None,
    steps: int = 25,
    burn_subtitles: bool = False,
) -> None:
    """Serve the app and run `workers` worker threads in this process (0: only external workers)."""
    import uvicorn

    from .worker import Worker

    data = Path(data)
    data.mkdir(parents=True, exist_ok=True)
    db = open_db(db_url or f"sqlite:///{(data / 'studio.sqlite').resolve()}")
    if not is_loopback(host) and token is None:
        token = secrets.token_urlsafe(24)
        print(f"token (required off loopback): {token}")
    jobs.requeue_dead_local(db)  # jobs this machine was running when the server died
    stop = threading.Event()
    for _ in range(workers):
        worker = Worker(db, data, model, steps, burn_subtitles)
        threading.Thread(target=worker.run_forever, args=(stop,), daemon=True).start()
    shown = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"anisora studio at {shown} (API docs at /docs); data in {data}; Ctrl-C to stop", flush=True)
    try:
        uvicorn.run(create_app(db, data, token), host=host, port=port, log_level="warning")
    finally:
        stop.set()
