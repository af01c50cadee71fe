#!/bin/sh
# The memory benchmark: examples/memory_benchmark.c over cores x tasks x seeds,
# the same budget per cell, written up as a markdown table.
#
#   sh tools/memory_benchmark.sh [options]         (make memory-bench)
#   sh tools/memory_benchmark.sh --smoke -o FILE   (make memory-bench-smoke)
#   sh tools/memory_benchmark.sh --verify FILE ROWS COLUMNS
#
# Options (environment variables in brackets):
#   -o FILE     the table (MB_OUT, default memory_bench.md)
#   -s STEPS    env steps per cell (MB_STEPS, default 500000)
#   -n SEEDS    seeds 1..SEEDS per cell (MB_SEEDS, default 3)
#   -c CORES    core specs, space separated (MB_CORES, default: none frame_stack:4
#               elman:128 lstm:128 gru:128 amrl:128 fwp:64 gtrxl:64 dnc:16:16:1
#               hcam:64:8:2 ftw:64:64:4)
#   -t TASKS    task ids, ';' separated (MB_TASKS, default the full grid below)
#   -j JOBS     cells run at once (MB_JOBS, default 1)
#   --medium    adds POPGym's nine tasks at Medium to the default grid
#   --smoke     2 cores x 2 tasks x 1 seed, 20k steps: seconds, for make test
#   --from RAWS runs nothing: the table from earlier runs' .raw files (space
#               separated; runs of the same -s and -n), columns in -c's order
# The full grid: POPGym's nine card and game tasks at Easy (the four whose
# observation needs the previous action get POPGym's prev_action_reward
# wrapper), StatelessCartPole-v1, NoisyStatelessCartPole-v1, PassiveTMaze at
# corridor lengths 20 50 100 250 500 1000, and bsuite's memory_len sweep
# (MemoryChain-n, n = 1..10, 12, 14, 17, 20, 25, 30..100 by 10: 23 settings).
# Every run's `mmer:` line goes to <table>.raw; the per-cell logs to
# <table>.logs/. --verify checks a table: ROWS task rows, each with COLUMNS
# cells whose first figure (the mean MMER) is a number in [0, 1].
set -u
out=${MB_OUT:-memory_bench.md}
steps=${MB_STEPS:-500000}
seeds=${MB_SEEDS:-3}
cores=${MB_CORES:-"none frame_stack:4 elman:128 lstm:128 gru:128 amrl:128 fwp:64 gtrxl:64 dnc:16:16:1 hcam:64:8:2 ftw:64:64:4"}
jobs=${MB_JOBS:-1}
medium=0
tasks=${MB_TASKS:-}
from=
bin=${MB_BIN:-./build/memory_benchmark}

verify() { # table rows columns
  [ -f "$1" ] || { echo "verify: no table $1"; return 1; }
  awk -v rows="$2" -v cols="$3" '
    /^\| task / { header = 1; next }
    header && /^\|---/ { header = 0; body = 1; next }
    body && /^\| / {
      n++
      line = $0; gsub(/\\\|/, "/", line) # a task id'"'"'s escaped | is not a cell border
      nf = split(line, f, "|")
      if (nf - 3 != cols) { printf "verify: row %d has %d cells, not %d\n", n, nf - 3, cols; bad = 1 }
      for (i = 3; i < nf; i++) {
        cell = f[i]; sub(/^ +/, "", cell); split(cell, w, " ")
        v = w[1]
        if (v !~ /^[0-9]+([.][0-9]+)?$/ || v + 0 < 0 || v + 0 > 1) {
          printf "verify: row %d cell %d is \"%s\", not a number in [0, 1]\n", n, i - 2, cell; bad = 1
        }
      }
      next
    }
    body { body = 0 }
    END {
      if (n != rows) { printf "verify: %d task rows, not %d\n", n, rows; bad = 1 }
      exit bad
    }' "$1"
}

while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift ;;
    -s) steps=$2; shift ;;
    -n) seeds=$2; shift ;;
    -c) cores=$2; shift ;;
    -t) tasks=$2; shift ;;
    -j) jobs=$2; shift ;;
    --medium) medium=1 ;;
    --smoke) steps=20000; seeds=1; cores="none lstm:16"; tasks="RepeatFirstEasy-v0;MemoryChain-3" ;;
    --from) from=$2; shift ;;
    --verify) verify "$2" "$3" "$4"; exit $? ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
  shift
done

if [ -z "$tasks" ]; then
  levels=Easy
  [ $medium -eq 1 ] && levels="Easy Medium"
  for lv in $levels; do
    for t in RepeatFirst RepeatPrevious Autoencode CountRecall HigherLower; do tasks="$tasks;$t$lv-v0"; done
    for t in Concentration Battleship MineSweeper MultiarmedBandit; do
      tasks="$tasks;$t$lv-v0|prev_action_reward"
    done
  done
  tasks="$tasks;StatelessCartPole-v1;NoisyStatelessCartPole-v1"
  for l in 20 50 100 250 500 1000; do tasks="$tasks;PassiveTMaze-$l"; done
  for l in 1 2 3 4 5 6 7 8 9 10 12 14 17 20 25 30 40 50 60 70 80 90 100; do
    tasks="$tasks;MemoryChain-$l"
  done
  tasks=${tasks#;}
fi

raw=$out.raw
if [ -n "$from" ]; then
  # shellcheck disable=SC2086 # a list of files
  cat $from > "$raw" || exit 1
  elapsed=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^seconds=/) { sub(/^seconds=/, "", $i); s += $i } }
                 END { printf "%d s of runs", s }' "$raw")
  produced="the runs of \`sh tools/memory_benchmark.sh -s $steps -n $seeds -c CORES\` in $from, put together by \`--from\`"
