"""The App Home tab: active releases (progress, checklist, next reminder, open incidents) and the last ten, of
the channels the viewer is a member of.

Rendering is pure (``render_home``). ``HomePublisher`` keeps it current: it remembers who opened the tab
recently (bounded, in memory) and re-publishes for them after each release transition, at most once per user
per interval, coalescing everything that happened meanwhile into one ``views.publish`` (Tier 4), always on
the background pool.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.incident import IncidentRecord, IncidentStatus
from bot.domain.release import progress
from bot.i18n import t
from bot.ports import Clock
from bot.slack.authz import ChannelMembers
from bot.slack.blocks import Block, _progress_bar, clip, escape, step_label
from bot.slack.dates import slack_date
from bot.slack.gateway import SlackGateway, permalink
from bot.slack.ids import ActionId
from bot.usecases.lifecycle import Transition
from bot.usecases.releases import ReleaseView, Services, UowFactory
from bot.usecases.summaries import fmt_duration

log = logging.getLogger(__name__)
MAX_BLOCKS = 100
MAX_BYTES = 250_000  # Slack's limit on a view's JSON
MAX_ACTIVE = 15  # 5 blocks each: with the recent list, the tab stays under 100 blocks
RECENT = 10
LIVE = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)


@dataclass(frozen=True)
class HomeData:
    """What the tab shows, read in one go."""

    active: tuple[tuple[ReleaseView, tuple[IncidentRecord, ...]], ...]
    recent: tuple[ReleaseView, ...]
    now: datetime
    team_domain: str | None = None


def _text(text: str) -> Block:
    return {"type": "mrkdwn", "text": clip(text), "verbatim": True}  # incident titles and reasons are people's


def _thread_button(view: ReleaseView, domain: str | None, lang: str) -> Block | None:
    if view.release.thread_ts is None:
        return None
    return {
        "type": "button",
        # Unique per view; Slack still sends a click on a url button, which the home listener just acks.
        "action_id": f"{ActionId.OPEN_THREAD.value}:{view.release.id}",
        "text": {"type": "plain_text", "text": t(lang, "home_open_thread")},
        "url": permalink(domain, view.release.channel_id, view.release.thread_ts),
    }


def _release_named(view: ReleaseView) -> str:
    """The version, and where one deployment runs several checklists, the service it belongs to."""
    version = escape(view.release.version)
    return f"`{escape(view.release.service)}` {version}" if view.named else version


def _active_blocks(
    view: ReleaseView, incidents: Sequence[IncidentRecord], data: HomeData, lang: str
) -> list[Block]:
    record = view.release
    line = t(
        lang,
        "home_release_line",
        version=_release_named(view),
        channel=record.channel_id,
        step=step_label(view.checklist, view.current_step, lang),
        who=record.started_by.mention,
        when=slack_date(record.started_at, "{date_short_pretty} {time}"),
    )
    head: Block = {"type": "section", "text": _text(line)}
    button = _thread_button(view, data.team_domain, lang)
    if button is not None:
        head["accessory"] = button
    counts = progress(view.checklist, view.checked)
    parts = " · ".join(
        f"{escape(p.title)} {counts[p.key][0]}/{counts[p.key][1]}"
        for p in view.checklist.flow_phases
        if counts[p.key][1]
    )
    reminder = (
        t(lang, "home_next_reminder", when=slack_date(view.next_timer.due_at, "{time} ({ago})"))
        if view.next_timer is not None
        else t(lang, "home_no_reminder")
    )
    blocks = [
        head,
        {"type": "section", "text": _text(_progress_bar(view, lang))},
        {"type": "context", "elements": [_text(t(lang, "home_checklist", parts=parts)), _text(reminder)]},
    ]
    if incidents:
        lines = [
            t(
                lang,
                "home_incident",
                title=escape(str(i.details.get("title") or i.criterion)),
                status=t(lang, f"incident_state_{i.status.value}"),
                when=slack_date(i.created_at, "{time}"),
            )
            for i in incidents[:5]
        ]
        blocks.append({"type": "section", "text": _text("\n".join(lines))})
    blocks.append({"type": "divider"})
    return blocks


def _recent_block(view: ReleaseView, data: HomeData, lang: str) -> Block:
    record = view.release
    took = fmt_duration((record.ended_at or data.now) - record.started_at)
    line = t(
        lang,
        "home_recent_line",
        version=_release_named(view),
        status=t(lang, f"status_{record.status}"),
        duration=took,
        when=slack_date(record.started_at, "{date_short_pretty} {time}"),
    )
    block: Block = {"type": "section", "text": _text(line)}
    button = _thread_button(view, data.team_domain, lang)
    if button is not None:
        block["accessory"] = button
    return block


def render_home(data: HomeData, lang: str) -> dict[str, Any]:
    """The Home view: within 100 blocks and 250 KB whatever the number of releases."""
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": t(lang, "home_title")}},
        {
            "type": "context",
            "elements": [
                _text(t(lang, "home_updated", when=slack_date(data.now, "{time}"))),
                _text(t(lang, "home_members_only")),
            ],
        },
        {"type": "header", "text": {"type": "plain_text", "text": t(lang, "home_active")}},
    ]
    recent = [_recent_block(v, data, lang) for v in data.recent[:RECENT]]
    tail: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": t(lang, "home_recent", count=RECENT)}},
        *(recent or [{"type": "section", "text": _text(t(lang, "home_none_recent"))}]),
    ]
    if not data.active:
        blocks.append({"type": "section", "text": _text(t(lang, "home_none_active"))})
    shown = 0
    for view, incidents in data.active[:MAX_ACTIVE]:
        part = _active_blocks(view, incidents, data, lang)
        trial = [*blocks, *part]
        # One more release must leave room for the "more" note and the recent list.
        if len(trial) + len(tail) + 1 > MAX_BLOCKS or _size(trial) + _size(tail) + 500 > MAX_BYTES:
            break
        blocks, shown = trial, shown + 1
    if shown < len(data.active):
        blocks.append(
            {
                "type": "context",
                "elements": [_text(t(lang, "home_more_active", count=len(data.active) - shown))],
            }
        )
    return {"type": "home", "blocks": blocks + tail}


def _size(blocks: list[Block]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False).encode("utf-8"))


class HomeReader:
    """Reads what the Home tab shows, in one unit of work."""

    def __init__(self, *, uow: UowFactory, services: Services, clock: Clock) -> None:
        self._uow = uow
        self._services = services
        self._clock = clock

    def channels(self) -> list[str]:
        with self._uow() as uow:
            return uow.releases.channels()

    def read(self, channels: Collection[str]) -> HomeData:
        """What the tab shows of releases in ``channels`` only (the viewer's own)."""
        with self._uow() as uow:
            active_records = uow.releases.active(limit=MAX_ACTIVE + 1, channel_ids=channels)
            watch = getattr(uow, "watch", None)  # the incidents repository, where the metric watch is built
            active = tuple(
                (
                    self._services.view_in(uow, r.id),
                    tuple(watch.incidents.for_release(r.id, LIVE)) if watch is not None else (),
                )
                for r in active_records
            )
            ended = [
                r
                for r in uow.releases.recent(limit=RECENT + len(active_records), channel_ids=channels)
                if r.status != "active"
            ]
            recent = tuple(self._services.view_in(uow, r.id) for r in ended[:RECENT])
        return HomeData(active=active, recent=recent, now=self._clock.now())


# views.publish is Tier 4, "100+" a minute per app and workspace (reference/slack.md §6). Each replica publishes
# for the people whose clicks it serves, so each keeps under half of it.
HOME_PUBLISHES_PER_MINUTE = 45.0


class HomePublisher:
    """Publishes the Home tab for people who opened it lately: at most once per ``min_interval_s`` per user, at
    most ``per_minute`` a minute for the whole workspace, coalesced (a publish already waiting for someone includes
    whatever changed meanwhile), off-thread. One scheduler thread holds the waiting publishes, started on first need."""

    def __init__(
        self,
        *,
        reader: HomeReader,
        gateway: SlackGateway,
        members: ChannelMembers,
        submit: Callable[..., Future[Any]],
        lang: str,
        min_interval_s: float = 10.0,
        per_minute: float | None = HOME_PUBLISHES_PER_MINUTE,
        max_viewers: int = 500,
        viewer_ttl_s: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._gateway = gateway
        self._members = members
        self._submit = submit
        self._lang = lang
        self._interval = min_interval_s
        self._gap = 60.0 / per_minute if per_minute else 0.0
        self._max_viewers = max_viewers
        self._ttl = viewer_ttl_s
        self._monotonic = monotonic
        self._lock = threading.Condition()
        self._viewers: OrderedDict[str, float] = OrderedDict()  # user → when they last opened the tab
        self._next_at: dict[str, float] = {}  # user → earliest next publish for them
        self._slot_at = 0.0  # earliest next publish for anyone (the workspace's pace)
        self._pending: set[str] = set()  # users with a publish reserved and not yet rendered
        self._waiting: list[tuple[float, str]] = []  # heap of (when, user) the scheduler hands to the pool
        self._scheduler: threading.Thread | None = None
        self._stopped = False
        self.published = 0

    def opened(self, user_id: str) -> None:
        """``app_home_opened``: remember the viewer and draw the tab for them."""
        with self._lock:
            self._viewers[user_id] = self._monotonic()
            self._viewers.move_to_end(user_id)
            while len(self._viewers) > self._max_viewers:
                old, _ = self._viewers.popitem(last=False)
                self._next_at.pop(old, None)
        self.request(user_id)

    def viewers(self) -> list[str]:
        cutoff = self._monotonic() - self._ttl
        with self._lock:
            for user in [u for u, at in self._viewers.items() if at < cutoff]:
                del self._viewers[user]
            return list(self._viewers)

    def on_transition(self, _transition: Transition) -> None:
        """Lifecycle hook: every recent viewer's tab is redrawn, once per interval at most."""
        for user in self.viewers():
            self.request(user)

    def request(self, user_id: str) -> float | None:
        """Ask for a publish and reserve its turn; the seconds until it goes, or None when one already waits for
        this user (it will include whatever changed)."""
        with self._lock:
            if user_id in self._pending or self._stopped:
                return None
            now = self._monotonic()
            at = max(now, self._next_at.get(user_id, 0.0), self._slot_at)
            self._slot_at = at + self._gap
            self._pending.add(user_id)
            delay = max(0.0, at - now)
            if delay > 0:
                heapq.heappush(self._waiting, (at, user_id))
                if self._scheduler is None:
                    self._scheduler = threading.Thread(target=self._schedule, name="home-publish", daemon=True)
                    self._scheduler.start()
                self._lock.notify()
        if delay == 0:
            self._queue(user_id)
        return delay

    def _schedule(self) -> None:
        with self._lock:
            while not self._stopped:
                if not self._waiting:
                    self._lock.wait()
                    continue
                at, user_id = self._waiting[0]
                wait = at - self._monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._waiting)
                self._lock.release()
                try:
                    self._queue(user_id)
                finally:
                    self._lock.acquire()

    def _queue(self, user_id: str) -> None:
        try:
            self._submit(self.publish, user_id)
        except RuntimeError:  # the pool is shut down: the bot is stopping
            with self._lock:
                self._pending.discard(user_id)

    def publish(self, user_id: str) -> None:
        with self._lock:
            # Cleared before reading, so a change committed while we render asks for one more publish.
            self._pending.discard(user_id)
            self._next_at[user_id] = self._monotonic() + self._interval
        # Only releases of channels the viewer is in: a private channel's releases stay in that channel.
        visible = [c for c in self._reader.channels() if self._members.is_member(c, user_id)]
        view = render_home(self._reader.read(visible), self._lang)
        self._gateway.publish_home(user_id, view)
        self.published += 1

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._waiting.clear()
            self._pending.clear()
            self._lock.notify_all()
        if self._scheduler is not None:
            self._scheduler.join(timeout=2.0)
