"""``convscale serve DIR``: a deployed folder behind HTTP, on Starlette and uvicorn (the ``serve`` extra).

- ``POST /predict``: an image as the body (``image/*`` or ``application/octet-stream``) or as the first file of a
  ``multipart/form-data`` form; ``?topk=N`` (default 5). JSON out: ``{"top": [{"label", "probability"}, ...]}``.
  A body that is empty, too large, not an image, truncated, or of another content type is a 4xx with
  ``{"error": ...}``; the server goes on.
- ``GET /health``, ``GET /metadata`` (model, runtime, precision, both machines, input size, classes), ``GET /``: a
  page where a person drops an image and sees the top-5 (plain HTML and ``fetch``).

**Dynamic batching**: requests are decoded and preprocessed in a thread pool, then gathered into one batch — up to
the deployed batch size, or whatever came within ``max_wait_ms`` of the first — and run together in one thread, so
that under concurrent clients the throughput approaches the batch figure deploy measured. ``batching=False`` runs
each request alone (the deployed form still runs its whole batch: the cost of serving without batching).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..data import DECODE_ERRORS
from ..utils.extras import require
from .predictor import Predictor, load

__all__ = ["ServeSettings", "create_app", "serve"]

MAX_BODY = 20 * 2**20  # bytes of one request's image
MAX_PIXELS = 40_000_000  # an image above this is refused before it is decoded (PIL reads the size from the header)
_ENV = "CONVSCALE_SERVE"  # the settings, for uvicorn's worker processes (--workers N)
_PAGE = Path(__file__).with_name("page.html")


@dataclass(frozen=True)
class ServeSettings:
    folder: str
    max_wait_ms: float = 5.0
    batching: bool = True
    topk: int = 5


class Batcher:
    """Gathers preprocessed images into batches and runs them, one batch at a time, in a thread of its own."""

    def __init__(self, predictor: Predictor, settings: ServeSettings) -> None:
        self.predictor, self.settings = predictor, settings
        self.size = (predictor.batch or 16) if settings.batching else 1
        self.queue: asyncio.Queue = asyncio.Queue()
        self.runner = ThreadPoolExecutor(1, thread_name_prefix="convscale-batch")
        self.batches = self.images = 0

    async def submit(self, x: torch.Tensor) -> torch.Tensor:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((x, future))
        return await future

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            deadline = loop.time() + self.settings.max_wait_ms / 1e3
            while len(items) < self.size:
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time())))
                except TimeoutError:
                    break
            batch = torch.stack([x for x, _ in items])
            try:
                probs = await loop.run_in_executor(self.runner, self._probs, batch)
            except Exception as e:  # the runtime failed: every request of the batch hears it
                for _, future in items:
                    if not future.done():
                        future.set_exception(e)
                continue
            self.batches, self.images = self.batches + 1, self.images + len(items)
            for (_, future), row in zip(items, probs, strict=True):
                if not future.done():
                    future.set_result(row)

    def _probs(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.predictor.model(batch).softmax(1)


class BadImage(ValueError):
    """A request whose body is not an image convscale serves: its HTTP status and the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode(body: bytes) -> Image.Image:
    """The image in ``body``, refused with a :class:`BadImage` when empty, not an image, larger than
    :data:`MAX_PIXELS`, or truncated."""
    if not body:
        raise BadImage(400, "empty body: send an image (JPEG, PNG, WebP, ...)")
    try:
        img = Image.open(io.BytesIO(body))
        if img.width * img.height > MAX_PIXELS:
            raise BadImage(413, f"image of {img.width}x{img.height} px: at most {MAX_PIXELS // 10**6} megapixels")
        img.load()
        return img.convert("RGB")
    except BadImage:
        raise
    except DECODE_ERRORS as e:
        raise BadImage(400, f"not a readable image ({type(e).__name__}: {str(e)[:120]})") from None


async def _body(request) -> bytes:
    """The image bytes of a request (raw or multipart), within :data:`MAX_BODY`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise BadImage(413, f"body of {length} bytes: at most {MAX_BODY // 2**20} MiB")
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        upload = next((v for v in form.values() if hasattr(v, "read")), None)
        if upload is None:
            raise BadImage(400, "a multipart form without a file: send the image as a file field")
        return await upload.read(MAX_BODY + 1)
    if not (kind.startswith("image/") or kind == "application/octet-stream"):
        raise BadImage(415, f"content type {kind or 'none'!r}: send image/* , application/octet-stream or a form")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadImage(413, f"body above {MAX_BODY // 2**20} MiB")
    return bytes(body)


def create_app(settings: ServeSettings):
    """The Starlette app serving ``settings.folder``."""
    require("starlette", "convscale serve")
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    predictor = load(settings.folder)
    batcher_box: list[Batcher] = []
    workers = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="convscale-decode")

    @asynccontextmanager
    async def lifespan(app):
        batcher = Batcher(predictor, settings)
        batcher_box.append(batcher)
        task = asyncio.create_task(batcher.run_forever())
        yield
        task.cancel()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def predict(request):
        try:
            topk = int(request.query_params.get("topk", settings.topk))
            if not 1 <= topk <= 1000:
                raise ValueError
        except ValueError:
            return error(400, "topk: expected an integer from 1 to 1000")
        try:
            body = await _body(request)
            loop = asyncio.get_running_loop()
            x = await loop.run_in_executor(workers, lambda: predictor.transform(decode(body)))
        except BadImage as e:
            return error(e.status, str(e))
        probs = await batcher_box[0].submit(x)
        rows = [{"label": label, "probability": round(p, 6)} for label, p in predictor.top(probs[None], topk)[0]]
        return JSONResponse({"top": rows, "runtime": predictor.runtime})

    async def health(request):
        b = batcher_box[0] if batcher_box else None
        return JSONResponse({"status": "ok", "batches": b.batches if b else 0, "images": b.images if b else 0})

    async def metadata(request):
        return JSONResponse(predictor.metadata() | {"batching": settings.batching, "max_wait_ms": settings.max_wait_ms})

    async def page(request):
        return HTMLResponse(_PAGE.read_text())

    routes = [
        Route("/", page), Route("/health", health), Route("/metadata", metadata),
        Route("/predict", predict, methods=["POST"]),
    ]  # fmt: skip
    return Starlette(routes=routes, lifespan=lifespan)


def app_from_env():
    """The app for uvicorn's worker processes (``--workers N``): its settings from the environment."""
    return create_app(ServeSettings(**json.loads(os.environ[_ENV])))


def serve(settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve until stopped (Ctrl-C or SIGTERM end it cleanly). ``workers`` > 1: that many processes, each with its
    own copy of the model, behind one port (uvicorn's)."""
    uvicorn = require("uvicorn", "convscale serve")
    load(settings.folder)  # a bad folder is refused here, in one line, before any process starts
    from dataclasses import asdict

    os.environ[_ENV] = json.dumps(asdict(settings))
    uvicorn.run(
        "convscale.deployed.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
        log_level="warning", timeout_graceful_shutdown=5,
    )  # fmt: skip
