"""Pacing of drift repairs: at once the first time, then 5 s, 10 s, 20 s ... up to the resync interval."""

from __future__ import annotations

from itertools import pairwise

from argobridge.core.repairs import FIGHT_AFTER_REPAIRS, decide_repair, fight_message, repair_delay

CAP = 300.0


def test_delays_double_from_five_seconds_up_to_the_resync_interval():
    assert [repair_delay(n, CAP) for n in range(8)] == [0.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0]
    assert repair_delay(50, CAP) == CAP


def test_a_key_changed_once_is_repaired_at_once_with_its_usual_event():
    decision = decide_repair(None, 1000.0, CAP)
    assert decision.repair and decision.announce and not decision.warn


def test_a_fight_is_repaired_ever_more_slowly_and_warned_about_once():
    state, now, repaired, warnings, announced = None, 0.0, [], 0, 0
    while now < 3600:  # the other writer changes the key back every second for an hour
        decision = decide_repair(state, now, CAP)
        state = decision.state
        if decision.repair:
            repaired.append(now)
            warnings += decision.warn
            announced += decision.announce
        now += 1.0
    assert warnings == 1
    assert announced == FIGHT_AFTER_REPAIRS - 1, "only the first repairs post their own Event"
    gaps = [b - a for a, b in pairwise(repaired)]
    assert gaps[:4] == [5.0, 10.0, 20.0, 40.0] and max(gaps) == CAP
    assert len(repaired) < 20, "an hour of fighting costs a handful of writes, not 3,600"


def test_a_key_left_alone_long_enough_is_forgiven():
    first = decide_repair(None, 0.0, CAP).state
    later = decide_repair(first, 4 * CAP + 1, CAP)
    assert later.repair and later.state.repairs == 1 and later.announce


def test_the_warning_names_the_key_the_object_and_how_to_find_the_writer():
    message = fight_message("ConfigMap", "argocd", "argocd-notifications-cm", ["template.app-sync-backstage"], 3)
    assert "template.app-sync-backstage" in message and "argocd/argocd-notifications-cm" in message
    assert "kubectl get configmap argocd-notifications-cm -n argocd -o yaml --show-managed-fields" in message
