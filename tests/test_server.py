"""`deeppose serve` over HTTP (FastAPI's test client): the answer is `predict`'s JSON, every refusal is a JSON error
with its status, the queue is bounded (503 + Retry-After), a slow request times out (504) without freeing its
worker early, and no upload is written to disk."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from deeppose.cli import main
from deeppose.paths import default_model
from deeppose.serve.predictor import Predictor
from deeppose.serve.records import SCHEMA, prediction_record
from deeppose.serve.server import ServerLimits, create_app
from deeppose.serve.upload import RequestError, read_body

fastapi_testclient = pytest.importorskip("fastapi.testclient", reason="the server tests need httpx (the dev extra)")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_checkpoint(default_model(), threads=1)


@pytest.fixture(scope="module")
def photo(lsp_root: Path) -> Path:
    return lsp_root / "images" / "im1003.jpg"


def client(predictor: Any, **limits: Any) -> Any:
    return fastapi_testclient.TestClient(create_app(predictor, ServerLimits(**limits), "test-model"))


def post(http: Any, data: bytes, name: str = "photo.jpg", **fields: str) -> Any:
    return http.post("/v1/pose", files={"image": (name, data, "image/jpeg")}, data=fields)


class Held:
    """The predictor, held back until `release` is set: a request that is running for as long as a test needs."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.release = threading.Event()
        self.started = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def predict(self, image: np.ndarray, box: Any = None) -> Any:
        self.started.set()
        self.release.wait(30)
        return self.predictor.predict(image, box)


def test_the_answer_is_predicts_json_for_the_same_photo(predictor, photo):
    import jsonschema

    with client(predictor) as http:
        answer = post(http, photo.read_bytes(), photo.name)
    assert answer.status_code == 200, answer.text
    record = answer.json()
    jsonschema.validate(record, json.loads(SCHEMA.read_text()))
    image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    assert record == {"image": photo.name, **json.loads(json.dumps(prediction_record(predictor.predict(photo),
                                                                                        predictor, image)))}
    assert record["box_source"] == "found"


def test_a_box_field_is_used_in_the_top_left_convention(predictor, photo):
    with client(predictor) as http:
        answer = post(http, photo.read_bytes(), box="[10, 20, 100, 120]").json()
    assert answer["box_source"] == "given" and answer["box"] == [10.0, 20.0, 100.0, 120.0]


@pytest.mark.parametrize(("fields", "status", "words"), [
    ({"box": "1,2,3"}, 422, "'box' field must be x,y,w,h"),
    ({"box": "0,0,nan,10"}, 422, "finite"),
    ({"box": "0,0,-5,10"}, 422, "positive width"),
])
def test_a_bad_box_is_a_422_that_says_what_is_expected(predictor, photo, fields, status, words):
    with client(predictor) as http:
        answer = post(http, photo.read_bytes(), **fields)
    assert answer.status_code == status and words in answer.json()["error"]


def test_bad_uploads_are_json_errors_with_their_status(predictor, photo):
    with client(predictor, max_upload_mb=1.0, max_megapixels=0.02) as http:
        cases = {
            "no image field": (http.post("/v1/pose", files={"box": (None, "1,1,5,5")}), 422, "no 'image' field"),
            "empty file": (post(http, b""), 422, "is empty"),
            "not an image": (post(http, b"GIF89a? no", "notes.gif"), 422, "notes.gif: corrupt or unsupported"),
            "not multipart": (http.post("/v1/pose", json={"image": "x"}), 415, "multipart/form-data"),
            "a form": (http.post("/v1/pose", data={"box": "1,1,5,5"}), 415, "x-www-form-urlencoded"),
            "too large": (post(http, b"\xff" * (1024 * 1024 + 10)), 413, "limit of 1 MB"),
            "too many pixels": (post(http, photo.read_bytes()), 413, "147x171 (0.0 megapixels); the limit is 0.02"),
            "no such route": (http.get("/v2/pose"), 404, "Not Found"),
            "wrong method": (http.get("/v1/pose"), 405, "Method Not Allowed"),
        }
    for case, (answer, status, words) in cases.items():
        assert answer.status_code == status, (case, answer.text)
        assert answer.headers["content-type"] == "application/json", case
        assert words in answer.json()["error"], (case, answer.json())


def test_the_body_limit_holds_without_a_content_length():
    async def chunks():
        for _ in range(10):
            yield b"x" * 1000

    assert len(asyncio.run(read_body(chunks(), None, 10_000))) == 10_000
    with pytest.raises(RequestError) as refused:
        asyncio.run(read_body(chunks(), None, 9_999))
    assert refused.value.status == 413


def test_a_full_queue_answers_503_with_retry_after(predictor, photo):
    held = Held(predictor)
    with client(held, workers=1, queue=0) as http:
        first: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: first.update(answer=post(http, photo.read_bytes())))
        thread.start()
        assert held.started.wait(10)
        busy = post(http, photo.read_bytes())
        assert http.get("/healthz").json()["queue"] == {"pending": 1, "capacity": 1, "workers": 1}
        held.release.set()
        thread.join(30)
        after = post(http, photo.read_bytes())
    assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
    assert "busy" in busy.json()["error"]
    assert first["answer"].status_code == 200 and after.status_code == 200  # nothing lost once the worker is free
    assert first["answer"].json() == after.json()


