"""Fleet lifecycle in the store: decommissioned devices, relabelling, revoked enrolment tokens,
the deployment history and the audit log. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from edgefleet.errors import ConfigurationError, NotFoundError
from edgefleet.server.store import Store

from .helpers import NOW, enrol


def test_a_decommissioned_device_keeps_its_row_but_not_its_credential(store: Store) -> None:
    enrol(store, "dev-1", {"region": "eu"})
    enrol(store, "dev-2", {"region": "eu"})
    row, old_hash = store.decommission_device("dev-1", NOW + 5)
    assert old_hash == "cred-dev-1"
    assert row.decommissioned_at == NOW + 5
    assert store.find_device_by_credential("cred-dev-1") is None
    shown = store.get_device("dev-1")
    assert shown is not None
    assert shown.decommissioned_at == NOW + 5
    assert shown.labels == {"region": "eu"}


def test_a_decommissioned_device_leaves_every_selection(store: Store) -> None:
    enrol(store, "dev-1", {"region": "eu"})
    enrol(store, "dev-2", {"region": "eu"})
    store.decommission_device("dev-1", NOW)
    assert [d.device_id for d in store.list_devices({"region": "eu"})] == ["dev-2"]
    assert [d.device_id for d in store.list_devices()] == ["dev-2"]
    everyone = store.list_devices(include_decommissioned=True)
    assert [d.device_id for d in everyone] == ["dev-1", "dev-2"]


def test_decommissioning_twice_keeps_the_first_time(store: Store) -> None:
    enrol(store, "dev-1")
    store.decommission_device("dev-1", NOW)
    again, _ = store.decommission_device("dev-1", NOW + 100)
    assert again.decommissioned_at == NOW


def test_decommissioning_an_unknown_device_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        store.decommission_device("nope", NOW)


def test_labels_are_set_and_removed_and_selectors_see_them(store: Store) -> None:
    enrol(store, "dev-1", {"region": "eu", "hw": "x86"})
    row = store.update_device_labels("dev-1", {"region": "us"}, remove=["hw"])
    assert row.labels == {"region": "us"}
    assert [d.device_id for d in store.list_devices({"region": "us"})] == ["dev-1"]
    with pytest.raises(NotFoundError, match="nope"):
        store.update_device_labels("nope", {})


def test_a_malformed_label_changes_nothing(store: Store) -> None:
    enrol(store, "dev-1", {"region": "eu"})
    with pytest.raises(ConfigurationError, match="bad key"):
        store.update_device_labels("dev-1", {"bad key": "x"})
    assert store.get_device("dev-1") == store.list_devices()[0]
    assert store.list_devices()[0].labels == {"region": "eu"}


def test_two_label_changes_at_the_same_time_are_both_kept(store: Store) -> None:
    # each round, two requests set a different key of one device at once; a change read
    # before the other was written and stored after it would drop the other's key
    enrol(store, "dev-1", {"region": "eu"})
    rounds = 25
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def relabel(prefix: str) -> None:
        try:
            for index in range(rounds):
                start.wait(timeout=60)
                store.update_device_labels("dev-1", {f"{prefix}{index}": "x"})
        except BaseException as exc:  # reported by the test's thread
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=relabel, args=(p,)) for p in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    device = store.get_device("dev-1")
    assert device is not None
    expected = {"region": "eu"} | {f"{p}{i}": "x" for p in "ab" for i in range(rounds)}
    assert device.labels == expected


def test_a_revoked_enrolment_token_enrols_nothing_more(store: Store) -> None:
    token = store.create_enroll_token("enroll-1", labels={}, uses=5, expires_at=None, now=NOW)
    revoked = store.revoke_enroll_token(token.id, NOW + 1)
    assert revoked.revoked_at == NOW + 1
    assert store.consume_enroll_token("enroll-1", NOW + 2) is None
    assert store.revoke_enroll_token(token.id, NOW + 9).revoked_at == NOW + 1
    assert store.list_enroll_tokens() == [revoked]
    with pytest.raises(NotFoundError, match="42"):
        store.revoke_enroll_token(42, NOW)


def test_deployments_are_kept_newest_first_in_pages(store: Store) -> None:
    made = [
        store.add_deployment(
            model="digits",
            version=str(i),
            release=i,
            selector={"region": "eu"},
            devices=["dev-1"],
            actor="ops",
            now=NOW + i,
        )
        for i in range(1, 4)
    ]
    first = store.list_deployments(limit=2)
    assert [d.version for d in first] == ["3", "2"]
    rest = store.list_deployments(limit=2, before_id=first[-1].id)
    assert [d.version for d in rest] == ["1"]
    assert store.get_deployment(made[0].id) == made[0]
    assert store.get_deployment(made[-1].id + 1) is None
    assert made[0].selector == {"region": "eu"}
    assert made[0].devices == ["dev-1"]


def test_the_audit_log_pages_newest_first_and_filters(store: Store) -> None:
    for i, (actor, action) in enumerate(
        [("ops", "deployments.create"), ("server", "rollout.advance"), ("server", "rollout.pause")]
    ):
        store.add_audit(
            at=NOW + i, actor=actor, action=action, target=f"t{i}", outcome="ok", detail={"i": i}
        )
    page = store.list_audit(limit=2)
    assert [e.action for e in page] == ["rollout.pause", "rollout.advance"]
    older = store.list_audit(limit=2, before_id=page[-1].id)
    assert [(e.actor, e.target, e.detail) for e in older] == [("ops", "t0", {"i": 0})]
    assert [e.target for e in store.list_audit(limit=10, action="rollout")] == ["t2", "t1"]
    assert [e.target for e in store.list_audit(limit=10, actor="ops")] == ["t0"]
    assert [e.target for e in store.list_audit(limit=10, since=NOW + 2)] == ["t2"]
    assert store.list_audit(limit=10, action="roll") == []


def test_audit_texts_longer_than_their_columns_are_cut_not_refused(store: Store) -> None:
    row = store.add_audit(at=NOW, actor="a" * 300, action="x", target="t" * 900, outcome="o" * 900)
    assert (len(row.actor), len(row.target), len(row.outcome)) == (200, 500, 500)
