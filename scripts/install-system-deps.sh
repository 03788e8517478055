#!/usr/bin/env bash
# Install the optional Debian packages transferguard uses, when it can (root + apt-get).
# Never fails the build: without them the project runs on its pip-installable data.
set -u
pkgs=(dataset-fashion-mnist fonts-aenigma)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  echo "transferguard: optional Debian packages not installed (${missing[*]}): no apt-get or not root;" \
       "the Fashion-MNIST domain and extra fonts will be skipped." >&2
  exit 0
fi
echo "transferguard: installing Debian packages: ${missing[*]}"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
  echo "transferguard: could not install ${missing[*]}; continuing without them." >&2
fi
exit 0
