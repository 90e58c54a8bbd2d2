"""Words of who-may-do-what: refusals by role, the incident cool-down, the rollback of a release that never
reached production, and the App Home's membership note."""

from __future__ import annotations

_RECORDED = {"en": " This refusal was recorded.", "ko": " 이 거부는 기록되었습니다."}


def _denied(en: str, ko: str) -> dict[str, str]:
    return {"en": f"Only release managers may {en}.{_RECORDED['en']}", "ko": f"릴리스 매니저만 {ko}{_RECORDED['ko']}"}


WORDS: dict[str, dict[str, str]] = {
    # --- refusals by role (keys made by bot.usecases.permissions.denial) ---
    "denied_start": {
        "en": "Only release managers may start a release. Ask one of them, or the bot's admin to add you to "
        "RELEASE_MANAGERS or to the `managers` of this service's checklist.",
        "ko": "릴리스 매니저만 릴리스를 시작할 수 있습니다. 매니저에게 요청하거나, 봇 관리자에게 "
        "RELEASE_MANAGERS 또는 이 서비스 체크리스트의 `managers`에 추가해 달라고 하세요.",
    },
    "denied_tick": _denied("tick items in this phase", "이 단계의 항목을 체크할 수 있습니다."),
    "denied_advance": _denied("move a release on", "릴리스를 다음 단계로 진행할 수 있습니다."),
    "denied_override": _denied("override a gate", "게이트를 강제 진행할 수 있습니다."),
    "denied_override_evidence": _denied(
        "tick an item whose evidence fails", "증거 확인에 실패한 항목을 사유와 함께 체크할 수 있습니다."
    ),
    "denied_abort": _denied("abort a release", "릴리스를 중단할 수 있습니다."),
    "denied_roll_back": _denied("roll back production", "프로덕션을 롤백할 수 있습니다."),
    "denied_record_rollback": _denied("record a rollback done by hand", "수동 롤백을 기록할 수 있습니다."),
    "denied_unlock": _denied("unlock production", "프로덕션 잠금을 해제할 수 있습니다."),
    "denied_acknowledge": _denied("acknowledge an incident", "인시던트를 확인 처리할 수 있습니다."),
    "denied_dismiss": _denied("dismiss an incident", "인시던트를 해제할 수 있습니다."),
    # --- declaring again right after a dismissal ---
    "incident_recently_dismissed": {
        "en": "{who} dismissed this incident of {version} a moment ago. For {minutes} minutes after a dismissal "
        "only release managers may declare it again ({left} min left): ask one of them if it is back.",
        "ko": "{who} 님이 방금 {version}의 이 인시던트를 해제했습니다. 해제 후 {minutes}분 동안은 릴리스 매니저만 "
        "다시 선언할 수 있습니다 ({left}분 남음). 문제가 다시 보이면 매니저에게 알려 주세요.",
    },
    # --- rolling back a release that never reached production ---
    "rollback_not_in_production": {
        "en": "Release {version} never reached production (it is at {step}). Rolling back now would undo "
        "whatever production runs, not this release: open the rollback again and confirm exactly what it undoes.",
        "ko": "릴리스 {version}은(는) 아직 프로덕션에 배포되지 않았습니다 (현재 {step}). 지금 롤백하면 이 릴리스가 "
        "아니라 프로덕션에서 돌고 있는 버전을 되돌립니다. 롤백을 다시 열어 무엇을 되돌리는지 확인해 주세요.",
    },
    "rb_outside_warning": {
        "en": ":warning: *Release {version} never reached production* (it is at {step}). This rollback does not "
        "undo {version}: it undoes what production runs now.",
        "ko": ":warning: *릴리스 {version}은(는) 아직 프로덕션에 배포되지 않았습니다* (현재 {step}). 이 롤백은 "
        "{version}이(가) 아니라 지금 프로덕션에서 돌고 있는 버전을 되돌립니다.",
    },
    "rb_outside_confirm_label": {
        "en": "Confirm what will be undone",
        "ko": "되돌릴 내용 확인",
    },
    "rb_outside_confirm": {
        "en": "Undo production revision {from_rev} ({from_images}) back to revision {to_rev} ({to_images})",
        "ko": "프로덕션 리비전 {from_rev} ({from_images})을(를) 리비전 {to_rev} ({to_images})(으)로 되돌립니다",
    },
    "rb_outside_required": {
        "en": "Tick the box to confirm what this rollback undoes.",
        "ko": "이 롤백이 무엇을 되돌리는지 확인하려면 체크해 주세요.",
    },
    # --- modals whose metadata was not the bot's ---
    "view_forged": {
        "en": "That dialog was not opened for you by the bot, or was changed on the way. Nothing was changed.",
        "ko": "이 대화 상자는 봇이 열어 드린 것이 아니거나 도중에 바뀌었습니다. 아무것도 변경되지 않았습니다.",
    },
    # --- the App Home ---
    "home_members_only": {
        "en": "Only releases of channels you are a member of are shown.",
        "ko": "내가 참여 중인 채널의 릴리스만 표시됩니다.",
    },
}
