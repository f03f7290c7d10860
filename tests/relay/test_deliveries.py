"""Which arrivals of an event a subscription passes on (pure: time is a parameter)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from nwcd.relay.deliveries import DeliveryFilter

A, B, C = "wss://a", "wss://b", "wss://c"


def test_first_arrival_passes_and_copies_from_other_relays_do_not() -> None:
    seen = DeliveryFilter(copy_window=10, resend_gap=1)
    assert seen.admit("e1", A, live=True, now=100.0)
    assert not seen.admit("e1", B, live=True, now=100.2)
    assert not seen.admit("e1", C, live=True, now=109.0)  # a slow relay, within the window


def test_a_re_send_through_a_relay_that_delivered_it_passes_again() -> None:
    seen = DeliveryFilter(copy_window=10, resend_gap=1)
    assert seen.admit("e1", A, live=True, now=100.0)
    assert not seen.admit("e1", B, live=True, now=100.1)
    # The app sent it again 3 s later (it saw no answer): once, however many relays.
    assert seen.admit("e1", B, live=True, now=103.0)
    assert not seen.admit("e1", A, live=True, now=103.1)
    assert not seen.admit("e1", C, live=True, now=103.2)


def test_a_relay_sending_everything_twice_costs_one_handling() -> None:
    seen = DeliveryFilter(copy_window=10, resend_gap=1)
    assert seen.admit("e1", A, live=True, now=100.0)
    assert not seen.admit("e1", A, live=True, now=100.01)


def test_after_the_copy_window_any_relay_counts_as_a_re_send() -> None:
    seen = DeliveryFilter(copy_window=10, resend_gap=1)
    assert seen.admit("e1", A, live=True, now=100.0)
    assert seen.admit("e1", B, live=True, now=110.0)


def test_a_replay_before_eose_is_never_a_re_send() -> None:
    seen = DeliveryFilter(copy_window=10, resend_gap=1)
    assert seen.admit("e1", A, live=True, now=100.0)
    # The subscription changed and the relay replays what it stored: not new.
    assert not seen.admit("e1", A, live=False, now=500.0)
    # An event never seen passes, replayed or not.
    assert seen.admit("e2", A, live=False, now=500.0)


def test_forgotten_events_pass_again() -> None:
    seen = DeliveryFilter(copy_window=10, resend_gap=1, capacity=2)
    for event_id in ("e1", "e2", "e3"):
        assert seen.admit(event_id, A, live=True, now=100.0)
    assert seen.admit("e1", B, live=True, now=100.0)  # e1 was evicted
    assert not seen.admit("e3", B, live=True, now=100.0)


arrivals = st.lists(
    st.tuples(st.sampled_from([A, B, C]), st.booleans(), st.floats(0, 5)), max_size=40
)


@given(arrivals)
def test_passed_arrivals_are_spaced_by_at_least_the_resend_gap(
    steps: list[tuple[str, bool, float]],
) -> None:
    seen = DeliveryFilter(copy_window=10, resend_gap=1)
    now, passed = 0.0, []
    for relay, live, step in steps:
        now += step
        if seen.admit("e", relay, live=live, now=now):
            passed.append(now)
    assert bool(passed) == bool(steps)  # the first arrival always passes
    assert all(later - earlier >= 1 for earlier, later in itertools.pairwise(passed))
