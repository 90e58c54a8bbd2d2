#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it into a fresh venv outside the checkout, and from an
# empty temporary folder validate the shipped checklist, migrate SQLite and Postgres, and play a whole release
# with a rollback. Nothing of the checkout is reachable from there, so a file the wheel forgot fails here.
#
#   bash scripts/check-wheel.sh [PYTHON]       (Postgres from TEST_DATABASE_URL, default 127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3}"
work="$(mktemp -d -t release-bot-wheel-XXXXXX)"
trap 'rm -rf "$work"' EXIT

"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" .
rm -rf build ./*.egg-info
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$work"/dist/release_bot-*.whl
bot="$work/venv/bin/release-bot"

mkdir "$work/run"
cd "$work/run"
echo "wheel: $(ls "$work"/dist)"

# The shipped checklist, and the copy `checklist init` writes for a team to edit.
"$bot" checklist init team.yaml
"$bot" checklist check team.yaml | tail -1

# Migrations from inside the installed package: SQLite, then a scratch database on the Postgres server.
DATABASE_URL="sqlite:///$work/run/bot.db" "$bot" db upgrade
admin="${TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
scratch="release_bot_wheel_$$"
pg() {
    "$work/venv/bin/python" - "$admin" "$1" <<'PY'
import sys, sqlalchemy as sa
engine = sa.create_engine(sys.argv[1], isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
with engine.connect() as conn:
    conn.execute(sa.text(sys.argv[2]))
PY
}
pg "CREATE DATABASE \"$scratch\""
trap 'pg "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)" || true; rm -rf "$work"' EXIT
DATABASE_URL="${admin%/*}/$scratch" "$bot" db upgrade

# A release typed into the playground: the canary, a breach, the page, the rollback and its follow-up.
"$bot" playground --speed 600 --out "$work/files" >"$work/playground.out" 2>"$work/playground.err" <<'EOF'
/release start v1.2.3
tick all
advance
advance
advance
breach errors 7%
wait page
rollback
submit 에러율 급증
wait rollback
quit
EOF
if grep -q -e Traceback -e WARNING "$work/playground.err" "$work/playground.out"; then
    cat "$work/playground.err" >&2
    exit 1
fi
grep -q "📟 PagerDuty trigger" "$work/playground.out"
grep -q 'deployment "backend" successfully rolled out' "$work/playground.out"
echo "playground: a release with a page and a rollback, no traceback"
ls -A "$work/run"
