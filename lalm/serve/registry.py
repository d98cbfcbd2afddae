"""The models a gateway serves: name -> a started engine and what it can do.

Built from the settings' model specs (lalm.config.Settings.model_specs) in the app's lifespan; every engine is
started together (vLLM servers start in parallel, each in its own process) and closed together. A model never
loads twice: names whose specs differ only in the name (same source, engine and options) share one engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lalm.config import Settings
from lalm.engines.base import Capabilities, Engine
from lalm.errors import LalmError
from lalm.serve.backend import build_engine, engine_key, engine_kind

__all__ = ["ModelRegistry", "ServedModel", "weights_bytes"]

log = logging.getLogger("lalm.serve")


@dataclass(frozen=True)
class ServedModel:
    """A model as the gateway serves it: the `name` requests use, its `engine` (shared by the names of one
    model), what it can do, which engine kind runs it, where its weights are and their size (bytes; None when
    not known)."""

    name: str
    engine: Engine
    capabilities: Capabilities
    kind: str
    source: str
    weights_bytes: int | None = None

    def summary(self) -> str:
        """One line for the start-up log: name, engine, source, and what it can do."""
        caps = self.capabilities
        size = f", {self.weights_bytes / 2**20:.1f} MiB" if self.weights_bytes is not None else ""
        parts = [f"{self.name}: {caps.family} model on {self.kind} ({self.source}{size})",
                 "chat" if caps.chat else "no chat",
                 f"tasks {', '.join(caps.tasks) or 'none'}",
                 "translation" if caps.translation else "no translation",
                 _languages(caps.languages),
                 f"{caps.window_seconds:g} s windows"]
        if caps.experimental:
            parts.append("EXPERIMENTAL")
        if caps.random_weights:
            parts.append("RANDOM WEIGHTS: its answers are noise")
        return "; ".join(parts)


def weights_bytes(source: str) -> int | None:
    """The size of a local model folder's weight files (safetensors, else .bin files such as CTranslate2's
    model.bin): about the memory its weights take at their stored dtype (an engine may convert them, e.g. to
    bfloat16 on a GPU). None for anything that is not a folder holding weights (a hub id, a composed model)."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return sum(f.stat().st_size for f in files) if files else None


class ModelRegistry:
    """The served models by name, in the order they were given (the first answers requests that name none)."""

    def __init__(self, models: Sequence[ServedModel]) -> None:
        if not models:
            raise ValueError("a gateway serves at least one model")
        self._models = {m.name: m for m in models}

    @classmethod
    def from_settings(cls, settings: Settings, engines: Mapping[str, Engine] | None = None) -> ModelRegistry:
        """The registry of every model the settings name, engines built but not started. `engines` gives some
        models (by name) an engine of the caller's instead of the one their spec describes (tests, embedding).
        Raises ValueError for a name in `engines` that the settings do not serve."""
        specs = settings.model_specs()
        given = dict(engines or {})
        if unknown := sorted(set(given) - {s.name for s in specs}):
            raise ValueError(f"engines given for models the settings do not serve: {', '.join(unknown)}")
        built: dict[tuple, Engine] = {}
        models = []
        for spec in specs:
            engine = given.get(spec.name)
            if engine is None:
                key = engine_key(spec)
                if key not in built:
                    built[key] = build_engine(spec, settings)
                engine = built[key]
            models.append(ServedModel(spec.name, engine, engine.capabilities, engine_kind(spec), spec.source,
                                      weights_bytes(spec.source)))
        return cls(models)

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    @property
    def engines(self) -> list[Engine]:
        """Each engine once, in the order of the first model it serves."""
        return list({id(m.engine): m.engine for m in self}.values())

    def get(self, name: str | None) -> ServedModel:
        """The model called `name`; None: the first. Raises LalmError 404 `model_not_found` (param `model`)
        naming the served models, as OpenAI and vLLM answer an unknown model."""
        if name is None:
            return next(iter(self))
        try:
            return self._models[name]
        except KeyError:
            served = ", ".join(repr(n) for n in self._models)
            raise LalmError(f"The model {name!r} does not exist; this server serves {served} (GET /v1/models).",
                            status=404, code="model_not_found", param="model") from None

    async def start(self) -> None:
        """Start every engine at once; when one fails, close them all and raise its error."""
        results = await asyncio.gather(*(e.start() for e in self.engines), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.close()
            raise failures[0]
        first: dict[int, str] = {}
        for model in self:
            owner = first.setdefault(id(model.engine), model.name)
            shared = f"; shares the engine of {owner} (loaded once)" if owner != model.name else ""
            log.info("serving %s%s", model.summary(), shared)

    async def close(self) -> None:
        """Close every engine at once; a failure to close one is logged and does not keep the others open."""
        engines = self.engines
        results = await asyncio.gather(*(e.close() for e in engines), return_exceptions=True)
        for engine, result in zip(engines, results, strict=True):
            if isinstance(result, Exception):
                log.error("closing the engine of %s failed", engine.model_name, exc_info=result)

    async def not_ready(self) -> list[str]:
        """The names of the models whose engine cannot take requests now (health checks)."""
        engines = self.engines
        ready = dict(zip(map(id, engines), await asyncio.gather(*(e.ready() for e in engines)), strict=True))
        return [m.name for m in self if not ready[id(m.engine)]]


def _languages(languages: tuple[str, ...] | None) -> str:
    """The languages of a start-up line: a few by code, many by count."""
    if not languages:
        return "languages any"
    if len(languages) > 6:
        return f"{len(languages)} languages"
    return f"languages {', '.join(languages)}"
