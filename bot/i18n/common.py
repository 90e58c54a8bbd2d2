"""Words of the commands, the checklist messages and the errors, in Korean (the default) and English."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    # --- usage and errors ---
    "usage": {
        "en": (
            "*Usage*\n"
            "• `/release start v1.2.3` start a release and post its checklist\n"
            "• `/release status [v1.2.3]` where a release stands (only you see it)\n"
            "• `/release list` active and recent releases\n"
            "• `/release abort v1.2.3 <reason>` abort a release\n"
            "• `/release incident v1.2.3 <reason>` declare an incident (pages on-call)\n"
            "• `/release rollback v1.2.3` roll production back\n"
            "• `/release unlock <reason>` clear the production lock after a rollback\n"
            "• `/release rolledback [v1.2.3] <reason>` record a rollback done by hand (follow-up and report)\n"
            "• `/release contacts` the emergency contacts (only you see them)\n"
            "• `/release report v1.2.3` the release report as a file\n"
            "• `/release help` this help\n"
            "Where a channel runs several services' releases, name the service before the version: "
            "`/release start backend v1.2.3`, `/release status backend v1.2.3`"
        ),
        "ko": (
            "*사용법*\n"
            "• `/release start v1.2.3` 릴리스를 시작하고 체크리스트를 게시합니다\n"
            "• `/release status [v1.2.3]` 릴리스 현황 (나에게만 표시)\n"
            "• `/release list` 진행 중이거나 최근의 릴리스\n"
            "• `/release abort v1.2.3 <사유>` 릴리스 중단\n"
            "• `/release incident v1.2.3 <사유>` 인시던트 선언 (온콜 호출)\n"
            "• `/release rollback v1.2.3` 프로덕션 롤백\n"
            "• `/release unlock <사유>` 롤백 후 프로덕션 잠금 해제\n"
            "• `/release rolledback [v1.2.3] <사유>` 수동 롤백 기록 (후속 작업과 리포트 게시)\n"
            "• `/release contacts` 비상 연락처 (나에게만 표시)\n"
            "• `/release report v1.2.3` 릴리스 리포트 파일\n"
            "• `/release help` 도움말\n"
            "한 채널에서 여러 서비스를 릴리스할 때는 버전 앞에 서비스 이름을 붙이세요: "
            "`/release start backend v1.2.3`, `/release status backend v1.2.3`"
        ),
    },
    "unknown_subcommand": {
        "en": "I don't know `{sub}`.",
        "ko": "`{sub}`은(는) 알 수 없는 명령입니다.",
    },
    "text_too_long": {
        "en": "That command is too long ({length} characters). Keep it under {limit}.",
        "ko": "명령이 너무 깁니다 ({length}자). {limit}자 이내로 입력해 주세요.",
    },
    "command_multiline": {
        "en": "That command has more than one line, so I did nothing. Send one command at a time, on one line.",
        "ko": "명령이 여러 줄이라 실행하지 않았습니다. 한 번에 하나의 명령을 한 줄로 입력해 주세요.",
    },
    "command_extra_words": {
        "en": "I don't know what `{extra}` after `{sub}` means, so I did nothing.",
        "ko": "`{sub}` 뒤의 `{extra}`은(는) 알 수 없는 내용이라 실행하지 않았습니다.",
    },
    "version_missing": {
        "en": "Which version? Example: `/release start v1.4.0`",
        "ko": "버전을 입력해 주세요. 예: `/release start v1.4.0`",
    },
    "version_invalid": {
        "en": (
            "`{version}` is not a release version. Write it as vMAJOR.MINOR.PATCH, optionally with a "
            "pre-release suffix. Examples: `v1.4.0`, `v2.0.0-rc.1`"
        ),
        "ko": (
            "`{version}`은(는) 올바른 버전이 아닙니다. vMAJOR.MINOR.PATCH 형식으로, 필요하면 `-rc.1` 같은 "
            "사전 릴리스 접미사를 붙여 입력해 주세요. 예: `v1.4.0`, `v2.0.0-rc.1`"
        ),
    },
    "reason_missing": {
        "en": "Please give a reason. Example: `/release {sub} v1.4.0 error rate climbing`",
        "ko": "사유를 입력해 주세요. 예: `/release {sub} v1.4.0 에러율 상승`",
    },
    "release_exists": {
        "en": "{version} is already in progress here: {link}",
        "ko": "{version} 릴리스가 이미 진행 중입니다: {link}",
    },
    "release_not_found": {
        "en": "I can't find that release.",
        "ko": "해당 릴리스를 찾을 수 없습니다.",
    },
    "version_not_found": {
        "en": "There is no release {version} in this channel. `/release list` shows what there is.",
        "ko": "이 채널에 {version} 릴리스가 없습니다. `/release list`로 목록을 확인하세요.",
    },
    "service_unknown": {
        "en": "There is no service `{service}` here. The services with a checklist: {services}.",
        "ko": "`{service}` 서비스가 없습니다. 체크리스트가 있는 서비스: {services}.",
    },
    "service_elsewhere": {
        "en": "`{service}` releases run in {channels}, not in this channel (here: {here}). Nothing was started.",
        "ko": (
            "`{service}` 릴리스는 이 채널이 아니라 {channels}에서 진행됩니다 (이 채널: {here}). "
            "아무것도 시작하지 않았습니다."
        ),
    },
    "service_fallback_elsewhere": {
        "en": (
            "`{service}` releases run in the channels no other checklist lists; this channel runs {here}. "
            "Nothing was started."
        ),
        "ko": (
            "`{service}` 릴리스는 다른 체크리스트가 지정하지 않은 채널에서 진행됩니다. 이 채널: {here}. "
            "아무것도 시작하지 않았습니다."
        ),
    },
    "service_ambiguous": {
        "en": "This channel runs the releases of several services: {services}. Name one, e.g. `{example}`",
        "ko": "이 채널은 여러 서비스의 릴리스를 진행합니다: {services}. 서비스를 지정해 주세요. 예: `{example}`",
    },
    "channel_unclaimed": {
        "en": "No checklist runs releases in this channel. Releases run in {channels}.",
        "ko": "이 채널에서 릴리스를 진행하는 체크리스트가 없습니다. 릴리스 채널: {channels}.",
    },
    "version_ambiguous": {
        "en": (
            "{version} is a release of several services here: {services}. Name one before the version, "
            "e.g. `{example}`"
        ),
        "ko": (
            "이 채널에서 {version}은(는) 여러 서비스의 릴리스입니다: {services}. 버전 앞에 서비스를 지정해 "
            "주세요. 예: `{example}`"
        ),
    },
    "active_ambiguous": {
        "en": "Several services have a release running here: {services}. Name the one you mean, e.g. `{example}`",
        "ko": "이 채널에서 여러 서비스의 릴리스가 진행 중입니다: {services}. 어느 릴리스인지 지정해 주세요. "
        "예: `{example}`",
    },
    "unlock_ambiguous": {
        "en": "This channel runs several services: {services}. Name the one to unlock, e.g. `{example}`",
        "ko": "이 채널은 여러 서비스를 릴리스합니다: {services}. 잠금을 해제할 서비스를 지정해 주세요. 예: `{example}`",
    },
    "no_active_release": {
        "en": "There is no active release in this channel. Start one with `/release start v1.4.0`.",
        "ko": "이 채널에 진행 중인 릴리스가 없습니다. `/release start v1.4.0`으로 시작하세요.",
    },
    "release_channel_elsewhere": {
        "en": "Releases run in <#{channel}>. I started {version} there: {link}",
        "ko": "릴리스는 <#{channel}> 채널에서 진행됩니다. {version} 릴리스를 해당 채널에서 시작했습니다: {link}",
    },
    "not_in_channel": {
        "en": (
            "I can't post in <#{channel}>: I'm not a member. Invite me with `/invite @releasebot` in that "
            "channel, then run the command again. Nothing was started."
        ),
        "ko": (
            "<#{channel}> 채널에 메시지를 게시할 수 없습니다 (봇이 멤버가 아님). 해당 채널에서 "
            "`/invite @releasebot`으로 초대한 뒤 다시 실행해 주세요. 릴리스는 시작되지 않았습니다."
        ),
    },
    "post_failed": {
        "en": "Slack refused the release messages ({code}). Nothing was started; please try again.",
        "ko": "Slack이 릴리스 메시지를 거부했습니다 ({code}). 릴리스는 시작되지 않았습니다. 다시 시도해 주세요.",
    },
    "starting": {
        "en": "Starting {version}…",
        "ko": "{version} 릴리스를 시작합니다…",
    },
    "release_ended": {
        "en": "This release has ended ({status}); nothing can change it now.",
        "ko": "이미 종료된 릴리스입니다 ({status}). 더 이상 변경할 수 없습니다.",
    },
    "forged_action": {
        "en": "That control does not belong to this message. Nothing was changed.",
        "ko": "이 메시지에 속하지 않는 버튼입니다. 아무것도 변경되지 않았습니다.",
    },
    "unknown_item": {
        "en": "That item is not on this release's checklist. Nothing was changed.",
        "ko": "이 릴리스 체크리스트에 없는 항목입니다. 아무것도 변경되지 않았습니다.",
    },
    "bad_payload": {
        "en": "I couldn't read that request. Nothing was changed.",
        "ko": "요청을 읽을 수 없습니다. 아무것도 변경되지 않았습니다.",
    },
    "internal_error": {
        "en": ":warning: That didn't work (error id `{error_id}`). The details are in the bot's log.",
        "ko": ":warning: 처리하지 못했습니다 (오류 ID `{error_id}`). 자세한 내용은 봇 로그에 있습니다.",
    },
    "integration_error": {
        "en": "{message} (error id `{error_id}`)",
        "ko": "{message} (오류 ID `{error_id}`)",
    },
    # --- header and checklist ---
    "header_title": {"en": "Release {version}", "ko": "릴리스 {version}"},
    "header_fallback": {
        "en": "Release {version}: {step}",
        "ko": "릴리스 {version}: {step}",
    },
    "started_by": {
        "en": "Started by {who} {when}",
        "ko": "{who} 님이 {when}에 시작",
    },
    "current_step": {"en": "*Now:* {step}", "ko": "*현재 단계:* {step}"},
    "time_in_step": {"en": "entered this step {when}", "ko": "이 단계 시작: {when}"},
    "next_reminder": {"en": "next reminder {when}", "ko": "다음 알림 {when}"},
    "override_note": {
        "en": ":warning: {who} overrode the {gate} gate leaving {step}: _{reason}_",
        "ko": ":warning: {who} 님이 {step} 단계에서 {gate} 게이트를 강제 진행: _{reason}_",
    },
    "criteria_line": {"en": "*Rollback criteria:* {lead} {criteria}", "ko": "*롤백 기준:* {lead} {criteria}"},
    "criteria_default_lead_in": {
        "en": "Consider rolling back if any of these holds:",
        "ko": "다음 조건 중 하나라도 해당되면 롤백 고려:",
    },
    "checklist_version": {"en": "checklist version {version}", "ko": "체크리스트 버전 {version}"},
    "gate_checklist": {"en": "checklist", "ko": "체크리스트"},
    "gate_wait": {"en": "wait", "ko": "대기 시간"},
    "gate_monitoring": {"en": "monitoring", "ko": "모니터링"},
    "gate_window_failed": {
        "en": "The monitoring gate over this stage does not pass.",
        "ko": "이 단계 전체 기준으로 모니터링 게이트를 통과하지 못했습니다.",
    },
    "gate_observing": {
        "en": "This stage is still being observed before the monitoring gate judges it.",
        "ko": "모니터링 게이트를 판단하기 전에 이 단계를 아직 관찰하는 중입니다.",
    },
    "gate_window_refused": {
        "en": "The monitoring gate over this whole stage does not pass. Moving on now takes a manager's "
        "override with a reason:",
        "ko": "이 단계 전체 기준으로 모니터링 게이트를 통과하지 못했습니다. 지금 진행하려면 매니저가 사유를 입력하고 "
        "강제 진행해야 합니다:",
    },
    "gate_window_undecided": {
        "en": "The monitoring gate over this stage cannot be judged (no data: {reasons}). Moving on takes a "
        "manager's override with a reason.",
        "ko": "이 단계의 모니터링 게이트를 판단할 수 없습니다 (데이터 없음: {reasons}). 진행하려면 매니저가 사유를 "
        "입력하고 강제 진행해야 합니다.",
    },
    "gate_observing_left": {
        "en": "This stage has no wait of its own: it is observed for {total} before the monitoring gate judges "
        "it. {minutes} min left.",
        "ko": "이 단계는 자체 대기 시간이 없어 모니터링 게이트를 판단하기 전에 {total} 동안 관찰합니다. {minutes}분 남음.",
    },
    "status_active": {"en": "in progress", "ko": "진행 중"},
    "status_finished": {"en": ":white_check_mark: finished", "ko": ":white_check_mark: 완료"},
    "status_aborted": {"en": ":no_entry: aborted", "ko": ":no_entry: 중단됨"},
    "status_rolled_back": {"en": ":rewind: rolled back", "ko": ":rewind: 롤백됨"},
    "ended_banner": {
        "en": "This release is {status}. The checklist is kept as it was.",
        "ko": "이 릴리스는 {status} 상태입니다. 체크리스트는 그대로 보존됩니다.",
    },
    "ticked_by": {"en": "{who} · {when}", "ko": "{who} · {when}"},
    "item_done": {"en": "Done", "ko": "완료"},
    "checklist_fallback": {
        "en": "Release {version} checklist: {phase}",
        "ko": "릴리스 {version} 체크리스트: {phase}",
    },
    "continued": {"en": "(continued)", "ko": "(계속)"},
    "procedure": {"en": "Procedure", "ko": "절차"},
    # --- steps and buttons ---
    "step_checklist": {"en": "{phase}", "ko": "{phase}"},
    "step_deploy": {"en": "{phase}: deploying and verifying", "ko": "{phase}: 배포 및 검증"},
    "step_ready": {"en": "{phase}: ready for canary", "ko": "{phase}: 카나리 준비"},
    "step_canary": {"en": "Canary {pct}%", "ko": "카나리 {pct}%"},
    "step_watch": {"en": "{phase}: watching", "ko": "{phase}: 모니터링"},
    "step_finished": {"en": "Finished", "ko": "완료"},
    "btn_start_deploy": {"en": "Start {env} deploy", "ko": "{env} 배포 시작"},
    "btn_verified": {"en": "{env} verified", "ko": "{env} 검증 완료"},
    "btn_start_canary": {"en": "Start canary {pct}%", "ko": "카나리 {pct}% 시작"},
    "btn_advance": {"en": "Advance to {pct}%", "ko": "{pct}%로 확대"},
    "btn_start_watch": {"en": "Start post-deploy watch", "ko": "배포 후 모니터링 시작"},
    "btn_next_phase": {"en": "Next: {phase}", "ko": "다음: {phase}"},
    "btn_finish": {"en": "Finish release", "ko": "릴리스 완료"},
    "btn_abort": {"en": "Abort", "ko": "중단"},
    "btn_health": {"en": "Run {env} health check", "ko": "{env} 헬스체크 실행"},
    # --- lifecycle ---
    "gate_thresholds": {
        "en": "*Gate:* error rate < {error}% · p95 < {p95} ms",
        "ko": "*게이트:* 에러율 < {error}% · P95 < {p95}ms",
    },
    "gate_check_yourself": {
        "en": "No metric watch is configured: check the error rate and p95 on your dashboards before moving on.",
        "ko": "메트릭 감시가 설정되지 않았습니다. 진행 전에 대시보드에서 에러율과 P95를 확인하세요.",
    },
    "reminder_stage_over": {
        "en": ":alarm_clock: The {duration} wait of *{step}* is over.",
        "ko": ":alarm_clock: *{step}* 단계의 {duration} 대기가 끝났습니다.",
    },
    "reminder_watch_over": {
        "en": ":eyes: The {duration} post-deploy watch is over. Check:",
        "ko": ":eyes: 배포 후 {duration} 모니터링이 끝났습니다. 확인하세요:",
    },
    "reminders_together": {
        "en": ":alarm_clock: {count} releases in this channel reached the end of a wait at once; here they are"
        " together, each with its own buttons:",
        "ko": ":alarm_clock: 이 채널의 릴리스 {count}개가 동시에 대기를 마쳤습니다. 각 릴리스의 버튼과 함께"
        " 한 메시지로 알립니다:",
    },
    "reminder_of_release": {
        "en": "*{service}* `{version}`",
        "ko": "*{service}* `{version}`",
    },
    "reminder_late": {
        "en": "_This reminder is {seconds} s late: the bot was not running at its due time._",
        "ko": "_봇이 중지되어 있어 이 알림이 {seconds}초 늦었습니다._",
    },
    "moved_to": {
        "en": "{who} moved the release to *{step}*.",
        "ko": "{who} 님이 릴리스를 *{step}* 단계로 진행했습니다.",
    },
    "reminder_set": {"en": "I'll remind you in {duration}.", "ko": "{duration} 후에 알려 드리겠습니다."},
    "override_recorded": {
        "en": ":warning: Gate overridden ({gates}): _{reason}_",
        "ko": ":warning: 강제 진행 ({gates}): _{reason}_",
    },
    "release_finished": {
        "en": ":tada: Release *{version}* is finished. Thanks, everyone! (closed by {who})",
        "ko": ":tada: 릴리스 *{version}* 배포가 완료되었습니다. 모두 수고하셨습니다! ({who} 님이 완료)",
    },
    "release_aborted": {
        "en": ":no_entry: Release *{version}* was aborted by {who}: _{reason}_",
        "ko": ":no_entry: {who} 님이 릴리스 *{version}*을(를) 중단했습니다: _{reason}_",
    },
    "health_ok": {
        "en": ":large_green_circle: {env} health check: HTTP {code} in {ms} ms — {summary}",
        "ko": ":large_green_circle: {env} 헬스체크: HTTP {code}, {ms}ms — {summary}",
    },
    "health_bad": {
        "en": ":red_circle: {env} health check failed: HTTP {code} in {ms} ms — {summary}",
        "ko": ":red_circle: {env} 헬스체크 실패: HTTP {code}, {ms}ms — {summary}",
    },
    "health_unreachable": {
        "en": ":red_circle: {env} health check failed: {summary}",
        "ko": ":red_circle: {env} 헬스체크 실패: {summary}",
    },
    "health_running": {"en": "Checking {env}…", "ko": "{env} 확인 중…"},
    "rollback_decided": {
        "en": ":rewind: {who} decided to roll back. The procedure:",
        "ko": ":rewind: {who} 님이 롤백을 결정했습니다. 절차:",
    },
    "gate_open_items": {
        "en": "You can't move on yet: {count} item(s) of this phase are open.",
        "ko": "아직 진행할 수 없습니다: 이 단계에 완료되지 않은 항목이 {count}개 있습니다.",
    },
    "gate_wait_left": {
        "en": "The wait of this stage is not over: {minutes} min left.",
        "ko": "이 단계의 대기 시간이 끝나지 않았습니다: {minutes}분 남음.",
    },
    "gate_watch_left": {
        "en": "The post-deploy watch is not over: {minutes} min left. Finishing now needs a reason.",
        "ko": "배포 후 모니터링이 아직 끝나지 않았습니다: {minutes}분 남음. 지금 끝내려면 사유가 필요합니다.",
    },
    "and_more": {"en": "…and {count} more", "ko": "…외 {count}개"},
    "btn_override": {"en": "Override with a reason", "ko": "사유를 입력하고 강제 진행"},
    "btn_rollback": {"en": "Roll back", "ko": "롤백"},
    "modal_override_title": {"en": "Override the gate", "ko": "강제 진행"},
    "modal_override_prompt": {
        "en": "Why is it safe to move on? This is recorded and shown on the release.",
        "ko": "진행해도 안전한 이유는 무엇인가요? 기록되고 릴리스에 표시됩니다.",
    },
    "modal_abort_title": {"en": "Abort the release", "ko": "릴리스 중단"},
    "modal_abort_prompt": {"en": "Why are you aborting it?", "ko": "중단하는 이유는 무엇인가요?"},
    "modal_submit": {"en": "Confirm", "ko": "확인"},
    "modal_cancel": {"en": "Cancel", "ko": "취소"},
    "reason_required": {"en": "Please give a reason.", "ko": "사유를 입력해 주세요."},
    "already_moved": {
        "en": "The release has already moved on (now: {step}). Nothing was changed.",
        "ko": "릴리스가 이미 다음 단계로 진행되었습니다 (현재: {step}). 아무것도 변경되지 않았습니다.",
    },
    "already_there": {"en": "The release is already there.", "ko": "이미 해당 단계입니다."},
    "not_next_step": {
        "en": "That is not the next step of this release. Nothing was changed.",
        "ko": "이 릴리스의 다음 단계가 아닙니다. 아무것도 변경되지 않았습니다.",
    },
    # --- /release contacts (seed part 6) ---
    "contacts_title": {"en": "*Emergency contacts*", "ko": "*비상 연락처*"},
    "contacts_none": {
        "en": "This checklist names no emergency contacts (`contacts:`).",
        "ko": "이 체크리스트에는 비상 연락처(`contacts:`)가 없습니다.",
    },
    "contacts_line_pagerduty": {
        "en": "• {role}: PagerDuty (paged when an incident opens)",
        "ko": "• {role}: PagerDuty (인시던트가 열리면 호출)",
    },
    "contacts_line_slack": {
        "en": "• {role}: {mention} {handle} (mentioned in every incident ping)",
        "ko": "• {role}: {mention} {handle} (인시던트 알림마다 멘션)",
    },
    "contacts_line_no_id": {
        "en": "• {role}: {handle} — :warning: no Slack id, so an incident notifies nobody here. "
        "Set `slack_id` in the checklist or `RELEASE_CONTACTS`.",
        "ko": "• {role}: {handle} — :warning: Slack ID가 없어 인시던트가 나도 아무에게도 알림이 가지 않습니다. "
        "체크리스트의 `slack_id`나 `RELEASE_CONTACTS`를 설정하세요.",
    },
    # --- status / list ---
    "status_title": {"en": "*{version}* — {status}", "ko": "*{version}* — {status}"},
    "status_phase_line": {"en": "{marker} {phase}: {done}/{total}", "ko": "{marker} {phase}: {done}/{total}"},
    "last_activity": {"en": "Last activity {when}", "ko": "마지막 활동 {when}"},
    "list_title": {"en": "*Releases in this channel*", "ko": "*이 채널의 릴리스*"},
    "list_empty": {
        "en": "No releases here yet. Start one with `/release start v1.4.0`.",
        "ko": "아직 릴리스가 없습니다. `/release start v1.4.0`으로 시작하세요.",
    },
    "list_line": {
        "en": "• <{link}|{version}> — {status}, {step}, started {when}",
        "ko": "• <{link}|{version}> — {status}, {step}, 시작 {when}",
    },
}
