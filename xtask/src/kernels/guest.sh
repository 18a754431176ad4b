#!/bin/sh
# Runs inside a guest booted by `cargo xtask kernels` (virtme-ng: the host's root file
# system, read-only, with writable overlays on /tmp, /etc, /var...). Says what the
# kernel gives, then runs the privileged suites against the binaries built on the host.
# Lines starting with "@@kernels " are read by the host; the rest is the suites' output.
#
# Usage: guest.sh MODE TCPCHURN SUITE_TIMEOUT_S TIME_SCALE TESTS_DIR NAME=EXECUTABLE[=TESTS]...
#   TESTS: comma-separated test names to run (libtest filters, --exact); all when absent.
#   MODE: "btf", or "nobtf" to hide /sys/kernel/btf (the classic-tracepoint fallback;
#   the tests give the recorder a copy of the BTF with --btf, as one from BTFHub would be).
set -u
mode=$1 tcpchurn=$2 suite_timeout=$3 scale=$4 tests_dir=$5
shift 5

say() { echo "@@kernels $*"; }
now() { date +%s.%N; }

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say kernel "$(uname -r)"
say preempt "$(uname -v | grep -o 'PREEMPT[_A-Z]*' | head -n 1)"
if [ -e /sys/kernel/btf/vmlinux ]; then btf=yes; else btf=no; fi
btf_args=""
if [ "$mode" = nobtf ] && [ "$btf" = yes ]; then
    cp /sys/kernel/btf/vmlinux /tmp/vmlinux.btf
    mount -t tmpfs -o size=64k,mode=0555 none /sys/kernel/btf
    export TCPCHURN_TEST_BTF=/tmp/vmlinux.btf
    btf_args="--btf /tmp/vmlinux.btf"
    btf=hidden
fi
say btf "$btf"
say cpus "$(nproc)"

# What the recorder attaches here: a short recording, described by replay.
# shellcheck disable=SC2086
if "$tcpchurn" record -d 1s --no-snapshot -o /tmp/attach.trace $btf_args 2>/tmp/attach.err; then
    say attach "$("$tcpchurn" replay --json /tmp/attach.trace | tr -d '\n')"
else
    say attach-failed "$(tr '\n' ' ' </tmp/attach.err)"
fi

export CI=true TCPCHURN_BIN="$tcpchurn" RUST_BACKTRACE=1 TCPCHURN_TEST_TIME_SCALE="$scale"
cd "$tests_dir" || exit 1
for suite in "$@"; do
    name=${suite%%=*}
    rest=${suite#*=}
    exe=${rest%%=*}
    tests=""
    if [ "$rest" != "$exe" ]; then tests=$(echo "${rest#*=}" | tr ',' ' '); fi
    say suite-start "$name"
    started=$(now)
    # --show-output: what a passing test measured (the ZooKeeper loop's attempt rate,
    # say) goes to the console log too, to show how much margin a run had.
    # shellcheck disable=SC2086
    if [ -n "$tests" ]; then
        timeout -k 10 "$suite_timeout" "$exe" --test-threads=1 --show-output --exact $tests
    else
        timeout -k 10 "$suite_timeout" "$exe" --test-threads=1 --show-output
    fi
    rc=$?
    say suite "$name" "$rc" "$(awk "BEGIN { print $(now) - $started }")"
done
say done