else
  [ -x "$bin" ] || { echo "no $bin: run make build/memory_benchmark"; exit 1; }
  logs=$out.logs
  mkdir -p "$logs"
  : > "$raw"
  # One line per cell run: the arguments of memory_benchmark, tab separated.
  list=$out.cells
  : > "$list"
  echo "$tasks" | tr ';' '\n' | while IFS= read -r task; do
    [ -n "$task" ] || continue
    for core in $cores; do
      s=1
      while [ $s -le "$seeds" ]; do
        printf '%s\t%s\t%s\n' "$task" "$core" "$s" >> "$list"
        s=$((s + 1))
      done
    done
  done
  total=$(wc -l < "$list")
  echo "memory benchmark: $total runs ($(echo "$tasks" | tr ';' '\n' | grep -c .) tasks x cores [$cores] x $seeds seeds), $steps steps each, $jobs at once"
  start=$(date +%s)
  run_cell() { # task core seed
    name=$(printf '%s_%s_%s' "$1" "$2" "$3" | tr '|:/' '+-_')
    if "$bin" "$1" "$2" "$steps" "$3" --quiet > "$logs/$name.txt" 2>&1; then
      grep '^mmer:' "$logs/$name.txt" >> "$raw"
      grep '^mmer:' "$logs/$name.txt"
    else
      echo "FAILED: $1 $2 seed $3 (see $logs/$name.txt)"
    fi
  }
  n=0
  while IFS="$(printf '\t')" read -r task core seed; do
    run_cell "$task" "$core" "$seed" &
    n=$((n + 1))
    if [ $((n % jobs)) -eq 0 ]; then wait; fi
  done < "$list"
  wait
  elapsed="$(($(date +%s) - start)) s"
  produced="\`sh tools/memory_benchmark.sh -s $steps -n $seeds -c \"$cores\" -j $jobs\`"
fi


# The table: one row per task, one column per core; a cell is the mean MMER
# +- its standard deviation over seeds (population), then the mean wall time
# of one run. MemoryChain rows end with bsuite's memory_len score: the
# fraction of the 23 settings learned, per seed, mean +- std.
{
  echo "# memrl memory benchmark"
  echo
  echo "PPO (examples/memory_benchmark.c: 16 envs x 128-step rollouts, 64-unit tanh encoder, the core, shared"
  echo "actor-critic torso, learning rate 1e-3 annealed) with each core, $steps env steps per cell, seeds 1..$seeds."
  echo "POPGym (Morad et al. 2023) trains 15M env steps per cell with memory size 256; this budget is smaller."
  echo "Cells: MMER (POPGym's max-mean episodic return normalised to [0, 1] by the task's return range) mean +- std"
  echo "over seeds, and the wall time of one run. Produced by: $produced"
  echo "on $(uname -sm), $(date -u +%Y-%m-%d), $elapsed in all."
  echo
  awk -v tasks="$tasks" -v cores="$cores" '
    {
      env = ""; core = ""; mmer = ""; sec = ""; learned = ""; seed = ""
      for (i = 2; i <= NF; i++) {
        k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v)
        if (k == "env") env = v; else if (k == "core") core = v; else if (k == "mmer") mmer = v
        else if (k == "seconds") sec = v; else if (k == "learned") learned = v; else if (k == "seed") seed = v
      }
      key = env SUBSEP core
      cnt[key]++; sum[key] += mmer; sq[key] += mmer * mmer; secs[key] += sec
      if (learned != "") { lk = core SUBSEP seed; lsum[lk] += learned; lset[lk] = 1; chains[core]++; nchain++ }
    }
    END {
      nt = split(tasks, t, ";"); nc = split(cores, c, " ")
      printf "| task |"; for (j = 1; j <= nc; j++) printf " %s |", c[j]; printf "\n"
      printf "|---|"; for (j = 1; j <= nc; j++) printf "---|"; printf "\n"
      for (i = 1; i <= nt; i++) {
        id = t[i]; gsub(/\|/, "\\|", id) # wrappers: escaped for markdown
        printf "| %s |", id
        for (j = 1; j <= nc; j++) {
          key = t[i] SUBSEP c[j]
          if (cnt[key] == 0) { printf " missing |"; continue }
          m = sum[key] / cnt[key]; var = sq[key] / cnt[key] - m * m; if (var < 0) var = 0
          printf " %.3f +- %.3f (%.1f s) |", m, sqrt(var), secs[key] / cnt[key]
        }
        printf "\n"
      }
      if (nchain > 0) {
        printf "\nbsuite memory_len score (fraction of the %d MemoryChain settings learned by bsuite'"'"'s rule, accuracy over\nthe run above 62.5%%; mean +- std over seeds):\n\n", 23
        printf "| score |"; for (j = 1; j <= nc; j++) printf " %s |", c[j]; printf "\n"
        printf "|---|"; for (j = 1; j <= nc; j++) printf "---|"; printf "\n"
        printf "| memory_len |"
        for (j = 1; j <= nc; j++) {
          n = 0; s = 0; s2 = 0; settings = 0
          for (lk in lset) { split(lk, p, SUBSEP); if (p[1] != c[j]) continue; n++ }
          settings = n > 0 ? chains[c[j]] / n : 0
          for (lk in lset) {
            split(lk, p, SUBSEP); if (p[1] != c[j]) continue
            f = lsum[lk] / settings; s += f; s2 += f * f
          }
          if (n == 0) { printf " missing |"; continue }
          m = s / n; var = s2 / n - m * m; if (var < 0) var = 0
          printf " %.3f +- %.3f (%d settings) |", m, sqrt(var), settings
        }
        printf "\n"
      }
    }' "$raw"
} > "$out"
echo "table: $out ($elapsed)"
