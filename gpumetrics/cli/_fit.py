"""The memory-fit refusal shared by `worker` and `profile`: one line, exit status 2."""

from __future__ import annotations

from ..costmodel import ModelSpec
from ..costmodel.fit import DoesNotFitError, MemoryNeed, check_fit
from . import BadInput

__all__ = ["DoesNotFit", "first_line", "refuse_unless_fits"]


class DoesNotFit(BadInput):
    """Bad input: a model too big for the device."""


def refuse_unless_fits(
    model: ModelSpec, need: MemoryNeed, available: float | None, where: str
) -> None:
    """Exit 2 with one line when `need` exceeds `available` (None: cannot tell, go on)."""
    if available is None:
        return
    try:
        check_fit(model, need, available, where=where)
    except DoesNotFitError as exc:
        raise DoesNotFit(str(exc)) from None


def first_line(exc: BaseException) -> str:
    """An exception's first line (torch's allocator errors run to a paragraph)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
