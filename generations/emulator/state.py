"""Everything one emulator run knows: uploaded images, operations, tokens, credits, counters,
and the renderer that turns an operation into a clip. It lives in memory only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import EmulatorConfig
from .contract import (
    ACTIVE,
    DEFAULT_FAIL_REASON,
    FAILED,
    PENDING,
    SUCCESSFUL,
    ApiError,
    quota_reached,
)
from .faults import Fault, FaultBook, parse_fault
from .render import CAMERA_MOVES, RenderedClip, caption_text, render_clip

log = logging.getLogger("flow_emulator")

STAT_NAMES = (
    "upload",
    "submit",
    "check",
    "session",
    "credits",
    "media",
    "clips_submitted",
    "vertex_predict",
    "vertex_fetch",
    "vertex_token",
    "vertex_storage",
    "vertex_fetch_max_in_flight",
)


@dataclass
class StoredImage:
    data: bytes
    sha256: str

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredImage:
        return cls(data, hashlib.sha256(data).hexdigest())


@dataclass
class Operation:
    name: str
    scene_id: str
    prompt: str
    seed: int
    model: str
    aspect: str
    media_generation_id: str
    # The id of the video/poster objects in the emulated bucket.
    object_id: str
    created: float
    pending_seconds: float
    active_seconds: float
    faults: dict[str, Fault]
    render: Future[RenderedClip] | None
    # "expired-url:once" and "expired-url=N": the answers that signed its URLs so far.
    expired_urls_served: int = 0

    def status(self, now: float) -> str:
        elapsed = now - self.created
        if elapsed < self.pending_seconds:
            return PENDING
        if "stuck" in self.faults or elapsed < self.pending_seconds + self.active_seconds:
            return ACTIVE
        if "fail" in self.faults:
            return FAILED
        if self.render is None or not self.render.done():
            return ACTIVE
        return FAILED if self.render.exception() is not None else SUCCESSFUL

    def failure(self) -> dict[str, Any]:
        if "fail" in self.faults:
            return {"code": 3, "message": self.faults["fail"].arg or DEFAULT_FAIL_REASON}
        return {"code": 13, "message": "Internal error encountered."}

    def clip(self) -> RenderedClip | None:
        """The rendered clip, once it exists."""
        render = self.render
        if render is None or not render.done() or render.exception():
            return None
        return render.result()


class Renderer:
    """Renders clips on a small thread pool, once per distinct input (the cache outlives
    ``reset()`` so that a test suite renders each picture-and-caption once)."""

    def __init__(self, workers: int, clip_seconds: float, fps: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="flow-emulator-"))
        self.clip_seconds, self.fps = clip_seconds, fps
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="emulator-render")
        self._cache: dict[tuple, Future[RenderedClip]] = {}
        self._lock = threading.Lock()
        # The folder goes even if nobody calls close() (a test run that is interrupted).
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.dir, True)

    def render(
        self,
        image: StoredImage,
        prompt: str,
        portrait: bool,
        seed: int = 0,
        *,
        seconds: float | None = None,
        size: tuple[int, int] | None = None,
        audio: bool = False,
        end: StoredImage | None = None,
    ) -> Future[RenderedClip]:
        """``end``: the clip cross-fades from ``image`` into it (start and end frames)."""
        # The seed picks the camera move, so two takes of one scene look like two takes.
        move = seed % CAMERA_MOVES
        seconds = self.clip_seconds if seconds is None else seconds
        key = (image.sha256, caption_text(prompt), portrait, move, seconds, size, audio)
        if end is not None:
            key += (end.sha256,)
        return self.derive(
            key,
            self._render,
            image_bytes=image.data,
            prompt=prompt,
            portrait=portrait,
            move=move,
            clip_seconds=seconds,
            size=size,
            audio=audio,
            end_image_bytes=end.data if end is not None else None,
        )

    def derive(self, key: tuple, make, **kwargs) -> Future[RenderedClip]:
        """The clip ``make(out_dir=…, name=…, **kwargs)`` makes, once per ``key`` (a failed
        render is tried again), on the pool."""
        with self._lock:
            future = self._cache.get(key)
            if future is None or (future.done() and future.exception() is not None):
                name = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
                future = self._pool.submit(make, out_dir=self.dir, name=name, **kwargs)
                self._cache[key] = future
            return future

    def _render(self, **kwargs) -> RenderedClip:
        """``render_clip`` at this renderer's frame rate, logged with how long it took."""
        started = time.perf_counter()
        try:
            clip = render_clip(fps=self.fps, **kwargs)
        except Exception:
            log.exception("Rendering a clip failed")
            raise
        log.info("Rendered %s (%.2f s)", clip.video_path.name, time.perf_counter() - started)
        return clip

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._finalizer()


