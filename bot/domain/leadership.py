"""Leadership as a lease: who may run the leader-only work, and until when it may believe so.

One process at a time runs the clock, the metric watch, the outbox and the repair sweep. It holds a *term*: an epoch
that the database hands out, one higher at every change of leader, and that every leader-only write checks in its own
transaction (``SqlUnitOfWork.leader_only``). A deposed leader's late write then names an old epoch and is refused.

With Postgres the term is a lease that the database times by its own clock: ``expires_at`` is set from the server's
clock at each renewal, and a candidate may take over only once the server's clock has passed it. The leader never
compares clocks with anyone: it times its own belief from the moment it *sent* the renewal the database later
confirmed, which is no later than the moment the database started the lease, and stops ``safety_s`` before the lease
can end. So it stops acting before any other process can have been elected, whatever the network does in between.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One leader's tenure: the database's epoch and the process that holds it."""

    epoch: int
    holder: str


@dataclass(frozen=True)
class LeaseTiming:
    """How long a lease lasts and how the leader keeps it. Times are seconds."""

    lease_s: float = 5.0  # a renewal holds this long by the database's clock
    renew_s: float = 1.0  # the leader renews this often; a candidate tries to take over this often
    statement_s: float = 1.5  # a lease statement unanswered by then is abandoned (its socket is shut)
    safety_s: float = 1.0  # the leader stops believing this long before the lease it saw confirmed can end

    def __post_init__(self) -> None:
        # One failed renewal (a statement abandoned at its deadline) must not cost a healthy leader its lease.
        if self.renew_s + self.statement_s >= self.lease_s - self.safety_s:
            raise ValueError("renew_s + statement_s must be shorter than lease_s - safety_s")

    def valid_until(self, sent_at: float) -> float:
        """Until when (same clock as ``sent_at``) a renewal sent at ``sent_at`` and confirmed lets us act."""
        return sent_at + self.lease_s - self.safety_s

    @property
    def step_down_bound_s(self) -> float:
        """After a silent cut, the leader has stopped acting within this: its last confirmed renewal was sent
        before the cut."""
        return self.lease_s - self.safety_s

    @property
    def takeover_bound_s(self) -> float:
        """After a silent cut, another replica has taken over within this: the last renewal the database saw ran
        before the cut, and a candidate tries every ``renew_s``, each try bounded by ``statement_s``."""
        return self.lease_s + self.renew_s + self.statement_s
