#!/usr/bin/env bash
# Installs Debian's chromium (the headless browser the admin page's test
# drives with chromedp) when missing. Idempotent: does nothing when
# $REGCHAIN_CHROMIUM or /usr/bin/chromium is already there.
set -euo pipefail
if [ -n "${REGCHAIN_CHROMIUM:-}" ] && [ -x "$REGCHAIN_CHROMIUM" ]; then exit 0; fi
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq chromium >&2
if [ ! -x /usr/bin/chromium ]; then
  echo "install-chromium: apt-get installed chromium but /usr/bin/chromium is missing" >&2
  exit 1
fi
