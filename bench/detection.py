"""Measure detection time with the DEFAULT settings: from the start of a sustained breach to the PagerDuty
trigger and to the Slack ping.

Not a test: run ``.venv/bin/python -m bench.detection [--runs 5] [--error-ratio 0.2] [--scrape 15]``
from the repository root. It runs the real Prometheus (Debian's binary, see scripts/fetch-prometheus.sh)
scraping the test exporter every ``--scrape`` seconds (15 s, like a production scrape config), the bot built
by ``bootstrap.build`` with the SHIPPED checklist (bot/checklist/deployment.yaml: sample every 15 s aligned to
Prometheus's scrapes, 2 consecutive breaches, 1m rate windows), the fake PagerDuty over HTTPS and the fake Slack,
on a throw-away SQLite file.

Each run starts a release, moves it into canary stage 1, lets the watch see healthy samples, then switches the
service to ``--error-ratio`` errors at a random moment and times:
- switch → first scrape that carries errors (the breach as Prometheus can first see it),
- switch → PagerDuty accepted the trigger,
- switch → the channel ping was posted.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.pagerduty import PagerDutyPager  # noqa: E402
from bot.db.engine import make_session_factory  # noqa: E402
from bot.db.uow import SqlUnitOfWork  # noqa: E402
from bot.domain.records import Actor  # noqa: E402
from bot.domain.release import StepKind  # noqa: E402
from bot.slack.gateway import ChannelPacer  # noqa: E402
from bot.usecases.releases import ReleaseView  # noqa: E402
from tests.conftest import SEED_CHECKLIST, RunningBot, make_settings, start_bot  # noqa: E402
from tests.fakes.pagerduty_api import FakePagerDuty  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.tls import make_tls_files  # noqa: E402
from tests.prom import harness  # noqa: E402
from tests.prom.exporter import Exporter  # noqa: E402

KEY = "R0UTINGKEY0123456789abcdef012345"
CHANNEL = "C0RELEASES"
BENCH = Actor("U0BENCH001", "bench")


def wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--error-ratio", type=float, default=0.2)
    parser.add_argument("--scrape", type=int, default=15, help="Prometheus scrape interval, seconds")
    args = parser.parse_args()
    binary = harness.find_binary()
    if binary is None:
        sys.exit("no prometheus binary: run scripts/fetch-prometheus.sh first")
    harness.SCRAPE_INTERVAL_S = args.scrape  # start_prometheus reads it when it writes the config

    work = Path(tempfile.mkdtemp(prefix="detection-"))
    exporter = Exporter().start()
    # A trickle of errors from the start: the shipped error-rate query has no "or vector(0)", so a service
    # that never answered 5xx reads as "no data" (see the report).
    exporter.set("backend", error_ratio=0.002, per_scrape=300, latencies=[(0.05, 0.9), (0.12, 0.1)])
    prom = harness.start_prometheus(binary, targets=[exporter.target], workdir=work)
    tls = make_tls_files(work)
    results: list[tuple[float, float, float]] = []
    with FakeSlack() as slack, FakePagerDuty(tls) as pd:
        settings = make_settings(
            f"sqlite:///{work / 'bot.db'}",
            slack,
            checklist_path=str(SEED_CHECKLIST),
            prometheus_url=prom.url,
            pagerduty_routing_key=KEY,
            pagerduty_events_url=pd.url,
            pagerduty_ca_bundle=str(tls.ca_path),
        )
        pager = PagerDutyPager(routing_key=KEY, events_url=pd.url, verify=str(tls.ca_path))
        # Defaults otherwise: the watch interval comes from the checklist (15 s), the outbox's is 2 s.
        rb = start_bot(settings, slack, pacer=ChannelPacer(0.0), pager=pager)
        try:
            print(f"prometheus scrape {args.scrape}s; waiting for a full 1m rate window…", flush=True)
            harness.wait_for_samples(prom, service="backend", scrapes=max(5, 75 // args.scrape))
            for run in range(args.runs):
                results.append(one_run(rb, exporter, pd, slack, run, args.error_ratio))
                print(
                    f"run {run + 1}: first errored scrape +{results[-1][0]:.1f} s, PagerDuty trigger "
                    f"+{results[-1][1]:.1f} s, Slack ping +{results[-1][2]:.1f} s",
                    flush=True,
                )
        finally:
            rb.stop()
            pager.close()
            prom.stop()
            exporter.stop()
    for name, index in (("PagerDuty trigger", 1), ("Slack ping", 2)):
        values = [r[index] for r in results]
        print(
            f"{name}: median {statistics.median(values):.1f} s, worst {max(values):.1f} s, "
            f"mean {statistics.mean(values):.1f} s, best {min(values):.1f} s "
            f"(from the switch to {args.error_ratio:.0%} errors; {len(values)} runs)"
        )


def one_run(rb, exporter: Exporter, pd: FakePagerDuty, slack: FakeSlack, run: int, ratio: float):  # type: ignore[no-untyped-def]
    version = f"v9.0.{run}"
    user = rb.user("U0BENCH001", "bench")
    user.command(f"start {version}")
    view = wait(lambda: _find(rb, version), 10, "the release")
    wait(lambda: rb.services.view(view.release.id).release.thread_ts, 10, "the release thread")
    steps = view.steps
    first_canary = next(s.key for s in steps if s.kind is StepKind.CANARY)
    for a, b in itertools.pairwise(steps):
        rb.bot.lifecycle.advance(
            view.release.id, from_step=a.key, to_step=b.key, actor=BENCH, override_reason="bench"
        )
        if b.key == first_canary:
            break
    rid = view.release.id
    # Healthy samples first, then the switch at a random phase of the scrape and sample cycles.
    seen = _samples(rb, rid)
    wait(lambda: _samples(rb, rid) >= seen + 4, 120, "two healthy samples")
    time.sleep(random.uniform(0, 15))
    scrapes = len(exporter.scrape_times("backend"))
    exporter.set("backend", error_ratio=ratio)
    switched = time.time()
    first_bad = exporter.wait_for_scrape("backend", after=scrapes, timeout=60)
    key = f"release:{rid}:error_rate"
    paged = pinged = 0.0
    deadline = time.monotonic() + 180
    # Both watched in one loop, so neither time waits on the other; polling adds at most 50 ms.
    while not (paged and pinged) and time.monotonic() < deadline:
        if not paged and pd.incidents.get(key):
            paged = time.time()
        if not pinged and any(
            "<!here>" in m.get("text", "") and version in m["text"] for m in slack.messages.get(CHANNEL, [])
        ):
            pinged = time.time()
        time.sleep(0.05)
    if not (paged and pinged):
        raise TimeoutError("no page or no ping within 180 s")
    exporter.set("backend", error_ratio=0.002)
    rb.bot.lifecycle.abort(rid, actor=BENCH, reason="bench run over")
    time.sleep(70)  # let the 1m window forget the errors before the next run
    return first_bad - switched, paged - switched, pinged - switched


def _find(rb: RunningBot, version: str) -> ReleaseView | None:
    try:
        view: ReleaseView = rb.services.find(CHANNEL, version)
    except Exception:
        return None
    return view


def _samples(rb, rid: int) -> int:  # type: ignore[no-untyped-def]
    with SqlUnitOfWork(make_session_factory(rb.bot.engine)) as uow:
        return int(uow.watch.samples.count(rid))


if __name__ == "__main__":
    main()
