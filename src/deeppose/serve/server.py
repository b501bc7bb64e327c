"""`deeppose serve`: the model behind HTTP (FastAPI + uvicorn), loaded once.

- `POST /v1/pose`: a multipart/form-data `image` file (optional `box` field "x,y,w,h") -> the prediction JSON of
  `deeppose predict` (serve/schemas/prediction.schema.json, `image` being the upload's file name).
- `GET /`: a page where a person picks or drops a photo and sees the skeleton drawn, joint by joint confidence.
- `GET /v1/model`: the model, its skeleton (joints, limbs and their colours) and the server's limits.
- `GET /healthz`: liveness and the queue.

Limits (`ServerLimits`): upload size, image megapixels, a request timeout, and a bounded queue in front of the
worker threads: when it is full the answer is 503 with Retry-After. Uploads are held in memory, never written to
disk. Every refusal is a 4xx/5xx answer with a JSON body {"error": "<one line>"}.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib.resources import files
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from deeppose import __version__
from deeppose.data.io import decode_image
from deeppose.errors import DeepPoseError
from deeppose.serve.predictor import Predictor
from deeppose.serve.records import SCHEMA_VERSION, prediction_record
from deeppose.serve.upload import (
    MB,
    RequestError,
    box_field,
    check_header,
    check_pixels,
    image_part,
    parse_multipart,
    read_body,
)
from deeppose.visualize import limb_colours, person_colour


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of the server.

    Attributes:
        max_upload_mb: the largest request body, in MiB (413 beyond).
        max_megapixels: the largest image, read from its header before decoding (413 beyond).
        timeout_s: seconds from admission (queue wait included) to the answer (504 beyond).
        workers: predictions run at once (threads sharing the one model).
        queue: requests that may wait for a worker; one more is refused with 503 and Retry-After.
    """

    max_upload_mb: float = 20.0
    max_megapixels: float = 40.0
    timeout_s: float = 30.0
    workers: int = 1
    queue: int = 8

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0 or self.max_megapixels <= 0 or self.timeout_s <= 0:
            raise ValueError(f"server limits must be positive, got {self}")
        if self.workers < 1 or self.queue < 0:
            raise ValueError(f"workers must be >= 1 and queue >= 0, got {self.workers} and {self.queue}")


class Admission:
    """A bounded queue in front of `workers` threads: `submit` runs a job, or returns None when `workers` run and
    `queue` wait. A job's place is held until its thread is done with it, even when its request timed out, so
    the bound holds for the work itself, not only for the requests still waiting."""

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="deeppose-predict")
        self._lock = threading.Lock()
        self._pending = 0
        self._seconds = 0.0  # mean seconds per job (exponential average), for Retry-After

    def submit(self, job: Callable[[], Any]) -> concurrent.futures.Future | None:
        with self._lock:
            if self._pending >= self.capacity:
                return None
            self._pending += 1

        def timed() -> Any:
            began = time.perf_counter()
            try:
                return job()
            finally:
                took = time.perf_counter() - began
                with self._lock:
                    self._seconds = took if self._seconds == 0 else 0.8 * self._seconds + 0.2 * took

        future = self._executor.submit(timed)
        future.add_done_callback(self._release)
        return future

    def _release(self, _: concurrent.futures.Future) -> None:
        with self._lock:
            self._pending -= 1

    def retry_after(self) -> int:
        """Whole seconds until a place is likely free: the queue's work shared by the workers (at least 1)."""
        with self._lock:
            return max(1, math.ceil(self._seconds * self._pending / self.workers))

    def state(self) -> dict[str, int]:
        with self._lock:
            return {"pending": self._pending, "capacity": self.capacity, "workers": self.workers}

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def model_info(predictor: Predictor, model_name: str, limits: ServerLimits) -> dict[str, Any]:
    """What the page needs to draw and what a client may ask: the model, its skeleton (limb endpoints, each a
    list of joints averaged, and the colours of `deeppose predict`'s pictures) and the limits."""
    skeleton = predictor.skeleton
    segments = [(list(limb.a), list(limb.b)) for limb in skeleton.limbs] + [([a], [b]) for a, b in skeleton.bones]
    return {"model": model_name, "version": __version__, "schema_version": SCHEMA_VERSION,
            "skeleton": skeleton.name, "joints": list(skeleton.joints),
            "limbs": [{"a": a, "b": b, "colour": "#{:02x}{:02x}{:02x}".format(*c)}
                      for (a, b), c in zip(segments, limb_colours(skeleton))],
            "person_colours": ["#{:02x}{:02x}{:02x}".format(*person_colour(k)) for k in range(10)],
            "stages": predictor.stages, "person_localizer": predictor.has_localizer,
            "finds_everyone": predictor.finds_everyone,
            "limits": asdict(limits)}


