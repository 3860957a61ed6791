"""The blind rating web page: a FastAPI app over a `RatingSession`, and `serve` to run it with uvicorn.

Raters get pairs by random token and fetch the two videos by token and side, so neither the page nor its
requests ever name a model. There is deliberately no results endpoint: `anisora evaluate ratings` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..errors import InputError
from .rating import SIDES, DuplicateVoteError, RatingSession, RatingStore, UnknownTokenError

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from pydantic import BaseModel
except ImportError:
    raise InputError("the rating page needs the web extra: pip install 'anisora[web]'") from None

PAGE = Path(__file__).parent / "assets" / "rating.html"
# the page is self-contained: inline script and style, media and API calls from this server only
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "media-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
    "Cache-Control": "no-store",
}
_NO_STORE = {"Cache-Control": "no-store"}


class VoteIn(BaseModel):
    token: str
    choice: Literal["left", "right", "tie"]
    rater: str


def create_app(session: RatingSession) -> FastAPI:
    app = FastAPI(title="anisora blind rating", docs_url=None, redoc_url=None, openapi_url=None)
    page = PAGE.read_text(encoding="utf-8")

    def error_handler(status: int):
        def handle(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=_NO_STORE)

        return handle

    # the most specific class wins: unknown token 404, second vote 409, any other bad input 400
    app.add_exception_handler(UnknownTokenError, error_handler(404))
    app.add_exception_handler(DuplicateVoteError, error_handler(409))
    app.add_exception_handler(InputError, error_handler(400))

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/api/next")
    def next_pair(rater: str) -> JSONResponse:
        return JSONResponse({"pair": session.next_pair(rater)}, headers=_NO_STORE)

    @app.get("/api/progress")
    def progress(rater: str) -> JSONResponse:
        done, total = session.progress(rater)
        return JSONResponse({"done": done, "total": total}, headers=_NO_STORE)

    @app.post("/api/vote")
    def vote(body: VoteIn) -> JSONResponse:
        session.vote(body.token, body.choice, body.rater)
        return JSONResponse({"ok": True}, headers=_NO_STORE)

    @app.get("/api/image/{token}")
    def image(token: str) -> FileResponse:
        path = session.image(token)
        if path is None or not path.is_file():
            raise HTTPException(404, "this case has no input image")
        return FileResponse(path)

    @app.get("/api/video/{token}/{side}")
    def video(token: str, side: str) -> FileResponse:
        if side not in SIDES:
            raise HTTPException(404, "no such side")
        path = session.video(token, side)
        if not path.is_file():
            raise HTTPException(404, "this video is no longer on disk")
        return FileResponse(path, media_type="video/mp4")

    return app


def serve(runs: Sequence[str | Path], db: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the rating page for these run directories, votes in the SQLite file db, until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise InputError("the rating page needs the web extra: pip install 'anisora[web]'") from None
    session = RatingSession(runs, RatingStore(db))
    print(
        f"rating {len(session.items)} pairs ({len(session.cases)} cases, {len(session.runs)} runs) "
        f"at http://{host}:{port}/ ; votes go to {db}; Ctrl-C to stop",
        flush=True,
    )
    uvicorn.run(create_app(session), host=host, port=port, log_level="warning")
