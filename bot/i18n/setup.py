"""Words about what the bot is set up with where it runs: a part that is not configured, Slack out of reach."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    # The rollback button without a cluster. The one place that says what to do instead of a one-click rollback.
    "no_cluster": {
        "en": "No Kubernetes cluster is configured for this bot (no KUBECONFIG, and it does not run in a pod), so "
        "it cannot roll back for you. Roll back by hand with kubectl, as the checklist's rollback procedure says, "
        "then record the rollback you did by hand (`/release rolledback <reason>`, or the Rolled back by hand "
        "button) so the release, its follow-up and its report show it.",
        "ko": "이 봇에는 쿠버네티스 클러스터가 설정되어 있지 않아(KUBECONFIG가 없고 파드 안에서 실행되지도 않습니다) "
        "봇이 대신 롤백할 수 없습니다. 체크리스트의 롤백 절차대로 kubectl로 직접 롤백한 뒤, 수동 롤백으로 기록해 "
        "주세요(`/release rolledback <사유>` 또는 수동 롤백 기록 버튼). 그래야 릴리스 기록과 후속 작업, 리포트에 롤백이 "
        "남습니다.",
    },
    "slack_unreachable_start": {
        "en": "Slack could not be reached, so {version} was not started and nothing of it was kept. "
        "Run the command again once Slack answers.",
        "ko": "Slack에 연결할 수 없어 {version} 릴리스를 시작하지 못했고, 아무것도 남기지 않았습니다. "
        "Slack이 복구되면 명령을 다시 실행해 주세요.",
    },
    # The incident ping when no PagerDuty routing key is set: the channel must not believe on-call was paged.
    "alert_title_unpaged": {
        "en": ":rotating_light: <!here> *{version}: {title}* — nobody was paged: PagerDuty is not set up for "
        "this bot.",
        "ko": ":rotating_light: <!here> *{version}: {title}* — PagerDuty가 설정되어 있지 않아 온콜을 호출하지 "
        "않았습니다.",
    },
    "alert_fallback_unpaged": {
        "en": "<!here> {version}: {title}. Nobody was paged (PagerDuty is not set up).",
        "ko": "<!here> {version}: {title}. PagerDuty가 설정되어 있지 않아 온콜을 호출하지 않았습니다.",
    },
}
