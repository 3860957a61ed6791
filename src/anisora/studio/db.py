"""The studio's state: SQLAlchemy models and the engine/session for a database URL.

SQLite by default (one file under the data folder; WAL so readers never wait for the writer), PostgreSQL by
URL when workers on several hosts share one queue. Tables are created on open. Datetimes are timezone-aware
UTC on every backend. Files (panels, masks, results) live on disk; the database stores their file names only.
A table added since a database was made is created on open, and a column added since is added to it
(`_add_new_columns`; new columns are nullable).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    String,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from ..errors import InputError

JOB_STATUSES = ("queued", "running", "paused", "done", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running", "paused")  # a shot has at most one job in these (ONE_ACTIVE_JOB)
SQLITE_BUSY_TIMEOUT_MS = 30_000
SCHEMA_LOCK = 0x616E69736F7261  # PostgreSQL advisory lock key held while the tables are made ("anisora")
# An execution option read by the SQLite "begin" hook: the transaction starts with BEGIN IMMEDIATE.
_IMMEDIATE = "anisora_begin_immediate"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive, so the zone is put back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: studio datetimes must be timezone-aware")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    def to_dict(self) -> dict[str, Any]:
        """Every column by name, JSON-ready (datetimes as ISO 8601 strings with +00:00)."""
        out = {}
        for column in self.__table__.columns:
            value = getattr(self, column.key)
            out[column.key] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'id', None)}>"


class Character(Base):
    """A speaker and its voice profile (see anisora.studio.tts.VoiceProfile)."""

    __tablename__ = "character"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    engine: Mapped[str] = mapped_column(String(50), default="espeak-ng")
    voice: Mapped[str] = mapped_column(String(200), default="en-us")
    speed: Mapped[float] = mapped_column(default=1.0)
    pitch: Mapped[float] = mapped_column(default=1.0)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Episode(Base):
    __tablename__ = "episode"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    shots: Mapped[list[Shot]] = relationship(
        back_populates="episode", order_by="(Shot.position, Shot.id)", cascade="all, delete-orphan"
    )


class Shot(Base):
    """One panel to animate. panel / mask / last_frame / keyframe / mouth images are stored file names, never
    user paths; keyframes are extra guide frames at a time in the shot; mouths are regions brushed over
    characters' mouths, driven by their lines when animate_mouths is not False (anisora.studio.mouths)."""

    __tablename__ = "shot"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episode.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    panel: Mapped[str] = mapped_column(String(255))
    prompt: Mapped[str] = mapped_column(Text, default="")
    presets: Mapped[list[str]] = mapped_column(JSON, default=list)
    mask: Mapped[str | None] = mapped_column(String(255))
    motion: Mapped[float | None] = mapped_column()
    seconds: Mapped[float | None] = mapped_column()  # None: fit the duration to the dialogue
    last_frame: Mapped[str | None] = mapped_column(String(255))
    keyframes: Mapped[list[dict]] = mapped_column(JSON, default=list)  # [{"at": seconds, "image": name}]
    seed: Mapped[int] = mapped_column(default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    mouths: Mapped[list[dict] | None] = mapped_column(JSON)  # [{"character_id": id, "mask": name}]
    animate_mouths: Mapped[bool | None] = mapped_column()

    episode: Mapped[Episode] = relationship(back_populates="shots")
    lines: Mapped[list[DialogueLine]] = relationship(
        back_populates="shot",
        order_by="(DialogueLine.position, DialogueLine.id)",
        cascade="all, delete-orphan",
    )
    jobs: Mapped[list[Job]] = relationship(
        back_populates="shot", order_by="Job.id", cascade="all, delete-orphan"
    )


class DialogueLine(Base):
    __tablename__ = "dialogue_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shot.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    character_id: Mapped[int | None] = mapped_column(ForeignKey("character.id"))
    text: Mapped[str] = mapped_column(Text)
    emotion: Mapped[str] = mapped_column(String(50), default="neutral")

    shot: Mapped[Shot] = relationship(back_populates="lines")
    character: Mapped[Character | None] = relationship()


class Job(Base):
    """One generation of one shot; the queue's row. See anisora.studio.jobs for the status machine."""

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shot.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    progress: Mapped[float] = mapped_column(default=0.0)
    stage: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(200))  # "HOST:PID:DEVICE": its claimer (worker.py)
    model: Mapped[str | None] = mapped_column(String(100))  # the model asked for; None: any worker's
    heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime)
    control: Mapped[str | None] = mapped_column(String(20))  # "pause" / "cancel" asked while running
    result: Mapped[dict | None] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    shot: Mapped[Shot] = relationship(back_populates="jobs")


