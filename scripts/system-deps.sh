#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use (real peers, not stand-ins):
#   mosquitto  - the cloud broker and the benchmark's peer broker
#   socat      - pseudo-terminal pairs for serial devices
#   openssl    - throwaway certificates for the TLS listener tests
#   libusb-1.0-0 - loaded by node-hid's Linux binding (USB HID devices)
#   chromium   - the real browser the dashboard test drives (playwright-core)
#   python3, make, g++ - node-gyp builds better-sqlite3 and unix-dgram from source during npm ci
# Does nothing when they are present; needs root (or sudo) and apt-get otherwise.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || need+=(libusb-1.0-0)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v make >/dev/null 2>&1 || need+=(make)
command -v g++ >/dev/null 2>&1 || need+=(g++)
[ ${#need[@]} -eq 0 ] && exit 0
echo "storehub: installing Debian packages: ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "storehub: please install as root: apt-get install -y ${need[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts mosquitto as a service on 1883 when it is installed under systemd; storehub only runs
# it itself (tests, benchmarks) and the hub's own broker wants that port: stop and disable the service.
if [[ " ${need[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet mosquitto 2>/dev/null; then
  $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
  echo "storehub: disabled the mosquitto service Debian started (the hub's broker uses port 1883)" >&2
fi
