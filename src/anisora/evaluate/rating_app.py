"""The blind rating web page: a FastAPI app over a `RatingSession`, and `serve` to run it with uvicorn.

Raters get pairs by random token and fetch the two videos by token and side, so neither the page nor its
requests ever name a model; the media answers carry no file dates or tags (Last-Modified, ETag) that would
tell one run's files from another's. Who rates comes from an invitation token (the `invite` query parameter
or vote field), or is the single local rater for requests from this machine without one (see `rating`).
There is deliberately no results endpoint: `anisora evaluate ratings` prints them.
"""

from __future__ import annotations

import ipaddress
import mimetypes
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..errors import InputError
from ..media import playable
from .rating import SIDES, DuplicateVoteError, NotInvitedError, RatingSession, RatingStore, UnknownTokenError

WEB_EXTRA = (
    "the rating page needs the project's web extra: run `make install` "
    "(or `pip install -e '.[web]'` in the AniSora-open checkout)"
)

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel
except ImportError:
    raise InputError(WEB_EXTRA) from None

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
    invite: str | None = None


def is_local(request: Request) -> bool:
    """Whether the request comes from this machine (uvicorn reports a trusted proxy's client instead)."""
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # not an IP address
        return False


def _anonymous_file(path: Path | None, media_type: str) -> Response:
    """The file's bytes alone: no name, date or tag of the file that could tell which run made it."""
    if path is None or not path.is_file():
        raise HTTPException(404, "this file is not on disk")
    return Response(path.read_bytes(), media_type=media_type, headers=_NO_STORE)


def create_app(session: RatingSession) -> FastAPI:
    app = FastAPI(title="anisora blind rating", docs_url=None, redoc_url=None, openapi_url=None)
    playable_copies = tempfile.TemporaryDirectory(prefix="anisora-rating-")  # removed with the app
    app.state.playable_copies = playable_copies
    page = PAGE.read_text(encoding="utf-8")

    def error_handler(status: int):
        def handle(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=_NO_STORE)

        return handle

    # the most specific class wins: no invitation 403, unknown token 404, second vote 409, other input 400
    app.add_exception_handler(NotInvitedError, error_handler(403))
    app.add_exception_handler(UnknownTokenError, error_handler(404))
    app.add_exception_handler(DuplicateVoteError, error_handler(409))
    app.add_exception_handler(InputError, error_handler(400))

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/api/next")
    def next_pair(request: Request, invite: str | None = None) -> JSONResponse:
        rater = session.rater(invite, is_local(request))
        return JSONResponse({"pair": session.next_pair(rater)}, headers=_NO_STORE)

    @app.get("/api/progress")
    def progress(request: Request, invite: str | None = None) -> JSONResponse:
        rater = session.rater(invite, is_local(request))
        done, total = session.progress(rater)
        return JSONResponse({"done": done, "total": total, "rater": rater}, headers=_NO_STORE)

    @app.post("/api/vote")
    def vote(request: Request, body: VoteIn) -> JSONResponse:
        session.vote(body.token, body.choice, session.rater(body.invite, is_local(request)))
        return JSONResponse({"ok": True}, headers=_NO_STORE)

    @app.get("/api/image/{token}")
    def image(token: str) -> Response:
        path = session.image(token)
        if path is None:
            raise HTTPException(404, "this case has no input image")
        return _anonymous_file(path, mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    @app.get("/api/video/{token}/{side}")
    def video(token: str, side: str) -> Response:
        if side not in SIDES:
            raise HTTPException(404, "no such side")
        path = session.video(token, side)
        if path.is_file():  # evaluate runs store exact RGB frames, which browsers cannot play
            path = playable(path, playable_copies.name)
        return _anonymous_file(path, "video/mp4")

    return app


def _link_host(host: str) -> str:
    """The host for links to the page: this machine's name when it serves on every address (0.0.0.0)."""
    try:
        return socket.gethostname() if ipaddress.ip_address(host).is_unspecified else host
    except ValueError:  # a host name
        return host


def serve(
    runs: Sequence[str | Path],
    db: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    invite: int = 0,
) -> None:
    """Serve the rating page for these run directories, votes in the SQLite file db, until interrupted;
    first print `invite` new invitation links, one per rater."""
    try:
        import uvicorn
    except ImportError:
        raise InputError(WEB_EXTRA) from None
    session = RatingSession(runs, RatingStore(db))
    tokens = session.store.invite(invite) if invite else []
    print(
        f"rating {len(session.items)} pairs ({len(session.cases)} cases, {len(session.runs)} runs) "
        f"at http://{host}:{port}/ ; votes go to {db}; raters on other machines need an invitation link "
        "(--invite N); Ctrl-C to stop",
        flush=True,
    )
    for token in tokens:
        print(f"http://{_link_host(host)}:{port}/?invite={token}", flush=True)
    uvicorn.run(create_app(session), host=host, port=port, log_level="warning")
