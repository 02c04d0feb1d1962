#!/usr/bin/env bash
# Install this checkout with no extras (`pip install edgefleet`, what a device gets) into a
# fresh virtual environment and check what a new user sees there: the commands that need an
# extra say which one in one line and exit 2, without a traceback; the device commands work.
#
#   scripts/check-bare-install.sh            # uses python3; PYTHON=python3.12 to choose
#
# Pins come from constraints.txt at the repository root when it exists. Needs the package
# index (or a mirror pip is configured for). Exits non-zero naming every check that failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
constraints=()
if [[ -f "$root/constraints.txt" ]]; then
  constraints=(-c "$root/constraints.txt")
fi
echo "installing $root without extras into $work/venv ${constraints[*]:-}"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "${constraints[@]}" "$root"
edgefleet="$work/venv/bin/edgefleet"
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_hint EXTRA ARGS...: exit 2, "pip install 'edgefleet[...EXTRA...]'", no traceback
expect_hint() {
  local extra="$1"
  shift
  local out status=0
  out="$(cd "$work" && "$edgefleet" "$@" 2>&1)" || status=$?
  if [[ "$status" -ne 2 ]]; then
    fail "edgefleet $* exited $status, not 2"
  fi
  if ! grep -qE "pip install 'edgefleet\[([a-z]+,)*$extra(,[a-z]+)*\]'" <<<"$out"; then
    fail "edgefleet $* does not say to install the $extra extra"
  fi
  if grep -q "Traceback" <<<"$out"; then
    fail "edgefleet $* printed a traceback"
  fi
  echo "edgefleet $* -> exit $status: $out"
}

# expect_ok ARGS...: exit 0
expect_ok() {
  local out status=0
  out="$(cd "$work" && "$edgefleet" "$@" 2>&1)" || status=$?
  if [[ "$status" -ne 0 ]]; then
    fail "edgefleet $* exited $status: $out"
  fi
  echo "edgefleet $* -> exit $status"
}

expect_ok --version
expect_ok serve --help
expect_ok agent --help
expect_hint server server
expect_hint server server --data-dir "$work/server"
expect_hint server server init --data-dir "$work/server"
expect_hint server demo --workdir "$work/demo"
expect_hint train demo --workdir "$work/demo"
expect_hint train fl simulate --rounds 1 --clients 2 --per-round 1
expect_hint ray fl simulate --rounds 1 --clients 2 --per-round 1 --backend ray
expect_hint train models build --out "$work/models"

if [[ -e "$work/server" || -e "$work/demo" || -e "$work/models" ]]; then
  fail "a refused command left files behind"
fi
if [[ "$failures" -ne 0 ]]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "bare install: every check passed"
