"""The transition table on its own: every (from, to) pair, for both kinds of caller."""

from __future__ import annotations

import itertools

import pytest

from support.ticket.schemas import TicketStatus as S
from support.ticket.service import CUSTOMER_TRANSITIONS, TRANSITIONS, can_transition

NEVER = {(S.RESOLVED, S.IN_PROGRESS), (S.RESOLVED, S.WAITING), (S.CLOSED, S.IN_PROGRESS), (S.CLOSED, S.WAITING),
         (S.CLOSED, S.RESOLVED)}
CUSTOMER = {(S.OPEN, S.CLOSED), (S.IN_PROGRESS, S.CLOSED), (S.WAITING, S.CLOSED), (S.RESOLVED, S.CLOSED),
            (S.RESOLVED, S.OPEN)}


@pytest.mark.parametrize(("current", "target"), [p for p in itertools.product(S, S) if p[0] != p[1]])
def test_every_pair(current, target):
    owner = can_transition(current, target, owner=True)
    customer = can_transition(current, target, owner=False)
    if (current, target) in NEVER:
        assert owner is None and customer is None
    else:
        assert owner is True
        assert customer is ((current, target) in CUSTOMER)


def test_closed_is_final_except_the_owners_reopen_and_customers_never_exceed_the_table():
    assert TRANSITIONS[S.CLOSED] == {S.OPEN} and CUSTOMER_TRANSITIONS[S.CLOSED] == set()
    assert set(TRANSITIONS) == set(S) == set(CUSTOMER_TRANSITIONS)
    for status in S:
        assert CUSTOMER_TRANSITIONS[status] <= TRANSITIONS[status]
        assert status not in TRANSITIONS[status]
