"""Multi-turn chat load: the scenario where prefix caching pays off — and where it breaks.

Conversations arrive as a Poisson process (`arrival_rate` per second). Each opens with one of
a few shared system prompts, then alternates a user message with the model's answer; turn k+1's
prompt is turn k's whole conversation plus a new message, so it can reuse turn k's KV blocks.
Between turns the user *thinks* (exponential, mean `think_time_s`): the conversation's blocks
are free but cached. Under memory pressure other traffic reuses them (evictions), and the next
turn misses and recomputes its history — the cost the KV metrics make visible.

Every conversation draws its lengths and think times from its own seeded generator, so the
content of the load does not depend on how fast the engine runs; only interleaving does. With a
`VirtualClock` (`worker --virtual-clock`) the interleaving does not either: arrivals and think
times run on simulated seconds that advance a fixed amount per engine step and skip idle
waits, so one seed gives the same requests in the same order with the same prefix hits on
any machine. Step and latency timings are still measured on the engine's clock.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .engine import Engine
from .summary import WorkerSummary
from .tokenizer import ByteTokenizer
from .trace import TraceRecorder

__all__ = [
    "DEFAULT_VIRTUAL_STEP_S",
    "SCENARIOS",
    "ChatLoad",
    "ChatScenario",
    "TurnRequest",
    "VirtualClock",
    "run_load",
]

#: Simulated seconds one engine step takes on a `VirtualClock` (a decode step's order).
DEFAULT_VIRTUAL_STEP_S = 0.01

_WORDS = (
    "the", "cache", "holds", "keys", "and", "values", "of", "every", "token", "so", "a",
    "long", "chat", "pays", "for", "its", "history", "once", "when", "memory", "runs",
    "short", "an", "idle", "conversation", "loses", "blocks", "next", "turn", "recomputes",
    "them", "batch", "new", "tokens", "prefix", "hit", "miss", "evict",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChatScenario:
    """Shape of the chat load; lengths are in tokens (bytes), (low, high) inclusive."""

    system_prompts: int = 4
    system_tokens: int = 64
    user_tokens: tuple[int, int] = (16, 48)
    output_tokens: tuple[int, int] = (8, 24)
    turns: tuple[int, int] = (2, 4)
    think_time_s: float = 0.2
    """Mean pause between a turn's answer and the next message (exponential)."""
    arrival_rate: float = 10.0
    """New conversations per second (Poisson)."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("user_tokens", "output_tokens", "turns"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {(low, high)}")
        if self.system_prompts <= 0 or self.system_tokens <= 0:
            raise ValueError("system_prompts and system_tokens must be > 0")
        if self.arrival_rate <= 0 or self.think_time_s < 0:
            raise ValueError("arrival_rate must be > 0 and think_time_s >= 0")


#: Named scenarios for the command line.
SCENARIOS = {"chat": ChatScenario()}


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One turn to send: its prompt (the conversation so far plus a new message)."""

    conversation: int
    turn: int
    prompt: tuple[int, ...]
    max_tokens: int
    due: float
    """When it is sent, in seconds since the load started."""


@dataclass(slots=True)
class _Conversation:
    rng: random.Random
    turns: int
    turn: int = 0


@dataclass(order=True, slots=True)
class _Due:
    due: float
    order: int
    request: TurnRequest = field(compare=False)


