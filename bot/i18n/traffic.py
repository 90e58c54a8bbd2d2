"""Words of the traffic provider: the cluster's view on the header, drift, and aborts the bot made itself."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "traffic_line": {
        "en": "*Cluster:* canary {weight} %{step} · {phase}",
        "ko": "*클러스터:* 카나리 {weight} %{step} · {phase}",
    },
    "traffic_line_unread": {
        "en": "*Cluster:* not read yet ({target})",
        "ko": "*클러스터:* 아직 읽지 못했습니다 ({target})",
    },
    "traffic_step": {"en": " · step {n}/{total}", "ko": " · {n}/{total}단계"},
    "traffic_weights": {"en": " (set {set} %)", "ko": " (설정 {set} %)"},
    "traffic_phase_Progressing": {"en": "progressing", "ko": "진행 중"},
    "traffic_phase_Paused": {"en": "paused", "ko": "일시 정지"},
    "traffic_phase_Healthy": {"en": "healthy", "ko": "정상"},
    "traffic_phase_Degraded": {"en": "degraded", "ko": "저하됨"},
    "traffic_phase_": {"en": "unknown", "ko": "알 수 없음"},
    "traffic_aborted": {"en": "aborted", "ko": "중단됨"},
    "traffic_route_accepted": {"en": "route accepted", "ko": "라우트 적용됨"},
    "traffic_route_pending": {"en": "route not accepted yet", "ko": "라우트 적용 대기"},
    "traffic_serving_since": {
        "en": "serving since {when}: the stage's wait counts from then",
        "ko": "{when}부터 서비스 중: 단계 대기는 이때부터 셉니다",
    },
    "traffic_drift_header": {
        "en": ":warning: *The cluster differs from the stage:* {what} (by {by}). Advancing waits for a release "
        "manager to acknowledge it.",
        "ko": ":warning: *클러스터가 단계와 다릅니다:* {what} (변경: {by}). 릴리스 매니저가 확인해야 다음 단계로 "
        "진행할 수 있습니다.",
    },
    "traffic_drift_note": {
        "en": ":warning: The cluster no longer matches the stage: {what}. The bot expected {expected} %, "
        "the cluster says {seen} % (changed by {by}). Advancing is blocked until a release manager "
        "acknowledges it on the header.",
        "ko": ":warning: 클러스터가 현재 단계와 맞지 않습니다: {what}. 봇은 {expected} %를 기대했지만 "
        "클러스터는 {seen} %입니다 (변경: {by}). 릴리스 매니저가 헤더에서 확인할 때까지 다음 단계로 "
        "진행할 수 없습니다.",
    },
    "traffic_drift_blocks": {
        "en": "The cluster differs from the stage ({what}; changed by {by}). A release manager must acknowledge "
        "it on the header before the release can advance.",
        "ko": "클러스터가 단계와 다릅니다 ({what}; 변경: {by}). 다음 단계로 가려면 릴리스 매니저가 헤더에서 "
        "먼저 확인해야 합니다.",
    },
    "traffic_drift_acknowledged": {
        "en": "{who} acknowledged the cluster's drift ({what}); advancing works again.",
        "ko": "{who} 님이 클러스터 변경({what})을 확인했습니다. 다시 진행할 수 있습니다.",
    },
    "btn_ack_drift": {"en": "Acknowledge drift", "ko": "변경 확인"},
    "traffic_no_drift": {"en": "There is no drift to acknowledge.", "ko": "확인할 변경이 없습니다."},
    "traffic_aborted_on_breach": {
        "en": ":rotating_light: *{criterion}* was breached ({figures}): the bot aborted the canary itself "
        "(`on_breach: abort`) and paged on-call. The stable version serves all traffic again.",
        "ko": ":rotating_light: *{criterion}* 기준을 넘었습니다 ({figures}): 봇이 카나리를 직접 "
        "중단했고(`on_breach: abort`) 온콜을 호출했습니다. 이제 안정 버전이 모든 트래픽을 받습니다.",
    },
    "traffic_breach_figures": {"en": "{value}, limit {threshold}", "ko": "{value}, 기준 {threshold}"},
    "traffic_failed_note": {
        "en": ":x: The cluster refused the bot's {action}: {error}",
        "ko": ":x: 클러스터가 봇의 {action} 요청을 거부했습니다: {error}",
    },
    "reminder_serving_since": {
        "en": "The wait counted from {when}, when the cluster reported the stage's weight as serving.",
        "ko": "대기 시간은 클러스터가 이 단계의 비율을 서비스하기 시작한 {when}부터 셌습니다.",
    },
}
