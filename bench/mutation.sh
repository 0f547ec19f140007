#!/usr/bin/env bash
# Mutation testing of the modules that keep the privacy policy (issue 18). Not part of CI.
#
#   nice -n 19 bench/mutation.sh [module ...]   e.g. bench/mutation.sh privacy/policy privacy/output_cache
#
# For each module (default: all of MODULES below, one after the other), a copy of this checkout
# is made under $MUTATION_WORKDIR, mutmut 3.8 mutates that one module and runs every mutant
# against only the tests that cover the mutated function (mutmut's stats run maps tests to
# functions; the candidate tests are the module's files in TESTS below). Then it prints the
# score per module and every survivor. Mutants judged equivalent are listed with the reason in
# bench/mutation_equivalent.txt; they leave the count, at most 5% of a module's mutants.
#
# Settings (environment): MUTATION_SHOW_DIFFS (non-empty: print each survivor's change),
# MUTATION_WORKDIR (default /tmp/zimage-mutation, wiped per module),
# MUTATION_CHILDREN (parallel mutants, default 2), MUTATION_VENV (where mutmut is installed,
# default ~/.cache/zimage-mutmut: a venv of its own that also sees the packages of the `python`
# that runs the project, the active venv's if there is one, so the project's own pinned packages
# are the ones under test).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORKDIR="${MUTATION_WORKDIR:-/tmp/zimage-mutation}"
CHILDREN="${MUTATION_CHILDREN:-2}"
VENV="${MUTATION_VENV:-$HOME/.cache/zimage-mutmut}"
MUTMUT_VERSION="3.8.0"

MODULES=(privacy/policy privacy/output_cache service/images tools/checks guards/client_address
  guards/uploads privacy/usage_store privacy/usage_log guards/rate_limit)
# The candidate tests of each module: the fast tests of the module itself. Tests that launch the
# whole app are left out (each mutant would start a server); what they check of these modules is
# also checked here. Node ids pick the fast tests of a file that also launches the app. Tests
# that run the code in another process (tests/service/test_decode_memory.py) cannot be traced
# to the functions they cover, so mutmut would never run them: left out too.
BROWSER_STATE=tests/privacy/test_browser_state.py
declare -A TESTS=(
  [privacy/policy]="tests/privacy/test_policy.py $BROWSER_STATE::test_pseudonym_signatures
    $BROWSER_STATE::test_key_file_is_made_once_owner_only_and_kept
    $BROWSER_STATE::test_empty_or_malformed_key_file_is_replaced
    $BROWSER_STATE::test_key_file_that_can_be_neither_read_nor_made_raises
    $BROWSER_STATE::test_a_short_operator_secret_is_refused_without_echoing_it"
  [privacy/output_cache]="tests/privacy/test_output_cache.py"
  [service/images]="tests/service/test_images.py"
  [tools/checks]="tests/tools/test_checks.py"
  [guards/client_address]="tests/guards/test_client_address.py"
  [guards/uploads]="tests/guards/test_uploads.py"
  [privacy/usage_store]="tests/privacy/test_usage_log.py"
  [privacy/usage_log]="tests/privacy/test_usage_log.py"
  [guards/rate_limit]="tests/guards/test_rate_limit.py"
)

# The interpreter README's commands install the project into and run it with.
PYTHON="$(command -v python || command -v python3)"
# Its site-packages, which the mutmut venv reads through a .pth file. A venv made with
# --system-site-packages would read the base interpreter's instead, which lacks the project's
# packages when they live in a venv.
project_paths="$("$PYTHON" -c 'import sysconfig; print(*sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}), sep="\n")')"
venv_site_packages() { "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))'; }
installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mutmut"))' \
  2>/dev/null || true)"
if [[ "$installed" != "$MUTMUT_VERSION" ]] \
  || [[ "$(cat "$(venv_site_packages)/project.pth" 2>/dev/null)" != "$project_paths" ]]; then
  echo "installing mutmut $MUTMUT_VERSION into $VENV, over the packages of $PYTHON"
  "$PYTHON" -m venv --clear "$VENV"
  echo "$project_paths" >"$(venv_site_packages)/project.pth"
  "$VENV/bin/pip" install --quiet "mutmut==$MUTMUT_VERSION"
fi

modules=("$@")
[[ ${#modules[@]} -gt 0 ]] || modules=("${MODULES[@]}")
commit="$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD || echo +changes)"
echo "mutmut $MUTMUT_VERSION, commit $commit, $(date -u +%Y-%m-%dT%H:%MZ), $CHILDREN children"

# One thread per test process: the machine's cores are for the parallel mutants.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

for module in "${modules[@]}"; do
  tests="${TESTS[$module]:?unknown module $module (one of: ${MODULES[*]})}"
  copy="$WORKDIR/$module"
  rm -rf "$copy"
  mkdir -p "$copy"
  # The checkout as it is (tracked and new files, not ignored ones), without the repository.
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$copy"
  {
    echo "[mutmut]"
    echo "source_paths = zimage/"
    echo "only_mutate = zimage/$module.py"
    echo "also_copy ="
    (cd "$copy" && ls -d -- * | grep -vx 'zimage\|tests\|mutants' | sed 's/^/    /')
    echo "pytest_add_cli_args_test_selection ="
    for test in $tests; do echo "    $test"; done
    echo "pytest_add_cli_args ="
    echo "    -p"
    echo "    no:cacheprovider"
  } >"$copy/setup.cfg"
  echo
  echo "== $module: mutants of zimage/$module.py against" $tests
  start=$SECONDS
  (cd "$copy" && "$VENV/bin/mutmut" run --max-children "$CHILDREN" >"$copy/run.log" 2>&1) \
    || { tail -40 "$copy/run.log"; echo "mutmut failed on $module (log: $copy/run.log)"; continue; }
  (cd "$copy" && "$VENV/bin/mutmut" results --all true) >"$copy/results.txt"
  "$PYTHON" "$ROOT/bench/mutation_score.py" "$module" "$copy/results.txt" \
    "$ROOT/bench/mutation_equivalent.txt" "$((SECONDS - start))" | tee "$copy/score.txt"
  if [[ -n "${MUTATION_SHOW_DIFFS:-}" ]]; then
    # What each survivor changed, for writing the test that would notice.
    for mutant in $(sed -n 's/^  survived: \([^ ]*\) .*/\1/p' "$copy/score.txt"); do
      echo "-- $mutant"
      (cd "$copy" && "$VENV/bin/mutmut" show "$mutant" 2>/dev/null | grep '^[-+][^-+]' || true)
    done
  fi
done

echo
echo "== summary ($((SECONDS / 60)) min in all)"
for module in "${modules[@]}"; do
  head -1 "$WORKDIR/$module/score.txt" 2>/dev/null || echo "$module: no result"
done
