# rapid check's test handler for shell runtimes (handler string "rapid_check.handler").
#
# The event says what to do (the protocol is in rapid's README, "For runtime authors").
# rapid check always sends compact JSON with "op" as the first key, so plain pattern
# matching reads it without jq:
#   {"op":"echo",...}             print the event unchanged
#   {"op":"fail","message":M}     fail (return 1) with M as the message
#   {"op":"sleep","ms":N}         sleep N ms, print {"slept_ms":N}
#   {"op":"log","lines":[...]}    each line to stdout, as its own log line
#   {"op":"context"}              request id, ARN, remaining time, client context, identity
#                                 and _X_AMZN_TRACE_ID, from the variables the bundled
#                                 shell runtime exports per invocation (LAMBDA_RUNTIME_*)
#   {"op":"env"}                  the handler's environment and working directory
# What the handler prints on stdout is the response; its log lines go to stderr, which the
# runtime passes to the log like stdout (so they do not end up in the response).

_rc_json() {  # a JSON string
  local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/\\t}; s=${s//$'\r'/\\r}
  printf '"%s"' "${s//$'\n'/\\n}"
}

_rc_raw() { if [ -n "${1:-}" ]; then printf '%s' "$1"; else printf 'null'; fi; }

handler() {
  local event=$1
  case "$event" in
    '{"op":"echo"'*) printf '%s' "$event" ;;
    '{"op":"fail"'*)
      local message="rapid check: deliberate failure"
      [[ $event =~ \"message\":\"([^\"]*)\" ]] && message=${BASH_REMATCH[1]}
      printf '%s' "$message"
      return 1 ;;
    '{"op":"sleep"'*)
      [[ $event =~ \"ms\":([0-9]+) ]]
      local ms=${BASH_REMATCH[1]}
      sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
      printf '{"slept_ms":%s}' "$ms" ;;
    '{"op":"log"'*)
      local lines=${event#*\"lines\":[} n=0 line
      lines=${lines%]*}
      while [[ $lines =~ ^\"([^\"]*)\",?(.*)$ ]]; do
        line=${BASH_REMATCH[1]} lines=${BASH_REMATCH[2]}
        printf '%s\n' "$line" >&2
        n=$((n + 1))
      done
      printf '{"logged":%d}' "$n" ;;
    '{"op":"context"'*)
      local now; now=$(date +%s%3N)
      printf '{"request_id":%s,"function_arn":%s,"remaining_ms":%d,"client_context":%s,"identity":%s,"trace_id":%s}' \
        "$(_rc_json "${LAMBDA_RUNTIME_AWS_REQUEST_ID:-}")" "$(_rc_json "${LAMBDA_RUNTIME_INVOKED_FUNCTION_ARN:-}")" \
        $(( ${LAMBDA_RUNTIME_DEADLINE_MS:-0} - now )) "$(_rc_raw "${LAMBDA_RUNTIME_CLIENT_CONTEXT:-}")" \
        "$(_rc_raw "${LAMBDA_RUNTIME_COGNITO_IDENTITY:-}")" \
        "$( [ -n "${_X_AMZN_TRACE_ID:-}" ] && _rc_json "$_X_AMZN_TRACE_ID" || printf null)" ;;
    '{"op":"env"'*)
      local first=1 name
      printf '{"cwd":%s,"handler_file":%s,"env":{' "$(_rc_json "$PWD")" "$(_rc_json "$(realpath "${BASH_SOURCE[0]}")")"
      while IFS= read -r name; do
        [ $first = 1 ] || printf ','
        first=0
        printf '%s:%s' "$(_rc_json "$name")" "$(_rc_json "${!name}")"
      done < <(compgen -e)
      printf '}}' ;;
    *) printf 'rapid check: unknown op'; return 1 ;;
  esac
}
