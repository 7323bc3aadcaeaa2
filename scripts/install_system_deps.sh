#!/usr/bin/env bash
# Debian/Ubuntu packages napari's Qt window and the GUI tests need: a virtual X server (Xvfb),
# Mesa OpenGL and the xcb libraries Qt 5 loads. Installs only what is missing.
set -euo pipefail
pkgs=(xvfb xauth libgl1 libegl1 libglx-mesa0 libgl1-mesa-dri libxkbcommon-x11-0
      libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
      libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1)
if ! command -v dpkg >/dev/null 2>&1; then
  echo "install_system_deps: not a Debian-like system; install Xvfb, Mesa GL and Qt's xcb libraries yourself" >&2
  exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# `python3 -m venv` needs ensurepip, which Debian ships apart (python3-venv)
if ! "${PYTHON:-python3}" -c "import ensurepip" >/dev/null 2>&1; then
  dpkg -s python3-venv >/dev/null 2>&1 || missing+=(python3-venv)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
say_and_go_on() {
  echo "install_system_deps: $1: these system packages are missing;" >&2
  echo "  ask an administrator to run: apt-get install -y ${missing[*]}" >&2
  if [[ " ${missing[*]} " == *" python3-venv "* ]] && [ ! -x "${VENV:-.venv}/bin/python" ]; then
    # without it `python3 -m venv` fails: stop here, saying why, not one step later (an
    # environment already made goes on)
    echo "  (stopping: python3-venv is needed to set up the Python environment)" >&2
    exit 1
  fi
  echo "  (going on: the Python environment is set up, but napari may not open and the" >&2
  echo "  GUI tests fail until they are installed)" >&2
  exit 0
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || say_and_go_on "not root and no sudo"
  # sudo that may not be used here (a shared workstation, a cluster's login node) is no sudo:
  # without a password cached, it is asked for only at a terminal, and a refusal goes on
  if ! sudo -n true >/dev/null 2>&1; then
    if [ -t 0 ]; then
      echo "Installing system packages needs sudo: ${missing[*]}"
      sudo -v || say_and_go_on "sudo was refused"
    else
      say_and_go_on "sudo needs a password and there is no terminal to ask it at"
    fi
  fi
  SUDO="sudo"
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ -n "$SUDO" ]; then
  # with sudo, a failed install (no network, a locked dpkg) is said, and setup goes on
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || say_and_go_on "apt-get failed"
else
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
