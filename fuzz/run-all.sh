#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) one after another on one core, minimizes
# each corpus, and prints target → runs, time, new artifacts (crashes, timeouts, OOMs).
#
#   fuzz/run-all.sh 600            # all targets
#   fuzz/run-all.sh 60 mapping     # some targets
#
# On two cores, run two instances with disjoint target lists side by side.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). RUSTC_BOOTSTRAP lets the pinned
# stable toolchain accept the nightly flags cargo-fuzz passes; `-s none` because every
# workspace crate forbids `unsafe` (FUZZ_SANITIZER=address to use ASan anyway).
set -euo pipefail

seconds=${1:-600}
shift || true
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-none}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# Build once, then run the binaries as `cargo fuzz run`/`cmin` would: a source change while
# this runs (a shared working tree) must not rebuild between targets.
cargo fuzz build -s "$sanitizer"
bin=target/$(rustc -vV | sed -n 's/^host: //p')/release
mkdir -p artifacts/logs
rows=()
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t" "corpus/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    log=artifacts/logs/$t.log
    start=$(date +%s)
    # In-process (no -jobs, which would log to ./fuzz-0.log), so that two instances of this
    # script with different targets can share the directory, one per core.
    "$bin/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" \
        -print_final_stats=1 "corpus/$t" >"$log" 2>&1 || true
    elapsed=$(($(date +%s) - start))
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
    after=$(find "artifacts/$t" -type f | wc -l)
    # `cargo fuzz cmin` without its rebuild: merge into an empty directory, then swap.
    rm -rf "corpus/$t.cmin" && mkdir "corpus/$t.cmin"
    "$bin/$t" -merge=1 "corpus/$t.cmin" "corpus/$t" >"artifacts/logs/$t.cmin.log" 2>&1
    rm -rf "corpus/$t" && mv "corpus/$t.cmin" "corpus/$t"
    files=$(find "corpus/$t" -type f | wc -l)
    rows+=("$(printf '%-24s %12s %6ss %9s %7s' "$t" "${runs:-?}" "$elapsed" "$((after - before))" "$files")")
done

printf '%-24s %12s %7s %9s %7s\n' target runs time artifacts corpus
printf '%s\n' "${rows[@]}"
echo "logs: fuzz/artifacts/logs/; crash inputs: fuzz/artifacts/<target>/"
