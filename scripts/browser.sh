#!/usr/bin/env bash
# Headless Chromium for the demo's browser test (tests/demo/test_demo_browser.py): Debian's chromium and
# chromium-driver, installed with apt-get when they are missing and this runs as root. Quiet and idempotent;
# it never fails the caller: without them the browser test skips, saying why.
set -u
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "browser.sh: chromium/chromedriver missing and not root with apt-get: the browser test will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -qq chromium chromium-driver; }
if { apt_install || { apt-get update -qq && apt_install; }; } >/tmp/virtue-browser-apt.log 2>&1; then
  echo "browser.sh: installed chromium and chromium-driver" >&2
else
  echo "browser.sh: could not install chromium (see /tmp/virtue-browser-apt.log): the browser test will skip" >&2
fi
exit 0
