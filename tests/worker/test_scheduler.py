"""Scheduler: token budget, max batch, chunked prefill, preemption by recompute (counted)."""

from __future__ import annotations

import pytest

from gpumetrics.worker.block_manager import BlockManager
from gpumetrics.worker.scheduler import Scheduler, SchedulerOutput
from gpumetrics.worker.sequence import Sequence, SequenceStatus

BS = 4


def _sched(
    blocks: int = 64, *, batch: int = 8, budget: int = 64, chunked: bool = True
) -> Scheduler:
    return Scheduler(
        BlockManager(blocks, BS), max_batch=batch, max_batch_tokens=budget, chunked_prefill=chunked
    )


def _add(s: Scheduler, rid: int, prompt: int, max_tokens: int = 4, base: int = 0) -> Sequence:
    seq = Sequence(rid, [base + rid * 50 + i % 50 for i in range(prompt)], max_tokens, 0.0)
    s.add(seq)
    return seq


def _step(s: Scheduler) -> tuple[SchedulerOutput, list[Sequence]]:
    out = s.schedule()
    sampled = [7] * sum(e.samples for e in out.entries)
    return out, s.update(out, sampled, 1.0)


def test_the_token_budget_caps_a_step_and_chunks_prefill() -> None:
    s = _sched(budget=16)
    for rid in range(3):
        _add(s, rid, 10)
    out, _ = _step(s)
    assert [(e.seq.request_id, e.start, e.new_tokens) for e in out.entries] == [
        (0, 0, 10),
        (1, 0, 6),
    ]
    assert [e.samples for e in out.entries] == [True, False]  # a partial chunk samples nothing
    assert out.phase == "prefill"
    out, _ = _step(s)
    # seq 0 decodes, seq 1 finishes its prompt, seq 2 starts within what is left (16-1-4)
    assert [(e.seq.request_id, e.start, e.new_tokens, e.decode) for e in out.entries] == [
        (0, 10, 1, True),
        (1, 6, 4, False),
        (2, 0, 10, False),
    ]
    assert out.phase == "mixed"
    assert sum(e.new_tokens for e in out.entries) <= 16


def test_without_chunking_a_prompt_waits_for_a_budget_that_holds_it() -> None:
    s = _sched(budget=16, chunked=False)
    _add(s, 0, 10)
    _add(s, 1, 10)
    out, _ = _step(s)
    assert [e.seq.request_id for e in out.entries] == [0]
    out, _ = _step(s)
    assert [(e.seq.request_id, e.new_tokens) for e in out.entries] == [(0, 1), (1, 10)]


def test_max_batch_caps_running_sequences() -> None:
    s = _sched(batch=2)
    for rid in range(5):
        _add(s, rid, 3)
    for _ in range(3):
        out, _ = _step(s)
        assert len(out.entries) <= 2
        assert len(s.running) <= 2
    assert len(s.waiting) == 3


def test_decodes_finish_at_max_tokens_and_free_their_blocks() -> None:
    s = _sched(blocks=8)
    seq = _add(s, 0, 5, max_tokens=3)
    finished: list[Sequence] = []
    steps = 0
    while s.has_work:
        finished += _step(s)[1]
        steps += 1
    assert steps == 3
    assert finished == [seq]
    assert seq.output_len == 3
    assert s.blocks.num_used == 0
    assert s.blocks.num_evictable == 1  # 5 + 3 - 1 = 7 computed tokens: one full block


def test_preemption_when_blocks_run_out_is_counted_and_recomputed() -> None:
    """6 blocks of 4. Two prompts of 8 (2 blocks each) decode up to 12 tokens each (5 blocks
    each at the end): the pool cannot hold both, so the newer one is preempted, waits at the
    front of the queue, and on readmission recomputes what it had computed."""
    s = _sched(blocks=6)
    a = _add(s, 0, 8, max_tokens=12)
    b = _add(s, 1, 8, max_tokens=12)
    preempted = 0
    recomputed: list[int] = []
    done: list[Sequence] = []
    for _ in range(100):
        if not s.has_work:
            break
        out, finished = _step(s)
        preempted += out.preempted
        recomputed += out.recomputed
        done += finished
        if out.preempted:
            assert s.waiting[0] is b
            assert b.status is SequenceStatus.PREEMPTED
            assert b.num_computed == 0
            assert not b.block_table
    assert preempted >= 1
    assert done[0] is a
    assert {x.request_id for x in done} == {0, 1}
    assert all(x.output_len == 12 for x in done)
    assert all(x.status is SequenceStatus.FINISHED for x in done)
    assert recomputed
    assert all(r > 0 for r in recomputed)
    assert s.blocks.num_used == 0


def test_a_running_sequence_preempts_itself_when_it_is_the_newest() -> None:
    """4 blocks. a (prompt 7) and b (prompt 8) fill them. Next step a's decode fits in its
    second block, b's needs a third: b is the newest running sequence, so it preempts itself."""
    s = _sched(blocks=4)
    a = _add(s, 0, 7, max_tokens=4)
    b = _add(s, 1, 8, max_tokens=4)
    _step(s)
    assert s.blocks.num_free == 0
    out, _ = _step(s)
    assert out.preempted == 1
    assert [e.seq for e in out.entries] == [a]
    assert a.num_computed == 8
    assert s.running == [a]
    assert list(s.waiting) == [b]
    assert (a.status, b.status) == (SequenceStatus.RUNNING, SequenceStatus.PREEMPTED)
    assert b.high_water == 8


def test_admission_never_preempts_and_keeps_order() -> None:
    s = _sched(blocks=4, budget=64)
    _add(s, 0, 12, max_tokens=4)  # 3 blocks now, 4 later
    _add(s, 1, 8)  # needs 2 blocks: only 1 free, waits
    _add(s, 2, 2)  # would fit, but stays behind seq 1 (first come, first served)
    out, _ = _step(s)
    assert [e.seq.request_id for e in out.entries] == [0]
    assert out.preempted == 0
    assert [q.request_id for q in s.waiting] == [1, 2]


def test_a_sequences_status_follows_its_life_through_preemption() -> None:
    """The preempt-itself scenario above, step by step: b is WAITING, RUNNING, PREEMPTED,
    RUNNING again when a finishes and frees its blocks, FINISHED at its fourth output."""
    s = _sched(blocks=4)
    a = _add(s, 0, 7, max_tokens=4)
    b = _add(s, 1, 8, max_tokens=4)
    seen = [b.status]
    while s.has_work:
        _step(s)
        if b.status is not seen[-1]:
            seen.append(b.status)
    assert seen == [
        SequenceStatus.WAITING,
        SequenceStatus.RUNNING,
        SequenceStatus.PREEMPTED,
        SequenceStatus.RUNNING,
        SequenceStatus.FINISHED,
    ]
    assert a.is_finished
    assert b.is_finished
    assert b.output_len == 4


def test_only_a_new_sequence_can_be_queued() -> None:
    s = _sched()
    seq = _add(s, 0, 5, max_tokens=1)
    _step(s)
    assert seq.is_finished
    with pytest.raises(ValueError, match="only a new sequence"):
        s.add(seq)
