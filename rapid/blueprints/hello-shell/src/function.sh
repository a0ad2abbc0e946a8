# The handler: the event (JSON) on stdin, the answer (JSON) on stdout; logs go to stderr.
handler() {
  local event name
  event="$(cat)"
  name="$(printf '%s' "$event" | sed -n 's/.*"name"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')"
  echo "greeting ${name:-world}" >&2
  printf '{"message": "Hello, %s!"}' "${name:-world}"
}
