#!/usr/bin/env bash
# Mutation testing, on demand (not part of CI): each patch in this folder breaks one behaviour the test suite must
# catch. The script copies the committed tree (HEAD) to a scratch folder, checks that the suite passes there,
# then for each patch applies it, builds and runs the tests, and expects them to FAIL. A mutation the suite
# does not fail on is a hole in the tests: the script lists it and exits 1.
#
#   bash tests/mutations/run.sh            # every patch, whole suite each time (about 1 min per patch)
#   bash tests/mutations/run.sh --quick    # every patch, only the test classes named in its '# tests:' line
#   bash tests/mutations/run.sh 05 13      # only the patches whose names start with these
#
# The patches are made by make_patches.py (find/replace specs beside them); regenerate them after moving code:
#   python3 tests/mutations/make_patches.py
set -uo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
quick=0
selected=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) selected+=("$arg") ;;
  esac
done

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
git -C "$root" archive HEAD | tar -x -C "$scratch"
cd "$scratch"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

run_tests() { # $1: a '|' list of test class fragments, or empty for the whole suite
  local filter=()
  if [[ -n "$1" ]]; then
    filter=(--filter "$(echo "$1" | sed -E 's/([^|]+)/FullyQualifiedName~\1/g')")
  fi
  timeout 20m dotnet test EventLoop.sln -c Release --no-build --blame-hang-timeout 3m --blame-hang-dump-type none "${filter[@]}" >"$scratch/test.log" 2>&1
}

echo "mutation testing of $(git -C "$root" rev-parse --short HEAD) in $scratch"
if ! dotnet build EventLoop.sln -c Release -warnaserror -v q >"$scratch/build.log" 2>&1; then
  echo "the unmutated tree does not build:"; tail -20 "$scratch/build.log"; exit 2
fi
if ! run_tests ""; then
  echo "the unmutated tree fails its tests; fix that first:"; grep -E "Failed |Error Message" "$scratch/test.log" | head -20; exit 2
fi

killed=0; survived=(); broken=()
for patch in "$root"/tests/mutations/*.patch; do
  name=$(basename "$patch" .patch)
  if (( ${#selected[@]} )); then
    match=0; for s in "${selected[@]}"; do [[ "$name" == "$s"* ]] && match=1; done
    (( match )) || continue
  fi
  why=$(sed -n 's/^# mutation: //p' "$patch")
  tests=""; (( quick )) && tests=$(sed -n 's/^# tests: //p' "$patch")
  if ! patch -p1 --quiet --dry-run <"$patch" >/dev/null; then
    echo "DOES NOT APPLY  $name ($why): regenerate with make_patches.py"; broken+=("$name"); continue
  fi
  patch -p1 --quiet <"$patch"
  if ! dotnet build EventLoop.sln -c Release -warnaserror -v q >"$scratch/build.log" 2>&1; then
    echo "DOES NOT BUILD  $name ($why)"; broken+=("$name")
  elif run_tests "$tests"; then
    echo "SURVIVED        $name: $why"; survived+=("$name")
  else
    failed=$(grep -oE 'Failed: +[0-9]+' "$scratch/test.log" | awk '{s+=$2} END {print s+0}')
    hang=$(grep -A1 "test running when the crash occurred" "$scratch/test.log" | tail -1 | tr -d ' ')
    echo "killed          $name ($failed failed${hang:+, a hang in $hang})"; killed=$((killed + 1))
  fi
  patch -p1 --quiet -R <"$patch"
done

echo "mutations: ${killed} killed, ${#survived[@]} survived, ${#broken[@]} broken"
(( ${#survived[@]} == 0 && ${#broken[@]} == 0 ))
