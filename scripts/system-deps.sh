#!/usr/bin/env bash
# Install the Debian packages Tierdesk needs, when they are missing.
# As root it runs apt-get; otherwise it prints the command to run and goes on.
# Usage: scripts/system-deps.sh PACKAGE...
set -u
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing system packages (install them with your package manager): ${missing[*]}" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit $?
fi
echo "These system packages are missing; install them with:" >&2
echo "  sudo apt-get install ${missing[*]}" >&2
exit 0
