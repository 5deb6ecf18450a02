#!/usr/bin/env bash
# Print a Python >= 3.12 interpreter (pygeoapi 0.24 needs it), or explain what is missing.
set -u
for cand in "${PYTHON:-}" python3.13 python3.12 /root/.pyenv/versions/3.12.1/bin/python3.12 \
            "$HOME/.pyenv/versions/3.12.1/bin/python3.12" /usr/bin/python3.12 /usr/local/bin/python3.12; do
  [ -n "$cand" ] || continue
  p=$(command -v "$cand" 2>/dev/null) || continue
  if "$p" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    echo "$p"; exit 0
  fi
done
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9]'); do
    p="$(pyenv root)/versions/$v/bin/python3"
    [ -x "$p" ] && { echo "$p"; exit 0; }
  done
fi
cat >&2 <<'MSG'
找不到 Python 3.12 或更高版本 / No Python >= 3.12 found.
pygeoapi 0.24 needs Python 3.12. Install one of:
  - pyenv:  pyenv install 3.12  (then re-run make)
  - Debian: a python3.12 package from a newer release or deadsnakes
or point PYTHON at an interpreter:  make run PYTHON=/path/to/python3.12
MSG
exit 1
