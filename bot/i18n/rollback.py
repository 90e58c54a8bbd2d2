"""The rollback flow's words, in Korean and English."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    # --- refusals and errors (keys raised by bot.usecases.rollback / bot.usecases.releases) ---
    "rollback_in_progress": {
        "en": "A rollback of `{target}` is already in progress (confirmed by {who}, now {status}). "
        "Nothing new was started.",
        "ko": "`{target}` 롤백이 이미 진행 중입니다 ({who} 님이 확인, 현재 {status}). 새로 시작하지 않았습니다.",
    },
    "already_rolled_back": {
        "en": "Release {version} has already been rolled back.",
        "ko": "릴리스 {version}은(는) 이미 롤백되었습니다.",
    },
    "rollback_not_configured": {
        "en": "This checklist names no deployment to roll back (`rollback.target`).",
        "ko": "이 체크리스트에는 롤백할 디플로이먼트(`rollback.target`)가 없습니다.",
    },
    "rollback_not_found": {"en": "That rollback does not exist.", "ko": "해당 롤백을 찾을 수 없습니다."},
    "rollback_changed": {
        "en": "The deployment changed since the confirmation was opened (you saw revision {seen}, "
        "it is now at {now}). Nothing was sent; open the rollback again.",
        "ko": "확인 창을 연 뒤 디플로이먼트가 바뀌었습니다 (확인 시 리비전 {seen}, 현재 {now}). "
        "아무것도 보내지 않았습니다. 롤백을 다시 열어 주세요.",
    },
    "rollback_paused": {
        "en": "`{target}` is paused: you cannot roll back a paused deployment; resume it first with "
        "`kubectl rollout resume` and try again. Nothing was changed.",
        "ko": "`{target}`이(가) 일시 중지된 상태입니다. 일시 중지된 디플로이먼트는 롤백할 수 없습니다. "
        "`kubectl rollout resume`으로 재개한 뒤 다시 시도해 주세요. 아무것도 변경되지 않았습니다.",
    },
    "nothing_to_roll_back": {
        "en": "Nothing to roll back: the deployment already runs revision {revision}'s template.",
        "ko": "롤백할 대상이 없습니다: 디플로이먼트가 이미 리비전 {revision}의 템플릿으로 실행 중입니다.",
    },
    "rollback_not_rerun": {
        "en": "This rollback already ran (it is {status}); it is never sent twice.",
        "ko": "이 롤백은 이미 실행되었습니다 (상태: {status}). 두 번 보내지 않습니다.",
    },
    "service_locked": {
        "en": ":lock: Production of *{service}* is locked since release {version} was rolled back "
        "({reason}). A release manager clears it with `/release unlock <reason>`.",
        "ko": ":lock: 릴리스 {version} 롤백 이후 *{service}* 프로덕션이 잠겨 있습니다 ({reason}). "
        "릴리스 매니저가 `/release unlock <사유>`로 해제할 수 있습니다.",
    },
    "no_lock": {
        "en": "Production of {service} is not locked.",
        "ko": "{service} 프로덕션은 잠겨 있지 않습니다.",
    },
    # --- the confirmation modal ---
    "rb_modal_title": {"en": "Roll back production", "ko": "프로덕션 롤백"},
    "rb_submit": {"en": "Roll back", "ko": "롤백"},
    "rb_close": {"en": "Cancel", "ko": "취소"},
    "rb_loading": {
        "en": ":hourglass_flowing_sand: Reading the deployment's rollout history…",
        "ko": ":hourglass_flowing_sand: 디플로이먼트의 롤아웃 기록을 읽는 중…",
    },
    "rb_plan": {
        "en": "*Release {version}* — this runs `kubectl rollout undo deployment/{deployment} -n {namespace}`:",
        "ko": "*릴리스 {version}* — `kubectl rollout undo deployment/{deployment} -n {namespace}`를 실행합니다:",
    },
    "rb_current": {
        "en": "*Now:* revision {revision} — {images}",
        "ko": "*현재:* 리비전 {revision} — {images}",
    },
    "rb_target": {
        "en": "*Back to:* revision {revision} — {images}",
        "ko": "*되돌릴 대상:* 리비전 {revision} — {images}",
    },
    "rb_revision_label": {
        "en": "Revision to roll back to (--to-revision)",
        "ko": "되돌릴 리비전 (--to-revision)",
    },
    "rb_reason_label": {
        "en": "Why roll back? This is recorded and goes into the incident report.",
        "ko": "롤백 사유는 무엇인가요? 기록되고 인시던트 리포트에 들어갑니다.",
    },
    "rb_gitops": {
        "en": ":warning: {warning}. Pause its sync, or the rollback may be reverted.",
        "ko": ":warning: {warning}. 동기화를 멈추지 않으면 롤백이 되돌려질 수 있습니다.",
    },
    "rb_refused": {"en": ":no_entry: {text}", "ko": ":no_entry: {text}"},
    # --- the progress message in the thread ---
    "rb_progress_title": {
        "en": ":rewind: Rolling back `{target}`: revision {from_rev} → {to_rev} ({images}) — {who}: {reason}",
        "ko": ":rewind: `{target}` 롤백 중: 리비전 {from_rev} → {to_rev} ({images}) — {who}: {reason}",
    },
    "rb_progress_start": {
        "en": ":rewind: Rolling back `{target}` — {who}: {reason}",
        "ko": ":rewind: `{target}` 롤백 시작 — {who}: {reason}",
    },
    "rb_state_running": {
        "en": ":hourglass_flowing_sand: {status}",
        "ko": ":hourglass_flowing_sand: {status}",
    },
    "rolled_back": {
        "en": ":white_check_mark: Rolled back. `{target}` is on revision {revision} ({images}).",
        "ko": ":white_check_mark: 롤백 완료. `{target}`이(가) 리비전 {revision} ({images})로 실행 중입니다.",
    },
    "rb_failed": {
        "en": ":x: Rollback failed: {error}\nThe release is not marked rolled back and the incident stays open.",
        "ko": ":x: 롤백 실패: {error}\n릴리스는 롤백으로 표시되지 않았고 인시던트는 열려 있습니다.",
    },
    "rb_skipped": {"en": ":information_source: {message}", "ko": ":information_source: {message}"},
    "rb_locked_note": {
        "en": ":lock: Production of *{service}* is now locked until a release manager runs "
        "`/release unlock <reason>`.",
        "ko": ":lock: 릴리스 매니저가 `/release unlock <사유>`를 실행할 때까지 *{service}* 프로덕션이 잠깁니다.",
    },
    # Several checklists run: the unlock names the service, as a channel of several services needs it to.
    "rb_locked_note_named": {
        "en": ":lock: Production of *{service}* is now locked until a release manager runs "
        "`/release unlock {service} <reason>`.",
        "ko": ":lock: 릴리스 매니저가 `/release unlock {service} <사유>`를 실행할 때까지 *{service}* 프로덕션이 "
        "잠깁니다.",
    },
    "rb_interrupted": {
        "en": ":warning: The rollback of `{target}` confirmed by {who} was interrupted (the bot stopped "
        "while it was {status}). It was *not* retried. Kubernetes now says: {live}\n"
        "Check with `kubectl rollout status deployment/{deployment} -n {namespace}` and roll back again "
        "if needed.",
        "ko": ":warning: {who} 님이 확인한 `{target}` 롤백이 중단되었습니다 (봇이 {status} 상태에서 멈춤). "
        "다시 시도하지 *않았습니다*. 현재 쿠버네티스 상태: {live}\n"
        "`kubectl rollout status deployment/{deployment} -n {namespace}`로 확인하고 필요하면 다시 롤백해 주세요.",
    },
    "rb_report_intro": {
        "en": ":memo: Incident report draft (also `release-bot export {version} --format md`):",
        "ko": ":memo: 인시던트 리포트 초안 (`release-bot export {version} --format md`로도 볼 수 있습니다):",
    },
    # --- a rollback done by hand (seed 5.2 by kubectl, outside the bot) ---
    "btn_rolled_back_by_hand": {"en": "Rolled back by hand", "ko": "수동 롤백 기록"},
    "modal_by_hand_title": {"en": "Rolled back by hand", "ko": "수동 롤백 기록"},
    "modal_by_hand_prompt": {
        "en": "You rolled production back yourselves: why, and how (e.g. kubectl rollout undo)? Who and when are "
        "recorded with it; the release ends as rolled back and production is locked until unlocked.",
        "ko": "프로덕션을 직접 롤백하셨나요? 사유와 방법(예: kubectl 명령)을 적어 주세요. 누가, 언제 했는지 "
        "함께 기록되고, 릴리스는 롤백으로 끝나며 프로덕션은 잠금 해제 전까지 잠깁니다.",
    },
    "rb_by_hand_recorded": {
        "en": ":rewind: {who} rolled production back by hand ({when}): _{reason}_\n"
        "The release is marked rolled back. The 5.2 procedure, the 5.3 follow-up and the report draft follow.",
        "ko": ":rewind: {who} 님이 프로덕션을 수동으로 롤백했습니다 ({when}): _{reason}_\n"
        "릴리스를 롤백으로 표시했습니다. 5.2 롤백 절차, 5.3 롤백 후 작업, 리포트 초안을 이어서 게시합니다.",
    },
    "rb_procedure_after_failure": {
        "en": ":warning: The bot's rollback did not finish. Roll back by hand with the procedure below, then record "
        "it with `/release rolledback <reason>` (or the Rolled back by hand button).",
        "ko": ":warning: 봇의 롤백이 끝나지 않았습니다. 아래 절차대로 직접 롤백한 뒤 `/release rolledback <사유>` "
        "(또는 수동 롤백 기록 버튼)로 기록해 주세요.",
    },
    "rb_procedure_title": {"en": "*Rollback procedure*", "ko": "*롤백 절차*"},
    "rb_unlocked": {
        "en": ":unlock: {who} unlocked production of *{service}*: {reason}",
        "ko": ":unlock: {who} 님이 *{service}* 프로덕션 잠금을 해제했습니다: {reason}",
    },
}
