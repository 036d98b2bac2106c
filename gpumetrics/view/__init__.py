"""`gpumetrics top`: a live terminal view of one node (DESIGN.md §2, `view/`).

`model` turns metric points (a scrape of `serve`, or a local Snapshot) into a `NodeView`;
`render` draws it with rich; `fetch` reads a `serve` endpoint with basic auth and TLS;
`live` shows one frame or keeps redrawing. The CLI (`cli/top.py`) only wires them.
"""

from .fetch import Endpoint, FetchError, read_points
from .live import show, show_live
from .model import EngineRow, GpuRow, NodeView, Point, PortRow, build_view, points_of
from .render import frame

__all__ = [
    "Endpoint",
    "EngineRow",
    "FetchError",
    "GpuRow",
    "NodeView",
    "Point",
    "PortRow",
    "build_view",
    "frame",
    "points_of",
    "read_points",
    "show",
    "show_live",
]
