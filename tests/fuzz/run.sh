#!/bin/sh
# Runs one libFuzzer target for $FUZZ_SECONDS (default 10): run.sh BINARY CORPUS_DIR...
bin=$1
shift
exec "$bin" -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=2048 -print_final_stats=1 "$@"
