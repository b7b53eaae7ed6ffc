#!/usr/bin/env bash
# The layering of ingest/ (README, "Layout"), checked on every #include so that a lower layer
# that starts calling upward fails the build's tests instead of being noticed in review:
# codecs are pure, sinks never see sessions, the network layer knows no protocol or pipeline.
# Usage: check_layers.sh INGEST_DIR
set -euo pipefail
root=${1:?usage: check_layers.sh INGEST_DIR}
cd "$root"
bad=0

# deny FILE_GLOB_REGEX INCLUDE_REGEX WHY: no file matching the first regex may include a header
# matching the second.
deny() {
  local files=$1 incs=$2 why=$3 f line
  while IFS= read -r f; do
    while IFS= read -r line; do
      printf 'layering: %s includes %s: %s\n' "$f" "${line#*#include }" "$why" >&2
      bad=1
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$f" |
      grep -E "\"($incs)" || true)
  done < <(find . -name '*.[ch]' | sed 's|^\./||' | grep -E "^($files)" || true)
}

codecs='protobuf/(frame|pb_codec)\.|jt808/jt808_(frame|header|internal|location|msg|reasm|safety|text)\.|jt809/jt809_(frame|header|internal|msg|text|vehicle|slave_sm)\.|attach/attach_codec\.'
above_base='registry/|protobuf/|jt808/|jt809/|attach/|net/|http/|sinks/|rules/|pipeline/|cli/|load/|web/'

deny 'base/' "$above_base" 'base depends on nothing above it'
deny "$codecs" 'registry/|net/|sinks/|rules/|pipeline/|cli/|load/|protobuf/pb_session|jt808/jt808_session|jt809/jt809_(session|link)|attach/attach_server' \
  'codecs are pure: bytes in, records out'
deny 'rules/' 'net/|sinks/|pipeline/|protobuf/|jt808/|jt809/|cli/|load/' 'rules are pure computation'
deny 'sinks/' 'net/|protobuf/|jt808/|jt809/|attach/|pipeline/|cli/|load/' 'sinks never see sessions or protocols'
deny 'net/' 'protobuf/|jt808/|jt809/|pipeline/|sinks/|rules/|cli/|load/' \
  'the network layer knows no protocol, sink or pipeline (callbacks are wired from above)'
deny 'pipeline/' 'net/server|protobuf/|jt808/|jt809/|cli/|load/' \
  'the pipeline knows no protocol or server (backpressure is a callback)'
deny 'http/' 'registry/|protobuf/|jt808/|jt809/|net/|sinks/|rules/|pipeline/|cli/|load/' \
  'the HTTP layer is a library on base/ alone (the front ends route into it)'
deny 'registry/|protobuf/|jt808/|jt809/|attach/|net/|sinks/|rules/|pipeline/' 'http/|cli/|load/|web/' \
  'the daemon library never depends on its front ends'
deny 'http/|load/' 'web/' 'nothing below the web API includes it'
# web/ is the API of `haulwatch web`: on base/, http/ and sinks/ (and the registry's types);
# never on the daemon's sessions, codecs, rules or pipeline, nor on the command line.
deny 'web/' 'protobuf/|jt808/|jt809/|attach/|net/|rules/|pipeline/|cli/|load/|registry/(auth|refusals|registry_cache|terminal|zone_index)\.' \
  'the web API reads PostgreSQL and Redis, never the daemon internals'
deny 'http/' 'web/' 'the HTTP layer knows nothing of what is mounted on it'

if [ "$bad" -ne 0 ]; then
  echo "layering: FAILED (see README, Layout)" >&2
  exit 1
fi
echo "layering: ok ($(find . -name '*.[ch]' | wc -l) files)"
