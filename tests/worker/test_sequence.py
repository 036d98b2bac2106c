"""Sequence status: the allowed edges and nothing else; token counts."""

from __future__ import annotations

import itertools

import pytest

from gpumetrics.worker.sequence import Sequence, SequenceStatus

W, R, P, F = (
    SequenceStatus.WAITING,
    SequenceStatus.RUNNING,
    SequenceStatus.PREEMPTED,
    SequenceStatus.FINISHED,
)
ALLOWED = {(W, R), (R, P), (R, F), (P, R)}


def _at(status: SequenceStatus) -> Sequence:
    """A sequence brought to `status` along allowed edges."""
    seq = Sequence(0, [1, 2, 3], 2, arrival=0.0)
    path = {W: [], R: [R], P: [R, P], F: [R, F]}[status]
    for step in path:
        seq.move_to(step)
    return seq


def test_a_new_sequence_waits() -> None:
    seq = Sequence(7, iter([5, 6, 7]), 4, arrival=1.5)
    assert seq.status is W
    assert not seq.is_finished
    assert (seq.num_tokens, seq.prompt_len, seq.output_len) == (3, 3, 0)


@pytest.mark.parametrize(("src", "dst"), sorted(ALLOWED, key=str))
def test_allowed_edges_move(src: SequenceStatus, dst: SequenceStatus) -> None:
    seq = _at(src)
    seq.move_to(dst)
    assert seq.status is dst


@pytest.mark.parametrize(
    ("src", "dst"),
    [e for e in itertools.product(SequenceStatus, repeat=2) if e not in ALLOWED],
    ids=str,
)
def test_every_other_edge_is_refused(src: SequenceStatus, dst: SequenceStatus) -> None:
    seq = _at(src)
    with pytest.raises(ValueError, match=f"no transition {src.name} -> {dst.name}"):
        seq.move_to(dst)
    assert seq.status is src


def test_max_tokens_is_counted_in_outputs() -> None:
    seq = _at(R)
    seq.tokens += [9]
    assert not seq.reached_max_tokens
    seq.tokens += [10]
    assert seq.reached_max_tokens
    seq.move_to(F)
    assert seq.is_finished