def predict_upload(predictor: Predictor, data: bytes, name: str, box: np.ndarray | None, max_megapixels: float
                   ) -> dict[str, Any]:
    """Decode an upload and predict it (a worker thread's job): the prediction record with `image` = `name`."""
    try:
        image = decode_image(data, name)
    except DeepPoseError as err:
        raise RequestError(422, f"{err}; send a JPEG, PNG, WebP, TIFF or BMP photo") from None
    check_pixels(image.shape[1], image.shape[0], max_megapixels, name)
    try:
        result = predictor.predict(image, box)
    except DeepPoseError as err:
        raise RequestError(422, f"{name}: {err}") from None
    return {"image": name, **prediction_record(result, predictor, image)}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


POSE_REQUEST = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": {"image": {"type": "string", "format": "binary", "description": "the photo (any format OpenCV "
                                                                                   "decodes)"},
                   "box": {"type": "string", "description": "optional person box x,y,w,h in pixels from the "
                                                            "top-left corner (default: the person is found)"}}}}}}}


def _answer_errors_in_json(app: FastAPI) -> None:
    """Every refusal and failure answered as JSON {"error": "<one line>"} with its status (and headers)."""

    @app.exception_handler(RequestError)
    async def refused(_: Request, err: RequestError) -> JSONResponse:
        return _error(err.status, err.message, err.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(str(e.get("msg")) for e in err.errors()))

    @app.exception_handler(Exception)
    async def failed(_: Request, err: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(err).__name__}: {err}")


def create_app(predictor: Predictor, limits: ServerLimits | None = None, model_name: str = "") -> FastAPI:
    """The FastAPI application around one loaded `predictor` (see the module's docstring)."""
    limits = limits or ServerLimits()
    admission = Admission(limits.workers, limits.queue)
    page = files("deeppose.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    info = model_info(predictor, model_name, limits)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        admission.shutdown()

    app = FastAPI(title="deeppose", version=__version__, docs_url="/docs", redoc_url=None, lifespan=lifespan,
                  description="Human pose estimation by coordinate regression: one person's joints in a photo.")

    _answer_errors_in_json(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "model": model_name, "queue": admission.state()}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return info

    @app.post("/v1/pose", openapi_extra=POSE_REQUEST)
    async def pose(request: Request) -> JSONResponse:
        body = await read_body(request.stream(), request.headers.get("content-length"),
                               int(limits.max_upload_mb * MB))
        parts = parse_multipart(body, request.headers.get("content-type"))
        upload, box = image_part(parts), box_field(parts)
        name, data = upload.filename or "upload", bytes(upload.data)
        check_header(data, limits.max_megapixels, name)
        future = admission.submit(lambda: predict_upload(predictor, data, name, box, limits.max_megapixels))
        if future is None:
            wait = admission.retry_after()
            raise RequestError(503, f"busy: {admission.capacity} requests are running or waiting; retry in {wait} s",
                               {"Retry-After": str(wait)})
        try:
            record = await asyncio.wait_for(asyncio.wrap_future(future), limits.timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(504, f"{name}: no answer within the server's timeout of {limits.timeout_s:g} s"
                               ) from None
        return JSONResponse(record)

    return app


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, limits: ServerLimits | None = None,
          model_name: str = "") -> None:
    """Run the server until interrupted (uvicorn, one process; the model is loaded once, by the caller)."""
    import uvicorn

    uvicorn.run(create_app(predictor, limits, model_name), host=host, port=port, log_level="info")
