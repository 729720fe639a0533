#!/usr/bin/env bash
# Points every alert's runbook_url at your copy of the runbook (docs/runbook.md):
#   scripts/set-runbook-url.sh https://wiki.example.org/monitoring/wolkvox/docs/runbook.md
# Each runbook_url in deploy/prometheus/rules/wolkvox.rules.yml is <base>#<alert section>; this
# replaces the base of all of them (the sections stay), then runs scripts/sync-kubernetes.sh so
# that deploy/kubernetes/prometheusrule.yaml carries the same links. The bundled base is
# "docs/runbook.md", relative to the bundle; run it again with another URL to change it again
# (scripts/set-runbook-url.sh docs/runbook.md goes back to it).
set -euo pipefail
cd "$(dirname "$0")/.."

rules=deploy/prometheus/rules/wolkvox.rules.yml

if [[ $# -ne 1 ]]; then
  echo "usage: $0 URL   (the address of your copy of docs/runbook.md, without a #section; the bundled one is docs/runbook.md)" >&2
  exit 2
fi
base=$1
# The base goes inside a double-quoted YAML string and a sed replacement: refuse what would break
# either, and a '#' (the section is appended to it).
if [[ -z $base || $base =~ [[:space:][:cntrl:]\"\\\#\|] ]]; then
  echo "$0: refusing '$base': give a URL without spaces, quotes, backslashes, '|' or '#'" >&2
  exit 2
fi

pattern='^([[:space:]]*runbook_url: )"[^"#]*#([a-z0-9_-]+)"[[:space:]]*$'
total=$(grep -cE "$pattern" "$rules" || true)
if [[ $total -eq 0 ]]; then
  echo "$0: no runbook_url of the form \"<base>#<section>\" in $rules" >&2
  exit 1
fi
if [[ $(grep -c 'runbook_url:' "$rules") -ne $total ]]; then
  echo "$0: some runbook_url in $rules is not of the form \"<base>#<section>\"; fix it by hand first" >&2
  exit 1
fi

replacement=${base//&/\\&}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed -E "s|$pattern|\\1\"$replacement#\\2\"|" "$rules" > "$tmp"
# Keep the file's own permissions and inode: write through it rather than moving over it.
cat "$tmp" > "$rules"
echo "$total runbook_url set to $base#<section> in $rules"

scripts/sync-kubernetes.sh
