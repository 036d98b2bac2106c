#!/usr/bin/env bash
# Debian packages the tests use: prometheus (+ promtool), prometheus-alertmanager (+ amtool),
# systemd (systemd-analyze verify, for the unit file).
# Installs them when missing and we are root with apt-get; otherwise says what to install.
# Tests that need them skip with that reason, or fail when GPUMETRICS_REQUIRE_TOOLS=1 (CI).
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
    || missing+=(prometheus-alertmanager)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: $packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $packages >/dev/null
else
    echo "note: install $packages (apt-get install $packages) to run the integration tests" >&2
fi
