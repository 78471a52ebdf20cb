"""The peer of bench/api.py: a plain CRUD service for the same contacts, with no security.

It is what a straightforward FastAPI + SQLAlchemy async service would do: the body is parsed
into a typed pydantic model (types only, no phone/postal/email rules), stored as JSON in one
plain table under a random handle, and read back by that handle. No authentication, no
authorization, no encryption, no event log. It is served the way `regshield serve` serves its
API (one uvicorn process, same uvicorn options, same pool sizes, same SQLite pragmas for
durability), so that the difference between the two is what regshield does per request.

    python bench/peer_app.py --http 127.0.0.1:8081 --database-url sqlite:///peer.db
    python bench/peer_app.py --http 127.0.0.1:8081 --database-url postgresql://...
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Response, status
from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, Integer, String, event, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

HANDLE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class Base(DeclarativeBase):
    pass


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handle: Mapped[str] = mapped_column(String(16), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ContactIn(BaseModel):
    name: str
    organization: str | None = None
    email: str
    phone: str
    fax: str | None = None
    street: list[str]
    city: str
    state: str | None = None
    postal_code: str
    country: str


class ContactOut(ContactIn):
    handle: str
    created_at: datetime
    updated_at: datetime


def async_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    return url


def create_app(database_url: str) -> FastAPI:
    url = async_url(database_url)
    sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 30}} if sqlite
        else {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}
    )
    engine = create_async_engine(url, **kwargs)
    if sqlite:
        @event.listens_for(engine.sync_engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        yield
        await engine.dispose()

    app = FastAPI(title="peer", lifespan=lifespan)

    @app.post("/api/v1/contacts", response_model=ContactOut,
              status_code=status.HTTP_201_CREATED)
    async def create(body: ContactIn, response: Response) -> ContactOut:
        now = datetime.now(UTC)
        handle = "PR-" + "".join(secrets.choice(HANDLE_ALPHABET) for _ in range(10))
        async with sessions() as session, session.begin():
            session.add(Contact(handle=handle, data=body.model_dump(), created_at=now,
                                updated_at=now))
        response.headers["Location"] = f"/api/v1/contacts/{handle}"
        return ContactOut(handle=handle, created_at=now, updated_at=now, **body.model_dump())

    @app.get("/api/v1/contacts/{handle}", response_model=ContactOut)
    async def read(handle: str) -> ContactOut:
        async with sessions() as session:
            row = (await session.execute(
                select(Contact).where(Contact.handle == handle))).scalar_one_or_none()
        if row is None:
            raise HTTPException(status_code=404, detail="no such contact")
        return ContactOut(handle=row.handle, created_at=row.created_at,
                          updated_at=row.updated_at, **row.data)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", default="127.0.0.1:8081", help="HOST:PORT to listen on")
    parser.add_argument("--database-url", required=True,
                        help="sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    args = parser.parse_args()
    host, _, port = args.http.rpartition(":")
    # The options `regshield serve` gives uvicorn (lifespan on: it creates the table).
    uvicorn.run(create_app(args.database_url), host=host, port=int(port), log_config=None,
                access_log=False, proxy_headers=False, server_header=False)


if __name__ == "__main__":
    main()
