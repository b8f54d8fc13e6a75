#!/usr/bin/env bash
# Installs what the package needs on Debian or Ubuntu: rabbitmq-c (librabbitmq-dev), a local RabbitMQ broker,
# docker-compose (only to validate docker-compose.yml; no Docker engine is needed), and python3 (for
# scripts/check-docs.py, which a minimal Debian lacks). Swift itself must be installed.
set -euo pipefail

packages=(librabbitmq-dev libssl-dev pkg-config openssl rabbitmq-server docker-compose python3)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
