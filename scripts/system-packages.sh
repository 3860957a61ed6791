#!/usr/bin/env bash
# Makes sure the Debian packages named on the command line are on this machine: where one is missing,
# apt-get installs it when run as root, and otherwise one line names the command to run. Each package is
# checked by what the project uses of it, so a machine that has it some other way is left alone.
set -euo pipefail
python=${PYTHON:-python3}

present() {
    case "$1" in
        python3-venv) "$python" -c 'import ensurepip, venv' 2>/dev/null ;;
        chromium) command -v chromium >/dev/null ;;
        espeak-ng) command -v espeak-ng >/dev/null ;;
        fonts-wqy-microhei) [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] ;;
        postgresql) command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ;;
        *) echo "system-packages.sh: no check for $1" >&2; exit 2 ;;
    esac
}

missing=()
for package in "$@"; do
    present "$package" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    exit 0
fi
echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
exit 1
