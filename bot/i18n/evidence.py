"""Words of the evidence: what each source found, the re-check and override controls, and GitHub's events."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    # --- what a source found (EvidencePart.key) ---
    "ev_checks_passed": {"en": "{passed}/{total} checks passed", "ko": "체크 {passed}/{total}개 통과"},
    "ev_checks_failed": {
        "en": "{failed} of {total} checks failed: {names}",
        "ko": "체크 {total}개 중 {failed}개 실패: {names}",
    },
    "ev_checks_pending": {
        "en": "{pending} of {total} checks still running: {names}",
        "ko": "체크 {total}개 중 {pending}개 진행 중: {names}",
    },
    "ev_checks_missing": {"en": "no check named {names} on {sha}", "ko": "{sha}에 {names} 체크가 없습니다"},
    "ev_checks_none": {"en": "no checks reported on {sha} yet", "ko": "{sha}에 보고된 체크가 아직 없습니다"},
    "ev_pulls_ok": {
        "en": "{count} pull request(s) since {base}, all approved and merged",
        "ko": "{base} 이후 PR {count}개 모두 승인 후 병합됨",
    },
    "ev_pulls_unapproved": {
        "en": "{count} of {total} pull request(s) merged without approval: {numbers}",
        "ko": "PR {total}개 중 {count}개가 승인 없이 병합됨: {numbers}",
    },
    "ev_pulls_none": {
        "en": "{commits} commit(s) since {base}, none through a pull request",
        "ko": "{base} 이후 커밋 {commits}개가 PR 없이 들어왔습니다",
    },
    "ev_pulls_nothing": {"en": "nothing merged since {base}", "ko": "{base} 이후 병합된 변경이 없습니다"},
    "ev_pulls_too_many": {
        "en": "{count} pull requests: more than the {limit} the bot checks at once",
        "ko": "PR이 {count}개로, 한 번에 확인하는 {limit}개를 넘습니다",
    },
    "ev_no_previous_tag": {
        "en": "no earlier release tag to compare {tag} with",
        "ko": "{tag}와 비교할 이전 릴리스 태그가 없습니다",
    },
    "ev_no_tag": {"en": "tag {tag} is not on GitHub yet", "ko": "GitHub에 {tag} 태그가 아직 없습니다"},
    "ev_file_changed": {"en": "{path} changed since {base}", "ko": "{base} 이후 {path} 변경됨"},
    "ev_file_changed_version": {
        "en": "{path} changed since {base} and mentions {version}",
        "ko": "{base} 이후 {path} 변경됨, {version} 포함",
    },
    "ev_file_has_version": {"en": "{path} mentions {version}", "ko": "{path}에 {version} 포함"},
    "ev_file_unchanged": {"en": "{path} has not changed since {base}", "ko": "{base} 이후 {path} 변경 없음"},
    "ev_file_no_version": {"en": "{path} does not mention {version}", "ko": "{path}에 {version}이 없습니다"},
    "ev_file_missing": {"en": "{path} is not in {tag}", "ko": "{tag}에 {path} 파일이 없습니다"},
    "ev_release_ok": {
        "en": "release {tag} published with notes ({lines} lines)",
        "ko": "{tag} 릴리스 노트 게시됨 ({lines}줄)",
    },
    "ev_release_missing": {
        "en": "no published GitHub release for {tag}",
        "ko": "{tag}의 GitHub 릴리스가 아직 게시되지 않았습니다",
    },
    "ev_release_empty": {"en": "release {tag} has no notes", "ko": "{tag} 릴리스의 노트가 비어 있습니다"},
    "ev_deploy_ok": {"en": "deployed to {env}", "ko": "{env} 배포 성공"},
    "ev_deploy_failed": {"en": "deployment to {env} ended in {state}", "ko": "{env} 배포 실패 ({state})"},
    "ev_deploy_pending": {"en": "deployment to {env} is {state}", "ko": "{env} 배포 진행 중 ({state})"},
    "ev_deploy_none": {"en": "not deployed to {env} yet", "ko": "{env}에 아직 배포되지 않았습니다"},
    "ev_deploy_replaced": {
        "en": "a later deployment replaced this one in {env}",
        "ko": "{env}에서 이후 배포로 대체되었습니다",
    },
    "ev_metric_ok": {"en": "value {value} ({bound})", "ko": "값 {value} ({bound})"},
    "ev_metric_out": {"en": "value {value} is outside {bound}", "ko": "값 {value}, 기준({bound}) 벗어남"},
    "ev_metric_no_data": {"en": "no data: {reason}", "ko": "데이터 없음: {reason}"},
    "ev_prometheus_off": {"en": "Prometheus is not configured", "ko": "Prometheus가 설정되지 않았습니다"},
    "ev_http_ok": {"en": "HTTP {status} in {ms} ms", "ko": "HTTP {status} · {ms} ms"},
    "ev_http_failed": {"en": "health check failed: {summary}", "ko": "헬스체크 실패: {summary}"},
    "ev_rate_limited": {
        "en": "GitHub's rate limit is reached; it resets {retry_at}",
        "ko": "GitHub 요청 한도 초과 ({retry_at}에 풀림)",
    },
    "ev_github_unreachable": {"en": "GitHub did not answer", "ko": "GitHub에 연결할 수 없습니다"},
    "ev_github_auth": {
        "en": "GitHub refused the bot's credentials or permissions",
        "ko": "GitHub가 봇의 인증 정보나 권한을 거부했습니다",
    },
    "ev_github_error": {"en": "GitHub answered with an error", "ko": "GitHub가 오류로 응답했습니다"},
    "ev_github_off": {"en": "GitHub is not configured", "ko": "GitHub가 설정되지 않았습니다"},
    # --- how an item shows its evidence ---
    "ev_cannot_tell": {"en": "Can't tell", "ko": "확인 불가"},
    "ev_overridden": {
        "en": "ticked by {who} despite the evidence: {reason}",
        "ko": "{who} 님이 증거와 달리 완료 처리: {reason}",
    },
    "ev_header": {
        "en": "Evidence: :white_check_mark: {proven} · :x: {failed} · can't tell {unknown}",
        "ko": "증거: :white_check_mark: {proven} · :x: {failed} · 확인 불가 {unknown}",
    },
    "btn_recheck": {"en": "Re-check", "ko": "다시 확인"},
    "btn_override_item": {"en": "Tick with a reason", "ko": "사유 입력 후 완료"},
    "modal_evidence_title": {"en": "Tick despite evidence", "ko": "증거와 달리 완료"},
    "modal_evidence_prompt": {
        "en": "The evidence for “{item}” failed: {why}\nWhy tick it anyway?",
        "ko": "“{item}” 항목의 증거 확인이 실패했습니다: {why}\n그래도 완료로 표시하는 이유를 적어 주세요.",
    },
    "evidence_checked": {
        "en": "Evidence checked: :white_check_mark: {proven} · :x: {failed} · can't tell {unknown}",
        "ko": "증거를 다시 확인했습니다: :white_check_mark: {proven} · :x: {failed} · 확인 불가 {unknown}",
    },
    # --- refusals ---
    "evidence_running": {
        "en": "The evidence of this release is being checked right now; the checklist updates when it is done.",
        "ko": "이 릴리스의 증거를 지금 확인하고 있습니다. 끝나면 체크리스트가 갱신됩니다.",
    },
    "evidence_off": {
        "en": "Evidence is off for this bot: set GITHUB_REPOSITORY (see the README).",
        "ko": "이 봇은 증거 확인이 꺼져 있습니다. GITHUB_REPOSITORY를 설정해 주세요 (`README.md` 참고).",
    },
    "evidence_failing": {
        "en": (
            "The evidence for “{item}” failed, so it cannot simply be ticked. Fix the cause and press "
            "*Re-check*, or a release manager can tick it with a reason (the button on the item)."
        ),
        "ko": (
            "“{item}” 항목은 증거 확인에 실패해 바로 완료할 수 없습니다. 원인을 고친 뒤 *다시 확인*을 누르거나, "
            "릴리스 매니저가 항목의 버튼으로 사유를 남기고 완료할 수 있습니다."
        ),
    },
    # --- GitHub's events in the release thread ---
    "gh_started_by_tag": {
        "en": ":label: Started by {who}'s push of tag `{tag}` (<{link}|{sha}>).",
        "ko": ":label: {who} 님이 `{tag}` 태그를 푸시해 릴리스를 시작했습니다 (<{link}|{sha}>).",
    },
    "gh_deployment": {
        "en": "{mark} GitHub deployment to *{env}*: {state} (<{link}|{sha}>)",
        "ko": "{mark} GitHub *{env}* 배포: {state} (<{link}|{sha}>)",
    },
    "gh_workflow": {
        "en": "{mark} Workflow *{name}* {conclusion} on <{link}|{sha}>",
        "ko": "{mark} 워크플로 *{name}* {conclusion} (<{link}|{sha}>)",
    },
}
