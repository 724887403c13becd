#!/usr/bin/env bash
# Installs what s2s needs and is missing: Debian packages for the build, Python packages for the
# PyTorch / transformers reference checks. Idempotent and quiet when everything is present.
set -euo pipefail

DEB_PKGS=(build-essential cmake pkg-config
  libopenblas-openmp-dev libhdf5-dev libsndfile1-dev libsoxr-dev libfftw3-dev
  libpcre2-dev libutf8proc-dev libcjson-dev libyaml-dev
  libopenmpi-dev openmpi-bin python3 python3-pip espeak-ng sox)

missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python references (tests and bench compare against these). S2S_NO_PY=1 skips them.
if [ "${S2S_NO_PY:-0}" != "1" ]; then
  PY=${PYTHON:-python3}
  need=()
  for m in numpy torch transformers tokenizers h5py safetensors matplotlib soxr soundfile peft; do
    $PY -c "import $m" 2>/dev/null || need+=("$m")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "deps: pip installing ${need[*]}"
    # A distribution Python may refuse system-wide installs (PEP 668): fall back to the user site.
    $PY -m pip install -q --disable-pip-version-check "${need[@]}" 2>/dev/null ||
      $PY -m pip install -q --disable-pip-version-check --user --break-system-packages "${need[@]}"
  fi
fi
