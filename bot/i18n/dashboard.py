"""Words of the App Home, the release summary and the charts, in Korean and English."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "chart_title": {"en": "{version}: error rate and p95", "ko": "{version}: 에러율과 P95"},
    # --- App Home ---
    "home_title": {"en": "Releases", "ko": "릴리스"},
    "home_active": {"en": "In progress", "ko": "진행 중"},
    "home_none_active": {"en": "No release is in progress.", "ko": "진행 중인 릴리스가 없습니다."},
    "home_more_active": {
        "en": "…and {count} more in progress (see `/release list`).",
        "ko": "…진행 중 {count}건 더 있음 (`/release list`).",
    },
    "home_release_line": {
        "en": "*{version}* in <#{channel}> · *Now:* {step} · started by {who} {when}",
        "ko": "*{version}* <#{channel}> · *현재:* {step} · {who} 님이 {when}에 시작",
    },
    "home_checklist": {"en": "Checklist: {parts}", "ko": "체크리스트: {parts}"},
    "home_next_reminder": {
        "en": ":alarm_clock: Next reminder {when}",
        "ko": ":alarm_clock: 다음 알림 {when}",
    },
    "home_no_reminder": {"en": "No reminder pending", "ko": "예정된 알림 없음"},
    "home_incident": {
        "en": ":rotating_light: *{title}* ({status}) since {when}",
        "ko": ":rotating_light: *{title}* ({status}) {when}부터",
    },
    "incident_state_open": {"en": "open", "ko": "미확인"},
    "incident_state_acknowledged": {"en": "acknowledged", "ko": "확인됨"},
    "incident_state_dismissed": {"en": "dismissed", "ko": "문제 아님"},
    "incident_state_resolved": {"en": "resolved", "ko": "해결됨"},
    "home_recent": {"en": "Last {count} releases", "ko": "최근 릴리스 {count}건"},
    "home_none_recent": {"en": "No release has ended yet.", "ko": "끝난 릴리스가 아직 없습니다."},
    "home_recent_line": {
        "en": "*{version}* · {status} · took {duration} · started {when}",
        "ko": "*{version}* · {status} · 소요 {duration} · 시작 {when}",
    },
    "home_updated": {"en": "Updated {when}", "ko": "{when} 갱신"},
    "home_open_thread": {"en": "Open thread", "ko": "스레드 열기"},
    # --- the summary in the thread ---
    "summary_title": {
        "en": ":memo: *Release {version} report* — {status} after {duration}",
        "ko": ":memo: *릴리스 {version} 리포트* — {duration} 만에 {status}",
    },
    "summary_phases": {"en": "*Time per phase*\n{lines}", "ko": "*단계별 소요 시간*\n{lines}"},
    # --- who did what (bot.usecases.summaries), one phrase per kind of act ---
    "did_release_started": {"en": "started the release", "ko": "릴리스 시작"},
    "did_item_checked": {"en": "ticked {n} item(s)", "ko": "항목 {n}개 체크"},
    "did_item_unchecked": {"en": "unticked {n} item(s)", "ko": "항목 {n}개 체크 해제"},
    "did_step_advanced": {"en": "moved it on {n} time(s)", "ko": "다음 단계로 {n}회 진행"},
    "did_release_finished": {"en": "finished it", "ko": "릴리스 완료"},
    "did_gate_overridden": {"en": "overrode {n} gate(s)", "ko": "강제 진행 {n}회"},
    "did_release_aborted": {"en": "aborted it", "ko": "릴리스 중단"},
    "did_rollback_confirmed": {"en": "confirmed a rollback", "ko": "롤백 확인"},
    "did_rollback_by_hand": {"en": "recorded a rollback done by hand", "ko": "수동 롤백 기록"},
    "did_health_check": {"en": "ran {n} health check(s)", "ko": "헬스체크 {n}회 실행"},
    "did_incident_acknowledged": {"en": "acknowledged {n} incident(s)", "ko": "인시던트 {n}건 확인"},
    "did_incident_dismissed": {"en": "dismissed {n} incident(s)", "ko": "인시던트 {n}건 문제 아님 처리"},
    "nobody_yet": {"en": "nobody yet", "ko": "아직 없음"},
    "summary_people": {"en": "*Who did what*\n{lines}", "ko": "*누가 무엇을*\n{lines}"},
    "summary_overrides": {"en": "*Overrides*\n{lines}", "ko": "*강제 진행*\n{lines}"},
    "summary_incidents": {"en": "*Incidents*\n{lines}", "ko": "*인시던트*\n{lines}"},
    "summary_completion": {"en": "Checklist: {parts}", "ko": "체크리스트: {parts}"},
    "summary_more": {
        "en": "The full report as a file: `/release report {version}`",
        "ko": "전체 리포트 파일: `/release report {version}`",
    },
    "summary_fallback": {"en": "Release {version} report", "ko": "릴리스 {version} 리포트"},
    "report_uploading": {
        "en": "Uploading the report of {version} to its thread…",
        "ko": "{version} 리포트를 스레드에 올리는 중…",
    },
    "report_upload_failed": {
        "en": "Slack would not take the report file ({code}). "
        "Try again, or run `release-bot export {version} --format md`.",
        "ko": "Slack이 리포트 파일을 받지 않았습니다 ({code}). "
        "다시 시도하거나 `release-bot export {version} --format md`를 실행하세요.",
    },
}
