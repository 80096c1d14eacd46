#!/bin/sh
# One nightly backup of NATS JetStream (keys, tenants, usage streams) onto the backup volume, then
# its outcome to the Pushgateway, where Prometheus reads it (KgentsBackupMissing, KgentsBackupFailed).
#
#   success: the metrics file `kgents backup` wrote (kgents_backup_last_success_timestamp_seconds,
#            kgents_backup_last_size_bytes, kgents_backup_last_duration_seconds) + exit code 0
#   failure: kgents_backup_last_failure_timestamp_seconds and kgents_backup_last_exit_code
#
# `kgents backup` exits 0 on success, 1 when the backup failed (no archive is left: it writes under
# a .partial name and renames at the end), 2 on bad usage. Each run is one archive directory
# $BACKUP_DIR/kgents-backup-<UTC time>; --retain deletes only this tool's archives older than that.
#
# Pushed with POST, which replaces only the metrics it names, so a failure keeps the time of the
# last success and a success keeps the time of the last failure. Exits with the backup's status,
# so the Job (and `kubectl get jobs`) shows a failed run as failed too.
set -u
: "${BACKUP_DIR:?BACKUP_DIR is not set}"
: "${BACKUP_RETAIN:?BACKUP_RETAIN is not set}"
: "${METRICS_FILE:?METRICS_FILE is not set}"
: "${PUSHGATEWAY_URL:?PUSHGATEWAY_URL is not set}"
KGENTS_BIN="${KGENTS_BIN:-node /app/dist/src/cli/main.js}"

# A file of this run's own, gone when it ends: two runs on one host (a test suite, a manual run beside
# the CronJob's) must not share it, and none may be left behind.
push_file=$(mktemp "${TMPDIR:-/tmp}/kgents-backup-push.XXXXXX") || { echo "run-backup: cannot create a temporary file in ${TMPDIR:-/tmp}" >&2; exit 73; }
trap 'rm -f "$push_file"' EXIT
rm -f "$METRICS_FILE"
mkdir -p "$(dirname "$METRICS_FILE")"

# shellcheck disable=SC2086 # KGENTS_BIN is a command line
$KGENTS_BIN backup --to "$BACKUP_DIR" --retain "$BACKUP_RETAIN" --metrics-file "$METRICS_FILE"
rc=$?

if [ "$rc" -eq 0 ] && [ ! -s "$METRICS_FILE" ]; then
  echo "run-backup: the backup reported success but wrote no metrics to $METRICS_FILE; counting it as failed" >&2
  rc=70
fi

if [ "$rc" -eq 0 ]; then
  cat "$METRICS_FILE" > "$push_file"
  printf '# TYPE kgents_backup_last_exit_code gauge\nkgents_backup_last_exit_code 0\n' >> "$push_file"
else
  printf '# TYPE kgents_backup_last_failure_timestamp_seconds gauge\nkgents_backup_last_failure_timestamp_seconds %s\n# TYPE kgents_backup_last_exit_code gauge\nkgents_backup_last_exit_code %s\n' \
    "$(date +%s)" "$rc" > "$push_file"
fi

if ! node --input-type=module -e '
import { readFileSync } from "node:fs";
const [url, file] = process.argv.slice(1);
const res = await fetch(url, { method: "POST", body: readFileSync(file), headers: { "content-type": "text/plain; version=0.0.4" }, signal: AbortSignal.timeout(10000) });
if (!res.ok) { console.error(`run-backup: the Pushgateway answered ${res.status}: ${await res.text()}`); process.exit(1); }
' "$PUSHGATEWAY_URL" "$push_file"; then
  echo "run-backup: could not push the backup metrics to $PUSHGATEWAY_URL (the backup itself exited $rc)" >&2
  [ "$rc" -eq 0 ] && rc=75
fi

exit "$rc"
