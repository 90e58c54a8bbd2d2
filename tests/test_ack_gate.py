"""The work process's low-priority transactions wait while the serving process answers Slack (bot.runtime.ack_gate)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.db.engine import make_engine
from bot.runtime.ack_gate import AckGate

needs_sched_idle = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


def _app(seen: list[int], gate: AckGate) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(gate.in_flight)
        if environ.get("boom"):
            raise RuntimeError("the app failed")
        start_response("200 OK", [])
        return [b"ok"]

    return app


def test_slack_requests_are_counted_while_answered_and_others_are_not() -> None:
    gate = AckGate()
    seen: list[int] = []
    app = gate.track(_app(seen, gate))
    assert app({"PATH_INFO": "/slack/events"}, lambda *_: None) == [b"ok"]
    app({"PATH_INFO": "/healthz"}, lambda *_: None)
    with pytest.raises(RuntimeError):
        app({"PATH_INFO": "/slack/events", "boom": True}, lambda *_: None)
    assert seen == [1, 0, 1]
    assert gate.in_flight == 0  # a failed request does not leave the count raised


def test_the_count_is_shared_with_a_process_forked_after_it() -> None:
    gate = AckGate()
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    go = context.Event()

    def child() -> None:
        go.wait(10)
        writer.send(gate.in_flight)

    proc = context.Process(target=child)
    proc.start()
    with gate.answering():
        go.set()
        assert reader.poll(10)
        seen = reader.recv()
    proc.join(10)
    assert seen == 1


def _begin_in_thread(engine: Any, idle: bool, began: list[str]) -> threading.Thread:
    def run() -> None:
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        with engine.connect() as conn:
            conn.execute(text("select 1"))
            began.append("transaction")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _gated(tmp_path: Path, cap: float) -> tuple[Any, AckGate]:
    """The bot's own SQLite engine (its begin hook takes the write lock), gated as the work process gates it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    gate = AckGate()
    gate.hold_low_priority_transactions(engine, cap=cap)
    return engine, gate


@needs_sched_idle
def test_a_low_priority_transaction_begins_only_after_the_requests_in_flight_end(tmp_path: Path) -> None:
    engine, gate = _gated(tmp_path, cap=30.0)
    order: list[str] = []
    with gate.answering():
        thread = _begin_in_thread(engine, idle=True, began=order)
        time.sleep(0.3)  # ample time for the thread to have begun, were it not held
        order.append("answered")
    thread.join(10)
    assert order == ["answered", "transaction"]


@needs_sched_idle
def test_the_hold_is_capped_so_a_steady_stream_of_requests_cannot_stop_the_work(tmp_path: Path) -> None:
    engine, gate = _gated(tmp_path, cap=0.05)
    began: list[str] = []
    with gate.answering():
        _begin_in_thread(engine, idle=True, began=began).join(10)
        assert began == ["transaction"]  # while the request is still in flight


def test_normal_priority_threads_are_never_held(tmp_path: Path) -> None:
    engine, gate = _gated(tmp_path, cap=30.0)
    began: list[str] = []
    with gate.answering():
        _begin_in_thread(engine, idle=False, began=began).join(10)
        assert began == ["transaction"]


@needs_sched_idle
def test_a_held_transaction_does_not_hold_sqlite_s_write_lock(tmp_path: Path) -> None:
    engine, gate = _gated(tmp_path, cap=30.0)
    with engine.begin() as conn:  # this thread is not low priority: not held
        conn.execute(text("create table t (n integer)"))
    other = create_engine(engine.url, connect_args={"timeout": 0.5})
    order: list[str] = []
    with gate.answering():
        thread = _begin_in_thread(engine, idle=True, began=order)
        time.sleep(0.3)
        with other.begin() as conn:  # "database is locked" after 0.5 s if the held thread took the lock
            conn.execute(text("insert into t values (1)"))
        order.append("written beside it")
    thread.join(10)
    assert order == ["written beside it", "transaction"]
