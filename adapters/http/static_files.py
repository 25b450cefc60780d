"""GET/HEAD /static/{name}: the pages' own files (the stylesheet), served from a list made at start-up.

A request names a file of that list or gets a 404 JSON error: no part of the path reaches the file system, so
NUL bytes, `.`/`..`, encoded slashes, names too long for the file system and directories are all the same
404, and no answer names a path on the server (Litestar's own static router answered 500 to `a%00b` and named
the install folder for `.`)."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from litestar import Router, get, head
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import File

# what a file we ship may be called: no separators, no leading dot, a length any file system takes
SERVABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


def servable_files(directory: Path) -> dict[str, Path]:
    """The regular files directly in `directory` that may be served, by name (subfolders are not)."""
    return {p.name: p for p in sorted(directory.iterdir()) if p.is_file() and SERVABLE_NAME.match(p.name)}


def static_files_router(path: str, directory: Path) -> Router:
    files = servable_files(directory)

    def response(name: str) -> File:
        found = files.get(name)
        if found is None:
            raise NotFoundException(detail="no such static file")
        media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return File(found, filename=found.name, content_disposition_type="inline", media_type=media_type)

    @get("/{name:str}", name="static")
    async def get_file(name: FromPath[str]) -> File:
        return response(name)

    @head("/{name:str}", name="static-head")
    async def head_file(name: FromPath[str]) -> File:
        return response(name)

    return Router(path=path, route_handlers=[get_file, head_file], include_in_schema=False)
