"""EngineSource: one engine's /metrics, scraped and mapped each cycle (DESIGN.md §3.3)."""

from __future__ import annotations

from collections.abc import Callable

from ...engine_config import EngineConfig
from ...samples import Collection
from .apply import map_exposition
from .fetch import fetch
from .limits import DUPLICATE_SERIES, Limits
from .parse import parse_page

__all__ = ["EngineSource", "collection_from_page", "collection_from_text", "fetch_metrics"]


def fetch_metrics(config: EngineConfig) -> bytes:
    """The engine's exposition, bounded by `config.max_bytes` and `config.timeout_s`."""
    return fetch(config.endpoint, max_bytes=config.max_bytes, timeout_s=config.timeout_s)


def collection_from_text(text: str, config: EngineConfig) -> Collection:
    """Parse and map one exposition (no network); raises `EngineError` only."""
    return collection_from_page(text.encode("utf-8"), config)


def collection_from_page(body: bytes, config: EngineConfig) -> Collection:
    """Parse one page within the engine's limits and map it; raises `EngineError` only
    (`LimitError` over a limit). Each exact duplicate series dropped adds one
    `duplicate_series` partial error."""
    exposition, duplicates = parse_page(body, Limits.of(config))
    collection = map_exposition(exposition, config)
    if not duplicates:
        return collection
    return Collection(collection.samples, (*collection.errors, *[DUPLICATE_SERIES] * duplicates))


class EngineSource:
    """A Source (see `gpumetrics.sources.Source`) named `engine:<name>`.

    Each `collect` does one bounded GET and maps the text through the engine's name map. Any
    failure (engine down, hanging, too large, not Prometheus text) raises `EngineError` with a
    code, so the Sampler marks this source down and drops its samples while the others keep
    flowing; a page over one of the engine's limits raises `LimitError`, whose cycle the
    Sampler rejects whole while it keeps the last good samples, marked stale (limits.py).
    Nothing else is carried from one scrape to the next. `fetch` is injectable for tests.
    """

    __slots__ = ("_config", "_fetch")

    def __init__(
        self, config: EngineConfig, *, fetch: Callable[[EngineConfig], bytes] = fetch_metrics
    ) -> None:
        self._config = config
        self._fetch = fetch

    @property
    def name(self) -> str:
        return self._config.source_name

    @property
    def config(self) -> EngineConfig:
        return self._config

    def collect(self, now: float) -> Collection:
        """Scrape and map; `now` is unused (engine counters carry their own history)."""
        return collection_from_page(self._fetch(self._config), self._config)

    def close(self) -> None:
        """Nothing to release: every scrape opens and closes its own connection."""