class ChatLoad:
    """Generates the turns of `scenario`; the driver reports each answer to `finished`.

    `max_context` is the most tokens (prompt + answer) a turn may need: the model's context
    or the KV pool, whichever is smaller. A conversation ends when its next turn would not fit.
    """

    def __init__(
        self, scenario: ChatScenario, tokenizer: ByteTokenizer, *, max_context: int
    ) -> None:
        self.scenario, self.tokenizer, self.max_context = scenario, tokenizer, max_context
        rng = random.Random(scenario.seed)
        self.system = [
            tokenizer.encode(f"system {k}: " + _text(rng, scenario.system_tokens), bos=True)[
                : scenario.system_tokens
            ]
            for k in range(scenario.system_prompts)
        ]
        self._arrivals = random.Random(scenario.seed + 1)
        self._next_arrival = self._arrivals.expovariate(scenario.arrival_rate)
        self._conversations: dict[int, _Conversation] = {}
        self._followups: list[_Due] = []
        self._order = 0

    def next_due(self) -> float:
        """When the next turn is due (seconds since start)."""
        return min(self._next_arrival, self._followups[0].due if self._followups else 1e300)

    def due(self, now: float, limit: int | None = None) -> list[TurnRequest]:
        """Turns due by `now`, earliest first (at most `limit`)."""
        out: list[TurnRequest] = []
        while limit is None or len(out) < limit:
            if self._followups and self._followups[0].due <= min(now, self._next_arrival):
                out.append(heapq.heappop(self._followups).request)
            elif self._next_arrival <= now:
                out.append(self._open(self._next_arrival))
                self._next_arrival += self._arrivals.expovariate(self.scenario.arrival_rate)
            else:
                break
        return out

    def _open(self, when: float) -> TurnRequest:
        conv_id = len(self._conversations)
        rng = random.Random(self.scenario.seed * 1_000_003 + conv_id)
        conv = _Conversation(rng, rng.randint(*self.scenario.turns))
        self._conversations[conv_id] = conv
        system = self.system[rng.randrange(len(self.system))]
        return self._turn(conv_id, conv, system, when)

    def _turn(
        self, conv_id: int, conv: _Conversation, history: Sequence[int], when: float
    ) -> TurnRequest:
        s, rng = self.scenario, conv.rng
        message = self.tokenizer.encode(_text(rng, rng.randint(*s.user_tokens)))
        conv.turn += 1
        return TurnRequest(
            conv_id, conv.turn, (*history, *message), rng.randint(*s.output_tokens), when
        )

    def finished(self, request: TurnRequest, tokens: Sequence[int], now: float) -> None:
        """The answer to `request` is done (`tokens`: prompt and answer): schedule the
        conversation's next turn after a think time, if it has one and it fits."""
        conv = self._conversations[request.conversation]
        if conv.turn >= conv.turns:
            return
        think = (
            conv.rng.expovariate(1 / self.scenario.think_time_s)
            if self.scenario.think_time_s
            else 0.0
        )
        nxt = self._turn(request.conversation, conv, tokens, now + think)
        if len(nxt.prompt) + nxt.max_tokens > self.max_context:
            return
        heapq.heappush(self._followups, _Due(nxt.due, self._order, nxt))
        self._order += 1


class VirtualClock:
    """Simulated seconds for the load: `step_s` per engine step, idle waits jumped over.

    Reads no OS clock, so the load's schedule depends only on the seed and the step count.
    """

    __slots__ = ("now", "step_s")

    def __init__(self, step_s: float = DEFAULT_VIRTUAL_STEP_S) -> None:
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        self.now, self.step_s = 0.0, step_s

    def step(self) -> None:
        """One engine step has run."""
        self.now += self.step_s

    def wait_until(self, when: float) -> None:
        """Nothing to run until `when`: jump there."""
        self.now = max(self.now, when)


def _text(rng: random.Random, length: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(rng.choice(_WORDS))
    return " ".join(words)[:length]


def run_load(
    engine: Engine,
    load: ChatLoad,
    *,
    requests: int | None = None,
    duration_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    virtual: VirtualClock | None = None,
    recorder: TraceRecorder | None = None,
) -> WorkerSummary:
    """Drive `engine` with `load` until `requests` turns finished, or for `duration_s`
    seconds (then admission stops and the running turns finish). The summary's throughput
    is over the whole run's wall time, idle waits included.

    With `virtual`, the load's time (arrivals, think times, `duration_s`) is that clock's
    simulated seconds and nothing sleeps; a request's latencies count from its admission.
    With `recorder`, each turn sent is written as a trace line (its time on the load's clock,
    its prompt's block hashes as the engine's cache names them, its conversation).
    """
    if (requests is None) == (duration_s is None):
        raise ValueError("give exactly one of requests and duration_s")
    clock = engine.clock
    start = clock()

    def elapsed() -> float:
        return virtual.now if virtual is not None else clock() - start

    issued = 0
    inflight: dict[int, TurnRequest] = {}
    while True:
        now = elapsed()
        admitting = (requests is None or issued < requests) and (
            duration_s is None or now < duration_s
        )
        if admitting:
            left = None if requests is None else requests - issued
            for req in load.due(now, left):
                arrival = None if virtual is not None else start + req.due
                rid = engine.add_request(req.prompt, req.max_tokens, arrival=arrival)
                inflight[rid] = req
                if recorder is not None:
                    recorder.record(
                        timestamp_s=now,
                        input_length=len(req.prompt),
                        output_length=req.max_tokens,
                        hash_ids=engine.blocks.prompt_hashes(req.prompt),
                        conversation=req.conversation,
                    )
                issued += 1
        if engine.has_work:
            finished = engine.step()
            if virtual is not None:
                virtual.step()
            for done in finished:
                load.finished(inflight.pop(done.request_id), done.tokens, elapsed())
        elif not admitting:
            break
        else:
            until = load.next_due() if duration_s is None else min(load.next_due(), duration_s)
            if virtual is not None:
                virtual.wait_until(until)
            else:
                sleep(max(0.0, until - now))
    return engine.summary(wall_s=clock() - start)
