"""The metric watch's and the incidents' words, in Korean (the default) and English."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    # --- the channel ping ---
    "alert_title": {
        "en": ":rotating_light: <!here> *{version}: {title}* — on-call has been paged.",
        "ko": ":rotating_light: <!here> *{version}: {title}* — 온콜을 호출했습니다.",
    },
    "alert_fallback": {
        "en": "<!here> {version}: {title}. On-call has been paged.",
        "ko": "<!here> {version}: {title}. 온콜을 호출했습니다.",
    },
    "alert_contacts": {"en": "Contacts: {who}", "ko": "비상 연락처: {who}"},
    "alert_value_rate": {
        "en": "*Error rate* {value} — threshold {threshold}",
        "ko": "*에러율* {value} — 임계값 {threshold}",
    },
    "alert_value_latency": {
        "en": "*p95 latency* {value} ({times}× baseline) — threshold {threshold}× baseline = {limit}",
        "ko": "*P95 응답 시간* {value} (기준선의 {times}배) — 임계값 기준선의 {threshold}배 = {limit}",
    },
    "alert_baseline": {"en": "*Baseline p95* {value}", "ko": "*기준선 P95* {value}"},
    "alert_no_baseline": {"en": "*Baseline p95* not recorded", "ko": "*기준선 P95* 기록 없음"},
    "alert_window": {
        "en": "*Window* {window} rate · {count} breaches in a row (needs {required}) since {since}",
        "ko": "*집계 구간* {window} · {since}부터 연속 {count}회 초과 (필요 {required}회)",
    },
    "alert_trend": {
        "en": "*Recent trend* {trend} ({direction})",
        "ko": "*최근 추이* {trend} ({direction})",
    },
    "alert_stage": {"en": "*Stage* {stage}", "ko": "*단계* {stage}"},
    "alert_declared": {
        "en": "*Declared by* {who}: _{reason}_",
        "ko": "*선언자* {who}: _{reason}_",
    },
    "alert_thread": {"en": "<{link}|Release thread>", "ko": "<{link}|릴리스 스레드>"},
    "direction_rising": {"en": "rising", "ko": "상승 중"},
    "direction_falling": {"en": "falling", "ko": "하락 중"},
    "direction_steady": {"en": "steady", "ko": "유지"},
    "direction_unknown": {"en": "too few figures", "ko": "데이터 부족"},
    "no_figure": {"en": "no data", "ko": "데이터 없음"},
    "btn_ack_incident": {"en": "Acknowledge", "ko": "확인"},
    "btn_dismiss_incident": {"en": "Not a problem, keep watching", "ko": "문제 아님, 계속 감시"},
    "incident_acknowledged": {
        "en": ":eyes: Acknowledged by {who}; PagerDuty has been updated.",
        "ko": ":eyes: {who} 님이 확인했습니다. PagerDuty에도 반영합니다.",
    },
    "incident_dismissed": {
        "en": ":ok_hand: {who} marked this as not a problem; the page is resolved and I keep watching.",
        "ko": ":ok_hand: {who} 님이 문제 아님으로 표시했습니다. 호출을 해제하고 계속 감시합니다.",
    },
    "incident_resolved": {
        "en": ":white_check_mark: Resolved: the release is {status}. PagerDuty has been updated.",
        "ko": ":white_check_mark: 해결됨: 릴리스가 {status} 상태입니다. PagerDuty에도 반영합니다.",
    },
    "incident_already_open": {
        "en": "That is already declared for {version} and on-call is paged: {link}",
        "ko": "{version}에 이미 선언되어 온콜이 호출되었습니다: {link}",
    },
    "incident_not_found": {
        "en": "I can't find that incident.",
        "ko": "해당 인시던트를 찾을 수 없습니다.",
    },
    "incident_declaring": {
        "en": "Declaring an incident on {version}…",
        "ko": "{version} 인시던트를 선언합니다…",
    },
    "declared_title": {"en": "Incident declared", "ko": "인시던트 선언"},
    "modal_incident_title": {"en": "Declare an incident", "ko": "인시던트 선언"},
    "modal_incident_prompt": {
        "en": "{title}: what is happening? On-call is paged with your words.",
        "ko": "{title}: 무슨 일이 일어나고 있나요? 입력한 내용으로 온콜을 호출합니다.",
    },
    # --- thread notes ---
    "dry_run_fired": {
        "en": ":test_tube: Dry run: *{title}* would have paged now (nobody was paged).",
        "ko": ":test_tube: 시험 실행: *{title}* 기준이 충족되어 호출했을 상황입니다 (호출하지 않음).",
    },
    "watch_blind": {
        "en": ":see_no_evil: I am blind: {count} samples in a row without data. The gate cannot pass on "
        "its own: check the dashboards and decide.",
        "ko": ":see_no_evil: 메트릭을 볼 수 없습니다: 연속 {count}회 데이터 없음. 게이트는 자동으로 통과하지 "
        "않습니다. 대시보드를 확인하고 결정해 주세요.",
    },
    "watch_blind_line": {"en": "• {title}: {reason}", "ko": "• {title}: {reason}"},
    "watch_data_back": {
        "en": ":eyes: Metrics are back ({titles}); I am watching again.",
        "ko": ":eyes: 메트릭이 다시 들어옵니다 ({titles}). 감시를 재개합니다.",
    },
    "baseline_recorded": {
        "en": ":straight_ruler: Normal p95 for this release: {value} ({source}). "
        "The latency criterion fires at {threshold}× that.",
        "ko": ":straight_ruler: 이번 릴리스의 정상 P95: {value} ({source}). 응답 시간 임계값은 그 {threshold}배입니다.",
    },
    "baseline_source_measured": {
        "en": "p95 over the {window} before canary start",
        "ko": "카나리 시작 직전 {window} 동안의 P95",
    },
    "baseline_source_fixed": {"en": "fixed in the checklist", "ko": "체크리스트에 지정된 값"},
    "baseline_missing": {
        "en": ":warning: No baseline p95 ({reason}). The latency criterion reports *no data* for this "
        "release instead of passing: watch latency yourselves, or set metrics.baseline_p95 in the checklist.",
        "ko": ":warning: 기준선 P95가 없습니다 ({reason}). 이번 릴리스의 응답 시간 기준은 통과가 아닌 *데이터 없음*"
        "으로 표시됩니다. 응답 시간을 직접 확인하거나 체크리스트에 `metrics.baseline_p95`를 지정하세요.",
    },
    # --- gate figures in the stage reminder ---
    "gate_figures": {
        "en": "{mark} Latest figures: error rate {error} · p95 {p95} ({when})",
        "ko": "{mark} 최근 수치: 에러율 {error} · P95 {p95} ({when})",
    },
    "gate_undecided": {
        "en": ":grey_question: *Undecided: no data* ({reasons}). The gate does not pass on its own: "
        "check the dashboards and decide.",
        "ko": ":grey_question: *판단 불가: 데이터 없음* ({reasons}). 게이트는 자동으로 통과하지 않습니다. "
        "대시보드를 확인하고 결정해 주세요.",
    },
    "gate_no_samples": {"en": "no samples yet", "ko": "아직 샘플 없음"},
    "gate_metric_error_rate": {"en": "error rate", "ko": "에러율"},
    "gate_metric_p95": {"en": "p95", "ko": "P95"},
    "gate_reason_line": {"en": "{metric}: {reason}", "ko": "{metric}: {reason}"},
    # --- why a metric has no figure (bot.i18n.units.no_data_key) ---
    "nodata_no_series": {"en": "no series matched (empty result)", "ko": "일치하는 시계열 없음 (빈 결과)"},
    "nodata_no_traffic": {"en": "NaN: no traffic in the window", "ko": "집계 구간에 트래픽 없음 (NaN)"},
    "nodata_zero": {"en": "zero: nothing to compare against", "ko": "값이 0이라 비교할 기준이 없음"},
    "nodata_negative": {
        "en": "a negative figure: a counter reset or a broken query",
        "ko": "음수 값: 카운터가 초기화되었거나 쿼리가 잘못됨",
    },
    "nodata_infinite": {
        "en": "an infinite figure (check the histogram buckets)",
        "ko": "무한대 값 (히스토그램 버킷을 확인하세요)",
    },
    "nodata_timeout": {"en": "Prometheus did not answer in time", "ko": "Prometheus 응답 시간 초과"},
    "nodata_unreachable": {"en": "cannot reach Prometheus", "ko": "Prometheus에 연결할 수 없음"},
    "nodata_http_error": {"en": "Prometheus answered with an error", "ko": "Prometheus가 오류로 응답함"},
    "nodata_ambiguous": {
        "en": "several series: aggregate the query to one",
        "ko": "시계열이 여러 개: 쿼리를 하나로 집계해야 함",
    },
    "nodata_no_source": {"en": "no metrics source configured", "ko": "메트릭 소스가 설정되지 않음"},
    "nodata_provider_failed": {"en": "the metrics provider failed", "ko": "메트릭 제공자 오류"},
    "nodata_none": {"en": "no data", "ko": "데이터 없음"},
    "nodata_unreadable": {"en": "Prometheus's answer could not be read", "ko": "Prometheus 응답을 읽을 수 없음"},
    "latency_limit": {
        "en": "{threshold}x baseline = {limit}",
        "ko": "기준선의 {threshold}배 = {limit}",
    },
    "latency_times": {"en": "{value} ({times}x)", "ko": "{value} (기준선의 {times}배)"},
    # --- the gate over a whole window (a canary stage, the post-deploy watch) ---
    "window_figures": {
        "en": "{mark} Whole window: error rate {error} · P95 {p95} (gate: under {max_error} · under {max_p95}) · "
        "{breached} of {samples} samples over a line",
        "ko": "{mark} 구간 전체: 에러율 {error} · P95 {p95} (기준: {max_error} 미만 · {max_p95} 미만) · "
        "샘플 {samples}개 중 {breached}개 기준 초과",
    },
    "header_gate": {
        "en": "*Gate over this stage* ({since} to {until}):",
        "ko": "*이 단계 전체 게이트* ({since}부터 {until}까지):",
    },
    "header_gate_waiting": {
        "en": "*Gate over this stage*: waiting for the first sample",
        "ko": "*이 단계 전체 게이트*: 첫 샘플을 기다리는 중",
    },
    "resource_figures": {
        "en": ":bar_chart: Measured at 100 %: CPU {cpu} · memory {memory} of their limits (busiest pod; "
        "marked at {limit} or more) · {when}",
        "ko": ":bar_chart: 100% 단계 측정값: CPU {cpu} · 메모리 {memory} (한도 대비, 가장 바쁜 파드 기준, "
        "{limit} 이상이면 표시) · {when}",
    },
    "span_minutes": {"en": "{minutes} minutes", "ko": "{minutes}분"},
    "span_seconds": {"en": "{seconds} seconds", "ko": "{seconds}초"},
    "watch_over": {
        "en": ":checkered_flag: The post-deploy watch's {span} are over: the metric watch and its paging have "
        "stopped. Summary:",
        "ko": ":checkered_flag: 배포 후 모니터링 {span}이 끝났습니다. 메트릭 감시와 자동 호출을 멈췄습니다. 요약:",
    },
    "watch_over_incidents": {
        "en": "Incidents during the watch: {count}",
        "ko": "모니터링 중 인시던트: {count}건",
    },
    # --- PagerDuty ---
    "pd_summary_metric": {
        "en": "{service} {version}: {title} — {value} (threshold {threshold})",
        "ko": "{service} {version}: {title} — {value} (임계값 {threshold})",
    },
    "pd_summary_declared": {
        "en": "{service} {version}: {title} — declared by {who}: {reason}",
        "ko": "{service} {version}: {title} — {who} 님이 선언: {reason}",
    },
    "pd_change_canary_start": {
        "en": "{service} {version}: canary started at {pct}%",
        "ko": "{service} {version}: 카나리 {pct}% 시작",
    },
    "pd_change_stage": {
        "en": "{service} {version}: canary at {pct}%",
        "ko": "{service} {version}: 카나리 {pct}%",
    },
    "pd_change_watch": {
        "en": "{service} {version}: post-deploy watch started",
        "ko": "{service} {version}: 배포 후 모니터링 시작",
    },
    "pd_change_ended": {
        "en": "{service} {version}: release {status}",
        "ko": "{service} {version}: 릴리스 {status}",
    },
}
