"""Gates: a candidate cohort against the baseline of its own hardware class."""

from __future__ import annotations

from edgefleet.server.rollout.gates import GateResult, applies, evaluate_gate
from edgefleet.server.rollout.metrics import Reference
from edgefleet.server.rollout.spec import Gate

BASE = {"arm": Reference(4, 4000, 2.0, 0.01, 0.90), "x86": Reference(4, 4000, 1.0, 0.0, 0.95)}


def ref(devices: int = 4, inferences: int = 4000, p99: float = 2.0, acc: float = 0.9) -> Reference:
    return Reference(devices, inferences, p99, 0.01, acc)


def run(gate: Gate, candidate: dict[str, Reference], cohort: int = 8, **kw: int) -> GateResult:
    return evaluate_gate(
        gate, candidate=candidate, baseline=BASE, cohort_size=cohort, rollbacks=kw.get("rb", 0)
    )


def test_a_candidate_as_good_as_its_baseline_passes() -> None:
    result = run(Gate("p99_ratio", "<=", 1.5), {"arm": ref(), "x86": ref(p99=1.1)})
    assert (result.outcome, result.value) == ("pass", 1.1)
    assert result.per_class == {"arm": 1.0, "x86": 1.1}


def test_each_class_is_compared_with_its_own_class_and_the_worst_class_decides() -> None:
    # 2.0 ms is normal on arm but twice as slow as the x86 baseline
    result = run(Gate("p99_ratio", "<=", 1.5), {"arm": ref(), "x86": ref(p99=2.0)})
    assert (result.outcome, result.value) == ("fail", 2.0)


def test_lower_estimated_accuracy_fails_the_accuracy_gate() -> None:
    result = run(Gate("accuracy_delta", ">=", -0.03), {"arm": ref(acc=0.80), "x86": ref()})
    assert result.outcome == "fail"
    assert result.value is not None
    assert abs(result.value + 0.10) < 1e-9


def test_too_few_reporting_devices_is_inconclusive_never_pass() -> None:
    # 10 devices in the stage, 7 reporting (30% offline), 80% needed
    result = run(Gate("p99_ratio", "<=", 1.5), {"arm": ref(devices=7)}, cohort=10)
    assert result.outcome == "inconclusive"
    assert (result.devices, result.required_devices) == (7, 8)
    assert "7 of 10 devices reported (need 8)" in result.reason


def test_too_few_inferences_is_inconclusive_even_for_a_bad_value() -> None:
    gate = Gate("p99_ratio", "<=", 1.5, min_inferences=500)
    result = run(gate, {"arm": ref(devices=8, inferences=100, p99=9.0)})
    assert result.outcome == "inconclusive"
    assert result.value is None


def test_without_a_baseline_for_any_class_the_gate_is_inconclusive() -> None:
    result = run(Gate("accuracy_delta", ">=", -0.03), {"riscv": ref(devices=8)})
    assert result.outcome == "inconclusive"
    assert "no baseline" in result.reason


def test_a_local_rollback_fails_the_rollbacks_gate_whatever_the_data() -> None:
    gate = Gate("rollbacks", "<=", 0)
    assert run(gate, {}, rb=1).outcome == "fail"
    assert run(gate, {}, rb=0).outcome == "inconclusive"
    assert run(gate, {"arm": ref(devices=8)}, rb=0).outcome == "pass"


def test_disagreement_is_the_share_of_shadow_samples_that_differ() -> None:
    gate = Gate("disagreement", "<=", 0.2, min_inferences=100)
    common = {"candidate": {"arm": ref(devices=8)}, "baseline": BASE, "cohort_size": 8}
    high = evaluate_gate(gate, rollbacks=0, disagreement=(60, 200), **common)  # type: ignore[arg-type]
    low = evaluate_gate(gate, rollbacks=0, disagreement=(10, 200), **common)  # type: ignore[arg-type]
    few = evaluate_gate(gate, rollbacks=0, disagreement=(10, 50), **common)  # type: ignore[arg-type]
    assert (high.outcome, high.value) == ("fail", 0.3)
    assert (low.outcome, low.value) == ("pass", 0.05)
    assert few.outcome == "inconclusive"


def test_disagreement_is_only_judged_in_shadow_stages() -> None:
    assert applies(Gate("disagreement", "<=", 0.2), shadow_stage=True)
    assert not applies(Gate("disagreement", "<=", 0.2), shadow_stage=False)
    assert applies(Gate("p99_ratio", "<=", 1.5), shadow_stage=False)


def test_a_result_round_trips_through_json() -> None:
    result = run(Gate("p99_ratio", "<=", 1.5), {"arm": ref(devices=8)})
    assert GateResult.from_json(result.to_json()) == result
    assert result.describe() == "p99_ratio = 1.000 (<= 1.5): pass"
