"""`anisora studio`: the motion-comic web app (page + HTTP API with OpenAPI at /docs) over the job queue.

Every state change goes through the database, so the page is only a view: closing the browser changes
nothing, and several browsers, API clients and workers can share one studio. A server bound to anything but
loopback requires a token (header `Authorization: Bearer TOKEN`, or `?token=` once, which sets a cookie); one
on loopback without a token answers only requests that name a loopback Host and, when they send an Origin,
come from that same host (no cross-site requests, no DNS rebinding). Every request body has a size limit,
checked before it is read and while it streams. Every refusal is one line of JSON: {"detail": "..."}.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from ..errors import InputError
from . import jobs, models, service, videos
from .db import Database, Shot, open_db
from .tts import EMOTIONS, engines, voices

try:
    from fastapi import FastAPI, File, HTTPException, Request, UploadFile
    from fastapi import Path as PathParameter
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from fastapi_offline import FastAPIOffline
    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
    from starlette.datastructures import Headers
except ImportError:
    raise InputError(
        "the studio needs the project's studio extra: run `make install`"
        " (or `pip install -e '.[studio]'` in the AniSora-open checkout)"
    ) from None

PAGE = Path(__file__).parent / "assets" / "studio.html"
COOKIE = "anisora_studio_token"
MULTIPART_SLACK = 64 * 1024  # room in an upload's body for its multipart envelope around the image
MAX_DETAIL = 300  # characters of an error message; the rest of what a client sent is never echoed


def _unicode(value):
    if isinstance(value, str) and not service.is_unicode(value):
        raise ValueError("not valid Unicode text (it has a lone surrogate)")
    return value


def _text(limit: int):
    """A string of at most `limit` characters that a UTF-8 file or database can hold."""
    return Annotated[str, Field(max_length=limit), BeforeValidator(_unicode)]


Name, Line, Prompt, Preset = (
    _text(n) for n in (service.MAX_NAME, service.MAX_TEXT, service.MAX_PROMPT, service.MAX_PRESET)
)
Label = _text(200)  # an engine, voice, emotion or upload name
Id = Annotated[int, Field(ge=1, le=service.MAX_ID)]
PathId = Annotated[int, PathParameter(ge=1, le=service.MAX_ID)]


class Body(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)


class CharacterBody(Body):
    name: Name
    engine: Label = "espeak-ng"
    voice: Label = "en-us"
    speed: float = 1.0
    pitch: float = 1.0


class EpisodeBody(Body):
    title: Name


class JobBody(Body):
    model: Label | None = None  # only workers serving this model take the job; None: any worker


class LineBody(Body):
    text: Line
    character_id: Id | None = None
    emotion: Label = "neutral"


class KeyframeBody(Body):
    at: float
    image: Label


class MouthBody(Body):
    character_id: Id
    mask: Label


class ShotBody(Body):
    panel: Label
    prompt: Prompt = ""
    presets: list[Preset] = Field([], max_length=service.MAX_PRESETS)
    mask: Label | None = None
    last_frame: Label | None = None
    motion: float | None = None
    seconds: float | None = None
    seed: int = Field(0, ge=0, le=service.MAX_SEED)
    lines: list[LineBody] = Field([], max_length=service.MAX_LINES)
    keyframes: list[KeyframeBody] = Field([], max_length=service.MAX_KEYFRAMES)
    mouths: list[MouthBody] = Field([], max_length=service.MAX_MOUTHS)
    animate_mouths: bool = True


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: "[::1]:8000" -> "::1", "localhost:8000" -> "localhost"."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def _error(status: int, detail: str) -> JSONResponse:
    """A refusal as one short line, whatever the client sent."""
    line = " ".join(detail.split())
    line = line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."
    return JSONResponse({"detail": line.encode("utf-8", "replace").decode("utf-8")}, status_code=status)


def _foreign(request: Request) -> JSONResponse | None:
    """On loopback without a token: the refusal of a request from another site, or aimed at another name
    (DNS rebinding); None for this machine's own."""
    host = request.headers.get("host", "")
    if not is_loopback(_host_name(host)):
        return _error(421, f"this studio answers only to a loopback host name, not to {host!r}")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return _error(403, f"a request from another site ({origin!r}) is refused")
    return None


def _offered_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else None  # auth schemes are case-insensitive
    return request.query_params.get("token") or bearer or request.cookies.get(COOKIE)


def _same_token(offered: str, token: str) -> bool:
    # as bytes: compare_digest refuses str with non-ASCII characters
    return hmac.compare_digest(offered.encode("utf-8", "replace"), token.encode("utf-8"))


def _body_limit(path: str) -> tuple[str, int, int]:
    """What a request's body is, its limit as told and as enforced."""
    if path == "/api/uploads":
        return "upload", service.MAX_UPLOAD_BYTES, service.MAX_UPLOAD_BYTES + MULTIPART_SLACK
    if path == "/v1/videos":
        return "video request", videos.MAX_CREATE_BYTES, videos.MAX_CREATE_BYTES
    return "request body", service.MAX_BODY_BYTES, service.MAX_BODY_BYTES


