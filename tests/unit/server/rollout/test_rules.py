"""The rollout state machine: each rule alone, then their order."""

from __future__ import annotations

from edgefleet.server.rollout import rules
from edgefleet.server.rollout.gates import GateResult
from edgefleet.server.rollout.rules import Facts, decide


def gate(outcome: str, metric: str = "p99_ratio") -> GateResult:
    value = None if outcome == "inconclusive" else 2.0
    return GateResult(metric, "<=", 1.5, outcome, value, "why", 3, 3, 500)  # type: ignore[arg-type]


def facts(*gates: GateResult, **kw: object) -> Facts:
    base: dict[str, object] = {
        "now": 1000.0,
        "stage": 0,
        "stages": 3,
        "stage_started_at": 0.0,
        "bake_s": 600.0,
        "gates": gates,
        "failures": {},
        "failure_limits": {"p99_ratio": 2, "accuracy_delta": 1},
        "inconclusive_since": None,
        "progress_deadline_s": 3600.0,
    }
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def test_a_gate_failing_up_to_its_limit_rolls_back_with_the_values() -> None:
    decision = rules.rollback_on_failed_gate(facts(gate("fail"), failures={"p99_ratio": 2}))
    assert decision is not None
    assert decision.action == "rollback"
    assert "p99_ratio = 2.000 (<= 1.5): fail" in decision.reason


def test_a_gate_failing_below_its_limit_waits() -> None:
    f = facts(gate("fail"), failures={"p99_ratio": 1})
    assert rules.rollback_on_failed_gate(f) is None
    decision = rules.wait_on_failing_gate(f)
    assert decision is not None
    assert decision.action == "wait"
    assert "p99_ratio 1/2" in decision.reason


def test_passing_gates_advance_only_after_the_bake_time() -> None:
    assert rules.advance_when_baked(facts(gate("pass"), now=599.0)) is None
    waiting = rules.wait_while_baking(facts(gate("pass"), now=599.0))
    assert waiting is not None
    assert waiting.action == "wait"
    advanced = rules.advance_when_baked(facts(gate("pass"), now=600.0))
    assert advanced is not None
    assert advanced.action == "advance"


def test_passing_gates_at_the_last_stage_complete() -> None:
    done = rules.advance_when_baked(facts(gate("pass"), stage=2))
    assert done is not None
    assert done.action == "complete"


def test_no_gates_or_one_inconclusive_gate_never_advances() -> None:
    assert rules.advance_when_baked(facts()) is None
    assert rules.advance_when_baked(facts(gate("pass"), gate("inconclusive", "x"))) is None


def test_inconclusive_past_the_progress_deadline_pauses() -> None:
    stuck = facts(gate("inconclusive"), inconclusive_since=0.0, now=3600.0)
    decision = rules.pause_at_progress_deadline(stuck)
    assert decision is not None
    assert decision.action == "pause"
    early = facts(gate("inconclusive"), inconclusive_since=0.0, now=3599.0)
    assert rules.pause_at_progress_deadline(early) is None


def test_a_stage_without_any_gate_pauses_at_the_progress_deadline() -> None:
    decision = decide(facts(inconclusive_since=0.0, now=3600.0))
    assert decision.action == "pause"
    assert "no gate applies to this stage" in decision.reason


def test_rules_run_in_order_safety_first() -> None:
    # a failing gate at its limit wins over another gate that is stuck past the deadline
    f = facts(
        gate("fail"),
        gate("inconclusive", "accuracy_delta"),
        failures={"p99_ratio": 2},
        inconclusive_since=0.0,
        now=5000.0,
    )
    assert decide(f).action == "rollback"
    assert decide(facts(gate("inconclusive"))).action == "wait"
    assert decide(facts(gate("pass"))).action == "advance"