class ServingWorker(Base):
    """A running worker and the model it serves, kept fresh by the worker's beats (see studio.models)."""

    __tablename__ = "worker"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # "HOST:PID:DEVICE", as in Job.worker
    model: Mapped[str] = mapped_column(String(100))  # the name jobs ask for it by
    description: Mapped[dict] = mapped_column(JSON)  # what the model is and can do (models.describe)
    started: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


_active = Job.status.in_(ACTIVE_STATUSES)
# A partial unique index: two requests racing to queue a shot cannot both win, on SQLite or PostgreSQL.
ONE_ACTIVE_JOB = Index(
    "one_active_job_per_shot", Job.shot_id, unique=True, sqlite_where=_active, postgresql_where=_active
)


def episode_shots(session: Session, episode_id: int) -> list[Shot]:
    """An episode's shots in order (position, then creation order for equal positions)."""
    stmt = select(Shot).where(Shot.episode_id == episode_id).order_by(Shot.position, Shot.id)
    return list(session.scalars(stmt))


def shot_lines(session: Session, shot_id: int) -> list[DialogueLine]:
    """A shot's dialogue lines in order (position, then creation order)."""
    stmt = select(DialogueLine).where(DialogueLine.shot_id == shot_id)
    return list(session.scalars(stmt.order_by(DialogueLine.position, DialogueLine.id)))


class Database:
    """An engine plus sessions. `session()` commits on success and rolls back on error."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = url
        # expire_on_commit=False: objects stay readable after their session block has committed.
        self._writer = sessionmaker(engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False)
        self._reader = sessionmaker(engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for logs and pages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """A transaction. On SQLite a write session takes the write lock at BEGIN (waiting up to the busy
        timeout), so read-then-update blocks never fail with "database is locked"; write=False is for reads
        only and never waits."""
        session = (self._writer if write else self._reader)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()


def engine_options(url: str) -> tuple[URL, dict[str, Any]]:
    """Parse a database URL and choose engine options; InputError for what the studio cannot use.

    Only SQLite and PostgreSQL are supported; "postgres://" is read as "postgresql://". For a SQLite file the
    folder is created.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(f"not a database URL: {url!r} (e.g. sqlite:///DATA/studio.sqlite)") from None
    if parsed.drivername.split("+")[0] == "postgres":
        parsed = parsed.set(drivername="postgresql" + parsed.drivername[len("postgres") :])
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # pre-ping: a connection from the pool may have been cut by a database restart
        return parsed, {"pool_pre_ping": True}
    if backend != "sqlite":
        raise InputError(f"unsupported database {backend!r} in {url!r}: use sqlite:/// or postgresql://")
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if parsed.database in (None, "", ":memory:"):
        # one shared connection, otherwise each pooled connection would see its own empty database
        options["poolclass"] = StaticPool
    else:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return parsed, options


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, connection_record) -> None:
        # SQLAlchemy's recipe for pysqlite: stop the driver from emitting its own (deferred) BEGIN, so
        # the "begin" hook below decides how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(
            "PRAGMA synchronous = NORMAL"
        )  # safe with WAL; only the last commit can be lost on power loss
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def open_db(url: str) -> Database:
    """Open (and create the tables of) the studio database at `url`."""
    parsed, options = engine_options(url)
    try:
        engine = create_engine(parsed, **options)
    except (ModuleNotFoundError, NoSuchModuleError) as exc:
        raise InputError(
            f"no driver for {parsed.drivername} ({exc}); for PostgreSQL: pip install psycopg"
        ) from None
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    # The write lock (SQLite) or a transaction-wide advisory lock (PostgreSQL) keeps processes opening a new
    # or older database at once from racing on CREATE and ALTER.
    with engine.execution_options(**{_IMMEDIATE: True}).begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
        Base.metadata.create_all(connection)
        _add_new_columns(connection)
        _add_one_active_job_index(connection)
    return Database(engine, url)


def _add_new_columns(connection: Connection) -> None:
    """For a database made by an older studio: add the columns its tables lack (nullable, no default, so
    existing rows read as None)."""
    quote = connection.dialect.identifier_preparer.quote
    schema = inspect(connection)
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in schema.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"{table.name}.{column.name} is new and NOT NULL: it needs a migration")
            kind = column.type.compile(dialect=connection.dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
            )


def _add_one_active_job_index(connection: Connection) -> None:
    """For a database made before ONE_ACTIVE_JOB: cancel every active job of a shot but its oldest (the index
    could not be made over them), then make the index."""
    if any(index["name"] == ONE_ACTIVE_JOB.name for index in inspect(connection).get_indexes("job")):
        return
    oldest = select(func.min(Job.id)).where(_active).group_by(Job.shot_id)
    connection.execute(
        update(Job)
        .where(_active, Job.id.not_in(oldest))
        .values(
            status="cancelled",
            stage="cancelled",
            error="cancelled: its shot had an older active job",
            control=None,
            worker=None,
            heartbeat=None,
        )
    )
    ONE_ACTIVE_JOB.create(connection)