class BodyLimit:
    """ASGI middleware: a body over its limit is refused unread when its Content-Length says so, else as soon
    as it streams past the limit: no request holds more than its limit in memory or on disk."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        what, told, limit = _body_limit(scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            refusal = _error(413, str(service.too_large(what, told, int(declared))))
            return await refusal(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # FastAPI passes an HTTPException from reading the body on as it is
                raise HTTPException(413, str(service.too_large(what, told)))
            return message

        await self.app(scope, limited_receive, send)


def create_app(db: Database, data: Path, token: str | None = None, reaper: bool = True) -> FastAPI:
    """The app; `token` guards every route (None: a loopback server, which refuses foreign Host and Origin
    headers instead). With `reaper`, running jobs whose worker went silent are re-queued at start and every
    few seconds."""
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if reaper:
            jobs.requeue_stale(db)
            thread = threading.Thread(target=_reap, args=(db, stop), daemon=True)
            thread.start()
        yield
        stop.set()

    # the API docs (/docs, /redoc) with their own Swagger UI and ReDoc files: no CDN, so they work offline
    app = FastAPIOffline(title="anisora studio", lifespan=lifespan)
    app.add_middleware(BodyLimit)

    @app.middleware("http")
    async def check_caller(request: Request, call_next):
        if token is None:
            return _foreign(request) or await call_next(request)
        offered = _offered_token(request)
        if not offered or not _same_token(offered, token):
            return _error(401, "a token is required (Authorization: Bearer TOKEN)")
        response = await call_next(request)
        if request.query_params.get("token"):  # remembered, so the page's requests need no token in the URL
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or str(first["loc"][0])
        problem = (
            "the body is not valid JSON" if first["type"] == "json_invalid" else f"{where}: {first['msg']}"
        )
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        return _error(422, problem + more)

    @app.exception_handler(InputError)
    async def bad_input(_request: Request, exc: InputError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(jobs.JobNotFound)  # an InputError, but a missing resource: 404, not 400
    async def no_job(_request: Request, exc: jobs.JobNotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(jobs.JobConflict)
    async def conflict(_request: Request, exc: jobs.JobConflict) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(LookupError)
    async def not_found(_request: Request, exc: LookupError) -> JSONResponse:
        return _error(404, str(exc).strip("'\""))

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

    @app.get("/api/models")
    def served_models() -> dict:
        """The models live workers serve: fps, frame rule, clip and size, sampling presets, and what each can
        do (keyframes past the first frame, motion masks, the motion score's kind and range)."""
        return {"models": models.served(db)}

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
    def episode(episode_id: PathId) -> dict:
        return service.get_episode(db, episode_id)

    @app.post("/api/episodes/{episode_id}/shots", status_code=201)
    def add_shot(episode_id: PathId, body: ShotBody) -> dict:
        fields = body.model_dump()
        fields["lines"] = tuple(service.LineIn(**line) for line in fields["lines"])
        fields["presets"] = tuple(fields["presets"])
        fields["keyframes"] = tuple(service.KeyframeIn(**k) for k in fields["keyframes"])
        fields["mouths"] = tuple(service.MouthIn(**m) for m in fields["mouths"])
        return service.create_shot(db, data, episode_id, service.ShotIn(**fields))

    @app.post("/api/episodes/{episode_id}/render")
    def render(episode_id: PathId, burn: bool = False) -> dict:
        return service.render_episode(db, data, episode_id, burn)

    @app.get("/api/episodes/{episode_id}/video")
    def episode_video(episode_id: PathId) -> FileResponse:
        return _result_file(
            data / "episodes" / f"episode{episode_id}" / "episode.mp4", f"episode{episode_id}.mp4"
        )

    @app.get("/api/episodes/{episode_id}/srt")
    def episode_srt(episode_id: PathId) -> FileResponse:
        return _result_file(
            data / "episodes" / f"episode{episode_id}" / "episode.srt", f"episode{episode_id}.srt"
        )

    @app.get("/api/shots/{shot_id}")
    def shot(shot_id: PathId) -> dict:
        return service.get_shot(db, shot_id)

    @app.post("/api/shots/{shot_id}/jobs", status_code=201)
    def enqueue(shot_id: PathId, body: JobBody | None = None) -> dict:
        model = body.model if body else None
        with db.session(write=False) as s:
            shot = s.get(Shot, shot_id)
            if shot is None:
                raise LookupError(f"no shot {shot_id}")
            needs = models.ShotNeeds.of(shot)
        models.check_queueable(db, needs, model)  # 400 for what no serving model it may go to can make
        return jobs.job_view(db, jobs.enqueue(db, shot_id, model))  # 409 (JobConflict): an active job

    @app.get("/api/jobs")
    def list_jobs(status: str | None = None) -> list[dict]:
        return jobs.list_jobs(db, status)

    @app.get("/api/jobs/{job_id}")
    def job(job_id: PathId) -> dict:
        return jobs.job_view(db, job_id)

    @app.post("/api/jobs/{job_id}/{action}")
    def control(job_id: PathId, action: str) -> dict:
        actions = {"pause": jobs.pause, "resume": jobs.resume, "cancel": jobs.cancel, "retry": jobs.retry}
        if action not in actions:
            raise HTTPException(404, f"no action {action}; use pause, resume, cancel or retry")
        return actions[action](db, job_id)  # the job's view after the change

    @app.get("/api/jobs/{job_id}/{kind}")
    def result(job_id: PathId, kind: str) -> FileResponse:
        if kind not in ("video", "srt", "wav"):
            raise HTTPException(404, "results are video, srt and wav")
        view = jobs.job_view(db, job_id)
        if view["status"] != "done":
            raise HTTPException(409, f"job {job_id} is {view['status']}, not done")
        path = data / view["result"][kind]
        return _result_file(path, f"shot{view['shot_id']}-job{job_id}{path.suffix}")

    @app.post("/v1/videos", tags=["videos"], openapi_extra=VIDEO_CREATE_BODY)
    async def create_video(request: Request) -> dict:
        """Create a video from an image (`input_reference`) and a prompt; it is queued at once."""
        return videos.create_video(db, data, await _video_fields(request))

    @app.get("/v1/videos", tags=["videos"])
    def list_videos() -> dict:
        return {"object": "list", "data": videos.list_videos(db)}

    @app.get("/v1/videos/{video_id}", tags=["videos"])
    def get_video(video_id: str) -> dict:
        return videos.video_object(db, videos.job_of(db, video_id))

    @app.get("/v1/videos/{video_id}/content", tags=["videos"])
    def video_content(video_id: str) -> FileResponse:
        job_id = videos.job_of(db, video_id)
        return _result_file(videos.content(db, data, job_id), f"{video_id}.mp4")

    @app.delete("/v1/videos/{video_id}", tags=["videos"])
    def delete_video(video_id: str) -> dict:
        return videos.delete_video(db, data, videos.job_of(db, video_id))

    return app


async def _video_fields(request: Request) -> dict:
    """A create request's fields: multipart form (files as bytes) or a JSON object."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form(max_files=len(videos.IMAGES), max_fields=len(videos.FIELDS))
        fields = {}
        for key, value in form.multi_items():
            if key in fields:
                raise InputError(f"field {key[:40]!r} is given twice")
            fields[key] = await value.read(service.MAX_UPLOAD_BYTES + 1) if hasattr(value, "read") else value
        return fields
    if kind.startswith("application/json"):
        try:
            fields = await request.json()
        except ValueError:
            raise InputError("the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise InputError("the body must be a JSON object")
        return fields
    raise InputError("send the video request as multipart/form-data or as JSON")


_VIDEO_FIELDS = {
    "prompt": {"type": "string"},
    "seconds": {"type": "number", "description": "the shot's length; left out: the model's default"},
    "motion": {"type": "number", "description": "motion score, 0-100"},
    "seed": {"type": "integer"},
    "model": {"type": "string", "description": "accepted for OpenAI clients; the studio's model is used"},
    "size": {"type": "string", "description": "accepted for OpenAI clients; the model sets the size"},
}
IMAGE_TEXT = "a data:image/...;base64 URL, or the name /api/uploads gave"
VIDEO_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["input_reference"],
                    "properties": {
                        **_VIDEO_FIELDS,
                        **{k: {"type": "string", "format": "binary"} for k in videos.IMAGES},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["input_reference"],
                    "properties": {
                        **_VIDEO_FIELDS,
                        **{
                            k: {
                                "type": "string",
                                "description": "a data:image/...;base64 URL or an upload name",
                            }
                            for k in videos.IMAGES
                        },
                    },
                }
            },
        },
    }
}


def _result_file(path: Path, name: str) -> FileResponse:
    if not path.is_file():
        raise HTTPException(404, "not made yet")
    types = {".mp4": "video/mp4", ".srt": "application/x-subrip", ".wav": "audio/wav"}
    return FileResponse(path, media_type=types[path.suffix], filename=name)


def _reap(db: Database, stop: threading.Event, every: float = 5.0) -> None:
    while not stop.wait(every):
        jobs.requeue_stale(db)


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
    guide_fit_steps: int | None = None,
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
        worker = Worker(db, data, model, steps, burn_subtitles, guide_fit_steps=guide_fit_steps)
        threading.Thread(target=worker.run_forever, args=(stop,), daemon=True).start()
    shown = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"anisora studio at {shown} (API docs at /docs); data in {data}; Ctrl-C to stop", flush=True)
    try:
        uvicorn.run(create_app(db, data, token), host=host, port=port, log_level="warning")
    finally:
        stop.set()
