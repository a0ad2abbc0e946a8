# Sourced by the shell bootstrap; the handler "function.handler" names this file and function.
# The event arrives as $1; whatever is printed on stdout is the response.
handler () {
  EVENT_DATA=$1
  echo "shell-echo got: $EVENT_DATA" >&2
  echo "$EVENT_DATA"
}
