#!/bin/sh
# Creates VCCR's namespace and registers its search attributes, once the Temporal server answers. Run by
# the temporal-create-namespace service of docker-compose.temporal.yml; idempotent (an existing namespace
# is left as it is, existing search attributes of the same type are skipped by the server, one of a
# different type is an error).
#
#   NAMESPACE               namespace to create (default: default)
#   NAMESPACE_RETENTION     retention of closed workflows for a new namespace (default: 72h)
#   VCCR_SEARCH_ATTRIBUTES  space-separated Name=Type pairs
#   TEMPORAL_ADDRESS        frontend host:port (default: temporal:7233)
set -eu

namespace=${NAMESPACE:-default}
retention=${NAMESPACE_RETENTION:-72h}
address=${TEMPORAL_ADDRESS:-temporal:7233}
attributes=${VCCR_SEARCH_ATTRIBUTES:-}
max_attempts=${TEMPORAL_SETUP_MAX_ATTEMPTS:-60}
sleep_seconds=${TEMPORAL_SETUP_SLEEP_SECONDS:-2}

# retry <what> <command...>: runs the command until it succeeds, at most $max_attempts times.
retry() {
  what=$1
  shift
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge "$max_attempts" ]; then
      echo "giving up: $what failed $attempt times" >&2
      return 1
    fi
    echo "$what: not yet ($attempt/$max_attempts)"
    attempt=$((attempt + 1))
    sleep "$sleep_seconds"
  done
}

namespace_exists() {
  temporal operator namespace describe --address "$address" --namespace "$namespace" >/dev/null 2>&1
}

ensure_namespace() {
  namespace_exists && return 0
  temporal operator namespace create --address "$address" --namespace "$namespace" --retention "$retention" \
    || namespace_exists # created concurrently (or by an earlier, interrupted run)
}

# The frontend port opens before the server can serve requests; wait for its health check.
retry "cluster health at $address" temporal operator cluster health --address "$address"
retry "namespace $namespace" ensure_namespace
echo "namespace $namespace is registered"

if [ -n "$attributes" ]; then
  set --
  for pair in $attributes; do
    case $pair in
      ?*=?*) set -- "$@" --name "${pair%%=*}" --type "${pair#*=}" ;;
      *) echo "bad entry in VCCR_SEARCH_ATTRIBUTES: '$pair' (want Name=Type)" >&2; exit 1 ;;
    esac
  done
  # A freshly created namespace may take a moment to be visible to the operator API: retry.
  retry "search attributes on $namespace" \
    temporal operator search-attribute create --address "$address" --namespace "$namespace" "$@"
  listing=$(temporal operator search-attribute list --address "$address" --namespace "$namespace")
  for pair in $attributes; do
    name=${pair%%=*}
    if ! printf '%s\n' "$listing" | grep -q -w -- "$name"; then
      echo "search attribute $name is missing after creation:" >&2
      printf '%s\n' "$listing" >&2
      exit 1
    fi
  done
  echo "search attributes on $namespace: $attributes"
fi