class EmulatorState:
    """Everything the emulated service knows; ``lock`` guards every attribute ``reset()``
    sets, because each request runs in a thread of its own."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        # Signs media URLs; a new run invalidates the previous run's URLs, as they would be.
        self.secret = secrets.token_bytes(32)
        self.renderer = Renderer(config.render_workers, config.clip_seconds, config.fps)
        self.fault_book = FaultBook()
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        global_faults = [parse_fault(text) for text in self.config.faults]
        with self.lock:
            self.images: dict[str, StoredImage] = {}
            self.operations: dict[str, Operation] = {}
            # The same operations, by the id of their objects in the emulated bucket.
            self.objects: dict[str, Operation] = {}
            self.credits = self.config.credits
            self.stats = dict.fromkeys(STAT_NAMES, 0)
            # Clips accepted (and charged), by the sceneId the client gave each: a client that
            # pays twice for one clip shows up as a count of 2.
            self.accepted: dict[str, int] = {}
            self.minted: dict[str, float] = {}
            self.configured_token_valid = True
            self.session_alive = True
            self.global_faults = global_faults
            # Vertex AI: operations by name, bucket objects by (bucket, name), and whether
            # the service-account key still signs in.
            self.vertex_operations: dict[str, Any] = {}
            self.vertex_objects: dict[tuple[str, str], Any] = {}
            self.vertex_key_revoked = False
            self.vertex_in_flight = 0
        self.fault_book.clear()

    def count(self, stat: str, n: int = 1) -> None:
        with self.lock:
            self.stats[stat] += n

    def charge(self, clips: list[Any], cost: int) -> int:
        """Take ``cost`` credits for a whole batch of ``clips`` (each with a ``scene_id``) or
        refuse it (429) without taking any; the credits left."""
        with self.lock:
            if self.credits < cost:
                raise quota_reached()
            self.credits -= cost
            self.stats["clips_submitted"] += len(clips)
            for clip in clips:
                self.accepted[clip.scene_id] = self.accepted.get(clip.scene_id, 0) + 1
            return self.credits

    def add_operation(
        self, clip: Any, faults: dict[str, Fault], render: Future[RenderedClip] | None, now: float
    ) -> Operation:
        """The operation of an accepted ``clip`` (its scene id, prompt, seed, model and
        aspect), findable from now on by its name and by its bucket object."""
        operation = Operation(
            name=uuid.uuid4().hex,
            scene_id=clip.scene_id,
            prompt=clip.prompt,
            seed=clip.seed,
            model=clip.model,
            aspect=clip.aspect,
            media_generation_id="CAUS" + secrets.token_urlsafe(45),
            object_id=str(uuid.uuid4()),
            created=now,
            pending_seconds=self.config.pending_seconds,
            active_seconds=self.config.active_seconds,
            faults=faults,
            render=render,
        )
        with self.lock:
            self.operations[operation.name] = operation
            self.objects[operation.object_id] = operation
        return operation

    def vertex_object(self, bucket: str, name: str) -> Path:
        """A result in the emulated Cloud Storage bucket, or Cloud Storage's 404."""
        with self.lock:
            path = self.vertex_objects.get((bucket, name))
        if path is None:
            raise ApiError(404, "NOT_FOUND", f"No such object: {bucket}/{name}")
        return Path(path)

    def stats_snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.stats)

    def accepted_snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.accepted)

    def set_faults(self, faults: list[str]) -> None:
        parsed = [parse_fault(text) for text in faults]
        with self.lock:
            self.global_faults = parsed

    def expire_tokens(self) -> None:
        with self.lock:
            self.configured_token_valid = False
            self.minted.clear()

    def accept_tokens(self) -> None:
        with self.lock:
            self.configured_token_valid = True
            self.session_alive = True

    def kill_session(self) -> None:
        with self.lock:
            self.session_alive = False

    def token_valid(self, token: str) -> bool:
        with self.lock:
            if token and token == self.config.token and self.configured_token_valid:
                return True
            expires = self.minted.get(token)
            return expires is not None and expires > time.time()

    def mint_token(self) -> tuple[str, float]:
        token = "ya29." + secrets.token_urlsafe(48)
        expires = time.time() + self.config.token_ttl_seconds
        with self.lock:
            self.minted[token] = expires
        return token, expires

    def sign(self, path: str, expires: int) -> str:
        mac = hmac.new(self.secret, f"{path}\n{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode()

    def close(self) -> None:
        self.renderer.close()
