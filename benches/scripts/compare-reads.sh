#!/bin/sh
# Small-file reads of two `archive` binaries side by side: `export` of a whole tree and `get`
# of one small file (to a file and to stdout), each timed as a process, best of RUNS.
#
#   benches/scripts/compare-reads.sh OLD_ARCHIVE NEW_ARCHIVE TREE [RUNS]
#
# Exports go to OUT_DIR (default: a temporary folder beside TREE). On ext4, creating 100,000
# files where as many were just deleted is several times slower (the kernel skips recently
# freed inodes: `recently_deleted` in a profile), which penalises whichever binary runs
# second; OUT_DIR=/dev/shm (tmpfs) measures the archive's own work.
#
# TREE is any folder (the small-files benchmark's tree: 100,000 files of 512 B-8 KiB and three
# of 64 MiB). Each binary gets its own store in a temporary folder beside TREE, adds TREE, then
# the reads are timed with dirty pages flushed (`sync`, untimed) before each run.
set -eu
old=$1 new=$2 tree=$3 runs=${4:-3}
work=$(mktemp -d "$(dirname "$tree")/compare-reads.XXXXXX")
out_dir=$(mktemp -d "${OUT_DIR:-$work}/compare-reads-out.XXXXXX")
trap 'rm -rf "$work" "$out_dir"' EXIT
small=$(cd "$tree" && find . -type f -size -9k | head -1 | cut -c3-)

best() { # best of $runs runs of "$@", in seconds
    b=""
    for _ in $(seq "$runs"); do
        sync
        s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
        t=$(echo "$e - $s" | bc)
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
    done
    echo "$b"
}

for which in old new; do
    bin=$(eval echo "\$$which")
    export ARCHIVE_DIR="$work/store-$which"
    "$bin" init >/dev/null
    "$bin" add "$tree" --as "" >/dev/null
    export_s=$(best sh -c "rm -rf '$out_dir/out' && '$bin' export '$out_dir/out'")
    get_file_s=$(best "$bin" get "$small" -o "$work/one")
    get_out_s=$(best "$bin" get "$small")
    printf '%s  export %ss  get -o %ss  get %ss  (%s)\n' "$which" "$export_s" "$get_file_s" "$get_out_s" "$bin"
done
