"""The ``release-bot`` command line: serve, db upgrade, checklist check/init, export, resync, playground."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bot.errors import ReleaseBotError
from bot.i18n import t


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release-bot", description="Slack release checklist bot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "serve", help="run the bot (HTTP on HOST:PORT, or Socket Mode when SLACK_APP_TOKEN is set)"
    )
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply pending migrations (idempotent)")
    check = sub.add_parser("checklist", help="checklist files")
    check_sub = check.add_subparsers(dest="checklist_command", required=True)
    check_file = check_sub.add_parser(
        "check",
        help="validate a checklist file, or a set of them (a directory, several files), and summarise it",
    )
    check_file.add_argument(
        "file",
        nargs="*",
        help="the file, a directory of them or several files (default: RELEASE_BOT_CHECKLIST, else the shipped "
        "deployment.yaml)",
    )
    check_file.add_argument(
        "--cluster",
        action="store_true",
        help="also read the traffic provider's Rollout or HTTPRoute (KUBECONFIG) and name each mismatch",
    )
    init = check_sub.add_parser(
        "init", help="write the shipped checklist (HallyuLatino's process) to FILE, to start your team's own"
    )
    init.add_argument("file", nargs="?", default="checklist.yaml", help="where to write it (checklist.yaml)")
    init.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export = sub.add_parser("export", help="print the audit trail of a release")
    export.add_argument("version")
    export.add_argument("--format", choices=("json", "csv", "md"), default="json")
    export.add_argument("--service", help="the service, where several services released this version")
    resync = sub.add_parser("resync", help="bring a release's Slack messages back in line with the database")
    resync.add_argument("version")
    resync.add_argument("--service", help="the service, where several services released this version")
    playground = sub.add_parser(
        "playground",
        help="try the bot in this terminal: the real bot against a simulated Slack, cluster, Prometheus and "
        "PagerDuty, on a throwaway SQLite file; no credentials",
    )
    playground.add_argument(
        "--checklist", metavar="FILE", help="the checklist to run (default: the shipped deployment.yaml)"
    )
    playground.add_argument(
        "--speed",
        type=float,
        default=180.0,
        help="divide the checklist's waits by this (default 180: 15 minutes pass in 5 seconds; 1 is real time)",
    )
    playground.add_argument(
        "--out", metavar="DIR", help="where to write charts and reports (default: a new temp folder)"
    )
    playground.add_argument(
        "--rollout",
        action="store_true",
        help="drive a simulated Argo Rollout (traffic: argo-rollouts) so the canary split moves with the stages",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ReleaseBotError as e:
        print(f"release-bot: {t('en', e.user_message, **e.params)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from bot.config import load_settings

    if args.command == "checklist":
        from bot.checklist.loading import load_checklist, write_starter
        from bot.checklist.summary import summarize

        if args.checklist_command == "init":
            written = write_starter(args.file, force=args.force)
            print(f"wrote {written}: the shipped checklist, to edit into your team's own")
            print(f"check it with:  release-bot checklist check {written}")
            print(f"run the bot on it with:  RELEASE_BOT_CHECKLIST={written.resolve()} release-bot serve")
            return 0
        from bot.config import parse_contacts
        from bot.domain.checklist import contacts_without_id, unmatched_contact_names, with_contact_ids

        path = ",".join(args.file) or load_settings(os.environ).checklist_path
        ids = parse_contacts(os.environ.get("RELEASE_CONTACTS", ""))
        from bot.checklist.loading import checklist_files

        files = checklist_files(path)
        if len(files) > 1 or Path(path).is_dir():
            return _check_set(files, ids, cluster=args.cluster)
        checklist = load_checklist(path)
        checklist = replace(checklist, contacts=with_contact_ids(checklist.contacts, ids))
        print(f"{path}:")
        print(summarize(checklist))
        # Warnings, not errors: the file is valid, but an incident would notify nobody by these roles.
        for contact in contacts_without_id(checklist.contacts):
            print(
                f"warning: contact {contact.key} ({contact.role}) has no Slack id, so an incident shows "
                f"{contact.handle or contact.role} as plain text and notifies nobody: set its slack_id (U… or S…) "
                f"or RELEASE_CONTACTS={contact.key}=U…"
            )
        for name in unmatched_contact_names(checklist.contacts, ids):
            print(f"warning: RELEASE_CONTACTS names {name!r}, which is no contact of this checklist")
        if not args.cluster:
            return 0
        from bot.runtime.traffic_wiring import cluster_check

        stages = tuple(s.traffic_percent for s in checklist.canary_stages)
        problems = cluster_check(checklist.traffic, stages, os.environ)
        for problem in problems:
            print(f"mismatch: {problem}")
        if not problems:
            print(f"cluster: {checklist.traffic.describe()} fits the canary stages")
        return 1 if problems else 0
    if args.command == "playground":
        from bot.playground.shell import main as playground

        return playground(checklist=args.checklist, speed=args.speed, out_dir=args.out, rollout=args.rollout)
    settings = load_settings(os.environ)
    if args.command == "serve":
        from bot.runtime.server import serve

        return serve(settings)
    if args.command == "db":
        from bot.db.migrate import prepare
        from bot.db.problems import safe_url

        prepare(settings.database_url)
        print(f"database is up to date: {safe_url(settings.database_url)}")
        return 0
    if args.command == "export":
        return _export(settings.database_url, args.version, args.format, settings.language, args.service)
    if args.command == "resync":
        from bot.runtime.server import resync

        return resync(settings, args.version, args.service)
    return 2


def _check_set(files: list[Path], ids: tuple[tuple[str, str], ...], *, cluster: bool) -> int:
    """``checklist check`` of several files: each one's summary line, then every problem of a file or the set."""
    from bot.checklist.loading import read_checklist, set_errors
    from bot.domain.checklist import contacts_without_id, unmatched_contact_names, with_contact_ids
    from bot.domain.checklist_set import Member
    from bot.errors import ChecklistError

    members, errors = [], []
    for path in files:
        try:
            checklist, text = read_checklist(path)
        except ChecklistError as e:
            errors += [f"error: {line}" for line in e.user_message.splitlines()]
            continue
        checklist = replace(checklist, contacts=with_contact_ids(checklist.contacts, ids))
        members.append(Member(checklist, text, str(path)))
        version = f", version {checklist.version}" if checklist.version else ""
        where = f"channels {', '.join(checklist.channels)}" if checklist.channels else "every other channel"
        managers = f"; managers {', '.join(checklist.managers)}" if checklist.managers else ""
        print(
            f"{path}: {checklist.title} (service {checklist.service}, name {checklist.name}{version}): {where}{managers}"
        )
        for contact in contacts_without_id(checklist.contacts):
            print(
                f"warning: {path}: contact {contact.key} ({contact.role}) has no Slack id, so an incident notifies nobody"
            )
    every = tuple(contact for m in members for contact in m.checklist.contacts)
    for name in unmatched_contact_names(every, ids):
        print(f"warning: RELEASE_CONTACTS names {name!r}, which is no contact of any checklist")
    errors += [f"error: {line}" for line in set_errors(members)]
    if cluster and not errors:
        from bot.runtime.traffic_wiring import cluster_check

        for m in members:
            if m.checklist.traffic.is_manual:
                continue
            stages = tuple(s.traffic_percent for s in m.checklist.canary_stages)
            errors += [
                f"mismatch: {m.path}: {p}" for p in cluster_check(m.checklist.traffic, stages, os.environ)
            ]
    for line in errors:
        print(line)
    print(
        f"{len(members)} of {len(files)} checklists valid; "
        + (f"{len(errors)} problem{'' if len(errors) == 1 else 's'}" if errors else "the set is valid")
    )
    return 1 if errors else 0


def _export(database_url: str, version: str, fmt: str, lang: str, service: str | None = None) -> int:
    from bot.db.migrate import require_current
    from bot.db.problems import no_release
    from bot.errors import NotFound
    from bot.runtime.bootstrap import reading
    from bot.usecases.reports import audit_rows, markdown_report

    require_current(database_url)
    with reading(database_url) as services:
        try:
            record, events = services.audit_trail(version, service)
        except NotFound as e:
            raise no_release(version, database_url) from e
        rows = audit_rows(record, events)
        if fmt == "json":
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        elif fmt == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(
                out, fieldnames=list(rows[0].keys()) if rows else ["at"], lineterminator="\n"
            )
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {
                        k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v
                        for k, v in row.items()
                    }
                )
            sys.stdout.write(out.getvalue())
        else:
            view = services.view(record.id)
            print(markdown_report(view, events, lang=lang))
    return 0
