#!/usr/bin/env bash
# Creates or refreshes the two Python 3.10 environments; a stamp per lock file makes a re-run instant.
#   .venv       our code (bureau, webhook, actions), rasa-sdk, Flask, SQLAlchemy 2, Celery, test tools
#   .venv-rasa  rasa==3.6.21 and jieba (Rasa pins SQLAlchemy 1.4 and TensorFlow 2.12, hence apart)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .stamps

find_python310() {
  if [ -n "${PYTHON310:-}" ]; then echo "$PYTHON310"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root)
    local candidate; candidate=$(ls -d "$root"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$candidate" ]; then echo "$candidate"; return; fi
  fi
  for candidate in python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    if command -v "$candidate" >/dev/null 2>&1; then command -v "$candidate"; return; fi
  done
  echo "Python 3.10 not found: install it (e.g. 'pyenv install 3.10') or set PYTHON310=/path/to/python3.10" >&2
  exit 1
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

make_venv() {  # make_venv DIR STAMP_NAME INSTALL_COMMAND...
  local dir=$1 name=$2; shift 2
  local stamp=".stamps/$name"
  local want; want=$(stamp_of "${STAMP_INPUTS[@]}")
  if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  local py; py=$(find_python310)
  echo "==> setting up $dir with $py (first time takes a few minutes)"
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  pip_quiet "$dir" --upgrade "pip==24.0"
  "$@"
  echo "$want" > "$stamp"
}

pip_quiet() {  # pip_quiet VENV ARGS...: quiet on success, the whole log (less index noise) on failure
  local dir=$1; shift
  local log; log=$(mktemp)
  if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" >&2 || true
    rm -f "$log"
    echo "pip install into $dir failed (see above)" >&2
    return 1
  fi
  rm -f "$log"
}

install_app() {
  pip_quiet .venv -r requirements/app.lock
  pip_quiet .venv --no-deps -e .
}
install_rasa() {
  pip_quiet .venv-rasa -r requirements/rasa.lock
}

STAMP_INPUTS=(requirements/app.lock pyproject.toml)
make_venv .venv venv install_app
STAMP_INPUTS=(requirements/rasa.lock)
make_venv .venv-rasa venv-rasa install_rasa
