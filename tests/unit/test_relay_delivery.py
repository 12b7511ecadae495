"""Properties of the relay's pure delivery decisions and body fitting."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from argobridge.core import backstage_limits as limits
from argobridge.core.delivery import Answer, Outcome, classify, coalesce_key, decide, next_attempt_at

statuses = st.one_of(st.none(), st.integers(100, 599))
answers = st.builds(
    Answer, status=statuses, body_prefix=st.sampled_from(["", "[]", '[{"id":1}]', "Failed to send user notifications"])
)


@given(
    st.lists(st.tuples(answers, st.floats(0, 10_000), st.floats(0, 1)), min_size=1, max_size=50), st.floats(1, 5_000)
)
def test_every_item_ends_once_and_is_never_retried_after_a_final_result(
    steps: list[tuple[Answer, float, float]], retry_for: float
) -> None:
    now = 0.0
    finals = 0
    for attempts, (answer, gap, rnd) in enumerate(steps, start=1):
        now += gap
        outcome, when = decide(
            answer, received_at=0.0, now=now, attempts=attempts, retry_for_seconds=retry_for, random_fraction=rnd
        )
        if outcome.final:
            assert when is None
            finals += 1
            break
        assert when is not None and when >= now
        if outcome is Outcome.HOLD:
            assert now <= retry_for  # a hold never dead-letters before retryFor
    assert finals <= 1


def test_answers_classify_as_the_contract_says() -> None:
    assert classify(Answer(200, '[{"id":1}]')) is Outcome.DELIVERED
    assert classify(Answer(200, "[]")) is Outcome.NO_RECIPIENTS
    assert classify(Answer(401)) is Outcome.HOLD
    assert classify(Answer(403)) is Outcome.HOLD
    assert classify(Answer(None, error="timeout")) is Outcome.RETRY
    assert classify(Answer(503)) is Outcome.RETRY
    assert classify(Answer(400, '{"error":{"message":"Failed to send user notifications"}}')) is Outcome.RETRY
    assert classify(Answer(400, '{"error":"Invalid link provided"}')) is Outcome.REJECTED
    assert next_attempt_at(Outcome.DELIVERED, 0, 1, 0.5) is None


def test_coalescing_key_groups_same_scope_and_recipients_only() -> None:
    a = {"recipients": {"type": "entity", "entityRef": ["user:default/a"]}, "payload": {"title": "x", "scope": "s"}}
    b = {"recipients": {"entityRef": ["user:default/a"], "type": "entity"}, "payload": {"title": "y", "scope": "s"}}
    assert coalesce_key("ns.b", a) == coalesce_key("ns.b", b)
    assert coalesce_key("ns.c", a) != coalesce_key("ns.b", a)
    assert coalesce_key("ns.b", {"recipients": {}, "payload": {"title": "x"}}) is None


@given(st.text(), st.text(), st.text(), st.text())
def test_fitted_body_stays_within_backstage_limits(title: str, description: str, link: str, severity: str) -> None:
    body = {
        "recipients": {"type": "broadcast"},
        "payload": {"title": title * 50, "description": description * 500, "link": link, "severity": severity},
    }
    fitted = limits.fit_notification(body)["payload"]
    assert 1 <= len(fitted["title"]) <= limits.SHORT_FIELD_CHARS
    assert len(fitted.get("description", "")) <= limits.DESCRIPTION_CHARS
    assert fitted.get("severity", "normal") in limits.SEVERITIES
    encoded = json.dumps(limits.fit_notification(body), ensure_ascii=False).encode("utf-8")
    assert len(encoded) <= limits.BODY_LIMIT_BYTES
    assert "\x00" not in fitted["title"]
    if len(title * 50) > limits.SHORT_FIELD_CHARS and "\x00" not in title:
        assert fitted["title"].endswith(limits.TRUNCATION_MARKER)