def test_a_timed_out_request_is_504_and_keeps_its_place_until_its_work_ends(predictor, photo):
    held = Held(predictor)
    with client(held, workers=1, queue=1, timeout_s=0.3) as http:
        answer = post(http, photo.read_bytes())
        assert answer.status_code == 504 and "timeout of 0.3 s" in answer.json()["error"]
        assert http.get("/healthz").json()["queue"]["pending"] == 1  # the worker still holds the photo
        held.release.set()
        deadline = time.monotonic() + 10
        while http.get("/healthz").json()["queue"]["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http.get("/healthz").json()["queue"]["pending"] == 0


WRITES: list[Any] = []
WATCHING = threading.Event()
HOOKED: list[Any] = []


def _watch_writes(event: str, args: tuple) -> None:
    """An audit hook: every file opened for writing (Python's open, os.open, tempfile) while WATCHING is set."""
    if not WATCHING.is_set():
        return
    if event == "open":
        _, mode, flags = args
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        if writing or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            WRITES.append(args)
    elif event.startswith("tempfile."):
        WRITES.append((event, args))


def test_no_upload_is_written_to_disk(predictor):
    """A 3 MB upload (larger than the 1 MB at which form parsers usually spool to a temporary file) is answered
    without a single file opened for writing."""
    noise = np.random.default_rng(0).integers(0, 256, (1100, 900, 3), dtype=np.uint8)
    data = cv2.imencode(".png", noise)[1].tobytes()
    assert len(data) > 2 * 1024 * 1024
    if not HOOKED:  # audit hooks cannot be removed: one for the session, inert unless WATCHING
        sys.addaudithook(_watch_writes)
        HOOKED.append(_watch_writes)
    with client(predictor) as http:
        WATCHING.set()
        try:
            answer = post(http, data, "noise.png")
        finally:
            WATCHING.clear()
    assert answer.status_code == 200, answer.text
    assert WRITES == []
    WATCHING.set()  # and the hook does see a write when there is one
    try:
        with open(os.devnull, "w"):
            pass
    finally:
        WATCHING.clear()
    assert WRITES and WRITES.pop()[0] == os.devnull


def test_the_model_description_and_health(predictor):
    with client(predictor, max_upload_mb=5.0) as http:
        model = http.get("/v1/model").json()
        health = http.get("/healthz").json()
        page = http.get("/")
    assert model["joints"] == list(predictor.skeleton.joints) and model["skeleton"] == "lsp14"
    assert len(model["limbs"]) == len(predictor.skeleton.limbs) + len(predictor.skeleton.bones)
    assert all(len(limb["colour"]) == 7 and limb["a"] and limb["b"] for limb in model["limbs"])
    assert model["limits"]["max_upload_mb"] == 5.0 and model["person_localizer"] is True
    assert health["status"] == "ok" and health["model"] == "test-model"
    assert page.status_code == 200 and 'id="file"' in page.text


def test_the_api_accepts_every_format_predict_reads(predictor, photo):
    image = cv2.imread(str(photo))
    with client(predictor) as http:
        answers = {ext: post(http, cv2.imencode(ext, image)[1].tobytes(), "p" + ext) for ext in (".png", ".webp",
                                                                                                   ".bmp", ".tif")}
    for ext, answer in answers.items():
        assert answer.status_code == 200, (ext, answer.text)
        assert answer.json()["width"] == image.shape[1]


def test_serve_refuses_a_busy_port_and_bad_limits_in_one_line(capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"deeppose: error: 127.0.0.1:{port}: cannot listen there") and "\n" not in err
    assert main(["serve", "--workers", "0"]) == 2
    assert "workers must be >= 1" in capsys.readouterr().err


def test_a_decoded_image_over_the_limit_is_refused_even_when_its_header_is_not_read(predictor):
    """Formats Pillow does not read (here a PFM-like HDR) are checked once decoded."""
    image = np.full((300, 300, 3), 0.5, np.float32)
    ok, data = cv2.imencode(".hdr", image)
    assert ok
    with client(predictor, max_megapixels=0.05) as http:
        answer = post(http, data.tobytes(), "sky.hdr")
    assert answer.status_code == 413 and "300x300" in answer.json()["error"], answer.text


def test_parts_are_read_from_memory(predictor, photo):
    """A hand-built multipart body (as curl sends it) with a repeated field: the first is used."""
    boundary = "xyzBOUNDARY"
    body = io.BytesIO()
    for name, filename, data in (("box", None, b"5,5,80,90"), ("image", "a.jpg", photo.read_bytes()),
                                 ("box", None, b"1,1,2,2")):
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"".encode())
        body.write(f"; filename=\"{filename}\"\r\nContent-Type: image/jpeg".encode() if filename else b"")
        body.write(b"\r\n\r\n" + data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    with client(predictor) as http:
        answer = http.post("/v1/pose", content=body.getvalue(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        broken = http.post("/v1/pose", content=body.getvalue()[:-40] + b"--nonsense",
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status_code == 200 and answer.json()["box"] == [5.0, 5.0, 80.0, 90.0]
    assert answer.json()["image"] == "a.jpg"
    assert broken.status_code == 400 and "closing boundary" in broken.json()["error"], broken.text
