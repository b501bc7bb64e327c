"""What `deeppose serve` reads from a request: a multipart/form-data body held in memory under a size limit
(nothing is written to disk), the image's size read from its header before it is decoded, and the optional box."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from deeppose.errors import DeepPoseError
from deeppose.serve.images import parse_box

MB = 1024 * 1024


class RequestError(Exception):
    """A request the server refuses: its HTTP status and a one-line message (answered as JSON {"error": ...})."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Part:
    """One part of a multipart/form-data body: its field name, file name (None for a plain field) and bytes."""

    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """The request body, read into memory; 413 as soon as it passes `limit` bytes (or its Content-Length says it
    will), so an oversized upload is neither stored nor read to its end."""
    too_large = f"the upload is larger than the limit of {limit / MB:g} MB"
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise RequestError(413, too_large)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise RequestError(413, too_large)
    return bytes(body)


def parse_multipart(body: bytes, content_type: str | None) -> dict[str, Part]:
    """The parts of a multipart/form-data body by field name (the first of a repeated name); 415 for another
    content type, 400 for a malformed or truncated body."""
    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise RequestError(415, f"expected a multipart/form-data upload with an 'image' file field, got "
                                f"Content-Type {content_type or 'none'!r}")
    parts: list[Part] = []
    ended: list[bool] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def on_header_end() -> None:
        if bytes(header["field"]).lower() == b"content-disposition":
            _, disposition = parse_options_header(bytes(header["value"]))
            parts[-1].name = disposition.get(b"name", b"").decode("utf-8", "replace")
            filename = disposition.get(b"filename")
            parts[-1].filename = None if filename is None else filename.decode("utf-8", "replace")
        header["field"].clear()
        header["value"].clear()

    callbacks = {
        "on_part_begin": lambda: parts.append(Part()),
        "on_header_field": lambda data, start, end: header["field"].extend(data[start:end]),
        "on_header_value": lambda data, start, end: header["value"].extend(data[start:end]),
        "on_header_end": on_header_end,
        "on_part_data": lambda data, start, end: parts[-1].data.extend(data[start:end]),
        "on_end": lambda: ended.append(True),
    }
    parser = MultipartParser(options[b"boundary"], callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestError(400, f"malformed multipart body ({exc})") from None
    if not ended:
        raise RequestError(400, "the multipart body ends before its closing boundary (a truncated upload?)")
    found: dict[str, Part] = {}
    for part in parts:
        found.setdefault(part.name, part)
    return found


def image_part(parts: dict[str, Part]) -> Part:
    """The uploaded image: the 'image' field, a file; 422 when it is missing or empty."""
    part = parts.get("image")
    if part is None:
        raise RequestError(422, f"no 'image' field in the form (fields: {', '.join(sorted(parts)) or 'none'}); "
                                f"send the photo as a file field named 'image'")
    if not part.data:
        raise RequestError(422, f"the 'image' field ({part.filename or 'no file name'}) is empty")
    return part


def box_field(parts: dict[str, Part]) -> np.ndarray | None:
    """The optional 'box' field, "x,y,w,h" or "[x, y, w, h]" in pixels from the top-left corner; 422 when it is
    not one."""
    part = parts.get("box")
    if part is None or not part.data.strip():
        return None
    try:
        return parse_box(part.data.decode("utf-8", "replace"), "the 'box' field")
    except DeepPoseError as err:
        raise RequestError(422, str(err)) from None


def check_pixels(width: int, height: int, max_megapixels: float, name: str) -> None:
    """413 when a `width` x `height` image is over `max_megapixels`."""
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise RequestError(413, f"{name}: the image is {width}x{height} ({megapixels:.1f} megapixels); the limit is "
                                f"{max_megapixels:g} megapixels")


def check_header(data: bytes, max_megapixels: float, name: str) -> None:
    """`check_pixels` on the size in an image's header, before its pixels are decoded (Pillow opens lazily); a
    format Pillow does not read passes here and its decoded image is checked instead."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"{name}: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        return
    check_pixels(width, height, max_megapixels, name)
