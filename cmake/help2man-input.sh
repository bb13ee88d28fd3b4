#!/bin/sh
# help2man-input.sh PROGRAM --help: PROGRAM's --help as help2man reads it.
# Our help text uses lower-case headings ("usage:", "options:") where
# help2man looks for GNU-style ones ("Usage:", "Options:"); only the headings
# are rewritten, so the man page says exactly what --help says.
#   usage: X ... / 7-space continuation  ->  Usage: X ... / "  or: X ..."
#   options: / environment: / example(s):  ->  Options: / Environment: / Examples:
#   any other heading ("Exit status:")   ->  *Exit status* (a section of its own)
#   example lines                        ->  "  $ mk get ..." (one a line)
set -eu
help=$("$@")  # a failing program fails the man page, not a truncated page
printf '%s\n' "$help" | awk '
  NR == 1 && sub(/^usage:/, "Usage:") { usage = 1; print; next }
  usage && /^       [^ ]/ { sub(/^ +/, "  or: "); print; next }
  { usage = 0 }
  # A sentence ending in ":" over an indented line would become a sub-heading.
  colon && /^ / { print "" }
  { colon = 0 }
  /^options:$/ { print "Options:"; examples = 0; next }
  /^environment:$/ { print "Environment:"; examples = 0; next }
  /^examples?:$/ { print "Examples:"; examples = 1; next }
  /^[A-Za-z][A-Za-z ]*:$/ { sub(/:$/, ""); print "*" toupper(substr($0, 1, 1)) substr($0, 2) "*"; examples = 0; next }
  # Example command lines, one a line in constant width.
  examples && sub(/^  +/, "  $ ") { print; next }
  /^[^ ].*:$/ { colon = 1 }
  { print }
'
