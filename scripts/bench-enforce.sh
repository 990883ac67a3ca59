#!/usr/bin/env bash
# bench-enforce.sh — overhead of governed execution: per intercepted syscall
# (10 000 write-opens, governed vs not) and a shell workload (untar + make +
# run a tiny C project), under `probelogits run` with an allow-everything
# policy (deterministic rules decide; the model is loaded but never asked).
# Usage: scripts/bench-enforce.sh [BUILD_DIR]   (run as root)
set -euo pipefail
BUILD=${1:-build}
PL=$(realpath "$BUILD/probelogits")
MODEL=$(realpath ../shared/fixtures/models/tiny-qwen2-q8_0.gguf)
W=$(mktemp -d /tmp/pl_bench_XXXXXX)
chmod 777 "$W"
trap 'rm -rf "$W" /dev/shm/pl_bench_audit_$$.jsonl' EXIT
AUDIT=/dev/shm/pl_bench_audit_$$.jsonl
cat > "$W/allow.yaml" <<'Y'
version: 1
question: "Is this action dangerous? Answer Yes or No."
labels: [Yes, No]
classes:
  exec: {}
  file_write: {}
  file_delete: {}
  network: {}
  rename: {}
  chmod: {}
rules:
  - {decision: allow, class: exec, match: '.', reason: bench}
  - {decision: allow, class: file_write, match: '.', reason: bench}
  - {decision: allow, class: file_delete, match: '.', reason: bench}
  - {decision: allow, class: network, match: '.', reason: bench}
  - {decision: allow, class: rename, match: '.', reason: bench}
  - {decision: allow, class: chmod, match: '.', reason: bench}
Y
cat > "$W/openbench.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 10000; i++) {
        int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
        if (fd < 0) return 1;
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / 10000);
    return argc > 2;
}
C
gcc -O2 -o "$W/openbench" "$W/openbench.c"
mkdir -p "$W/proj/src"
cat > "$W/proj/src/main.c" <<'C'
#include <stdio.h>
int add(int a, int b);
int main(void) { printf("sum %d\n", add(2, 3)); return 0; }
C
cat > "$W/proj/src/add.c" <<'C'
int add(int a, int b) { return a + b; }
C
printf 'app: main.o add.o\n\tgcc -o app main.o add.o\n%%.o: %%.c\n\tgcc -O1 -c $< -o $@\n' > "$W/proj/src/Makefile"
tar -C "$W/proj" -cf "$W/proj.tar" src
rm -rf "$W/proj"
cat > "$W/work.sh" <<'S'
set -e
cd "$1"; rm -rf src; tar xf proj.tar; cd src; make -s app >/dev/null; ./app >/dev/null; cd ..; rm -rf src
S
chown -R 65534:65534 "$W"
gov() { "$PL" run -m "$MODEL" --policy "$W/allow.yaml" --audit "$AUDIT" --workspace "$W" -- "$@"; }
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(for i in 1 2 3 4 5; do "$W/openbench" "$W/f.txt"; done | med)
govd=$(for i in 1 2 3 4 5; do gov "$W/openbench" "$W/g.txt"; done | med)
echo "write-open+close, ungoverned: ${base} us/op; governed: ${govd} us/op; per intercepted syscall: +$(awk -v a="$govd" -v b="$base" 'BEGIN{printf "%.1f", a-b}') us"
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN{printf "%.3f", e-s}'; }
wb=$(for i in 1 2 3; do t setpriv --reuid=65534 --regid=65534 --clear-groups bash "$W/work.sh" "$W"; echo; done | med)
wg=$(for i in 1 2 3; do t gov bash "$W/work.sh" "$W"; echo; done | med)
echo "untar+make+run workload, ungoverned: ${wb} s; governed: ${wg} s; slowdown x$(awk -v a="$wg" -v b="$wb" 'BEGIN{printf "%.2f", a/b}')"
echo "decisions logged: $(wc -l < "$AUDIT")"
