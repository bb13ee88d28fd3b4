#!/usr/bin/env bash
# The order-book example (examples/orders/README.md) as a user runs it, so it
# cannot rot: every command in the README's ```sh blocks is run, in order,
# against configs/orders.toml (mkdir/cp/cd with /tmp/orders moved into the
# scratch dir, markd with loopback-only options added, kill %1 stopping it),
# and the output of each mk command is checked against the table below. A mk
# command in the README that the table does not have (or the reverse) fails
# the test: change both together.
# Loopback only, private discovery ports, a private MKTL_HOME (mk finds the
# store in the client cache markd writes there).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_orders_example
need_source
private_discovery_ports
readme=$SRC/examples/orders/README.md
markd_extra=(--bind 127.0.0.1 --hostname 127.0.0.1 --broadcast 127.255.255.255)

# ---- what each mk command must do -------------------------------------------------
# "mk ..." (exactly as in the README), then "rc N", then "~ REGEX" lines: each
# must match a line of its stdout or stderr (grep -E).
cat >"$work/expected" <<'EOF'
mk list book
rc 0
~ ^book\.book_new +record +rw$
~ ^book\.book_accept +record +rw$
~ ^book\.book_fill +record +rw$
~ ^book\.book_cancel +record +rw$
mk describe book.book_new
rc 0
~ "type": "record"
~ "description": "Enter an order; the reply carries its id"
~ "trader": \{
~ "limit_price": \{
mk set book.book_new '{"trader": "ann", "symbol": "AAPL", "side": "buy", "qty": 100, "limit_price": 187.5}'
rc 0
~ ^book\.book_new: ref [0-9]{8} [0-9:.]+ seq 1 rows \[\{"created":"[0-9-]+ [0-9:]+","filled_qty":0,"id":1,"limit_price":187\.5,"qty":100,"side":"buy","state":"open","symbol":"AAPL","trader":"ann"\}\]$
mk set book.book_new --file new_orders.json
rc 0
~ ^book\.book_new row 1: ref .* seq 2 rows \[\{.*"id":2,.*"symbol":"MSFT","trader":"bob"\}\]$
~ ^book\.book_new row 2: ref .* seq 3 rows \[\{.*"id":3,"limit_price":null,.*"symbol":"IBM","trader":"ann"\}\]$
~ ^book\.book_new row 3: ref .* seq 4 rows \[\{.*"id":4,"limit_price":140\.0,.*"symbol":"GOOG","trader":"cy"\}\]$
mk set book.book_accept '{"id": 1}'
rc 0
~ ^book\.book_accept: ref .* seq 5 rows \[\{.*"id":1,.*"state":"accepted","symbol":"AAPL".*\}\]$
mk set book.book_fill --file fills.csv
rc 0
~ ^book\.book_fill row 1: ref .* seq 6 rows \[\{.*"filled_qty":100,"id":1,.*"state":"filled".*\},\{"fill_id":1,"order_id":1,"price":187\.42,"qty":100,"state":"filled","venue":"XNAS"\}\]$
~ ^book\.book_fill row 2: ref .* seq 7 rows \[\{.*"filled_qty":50,"id":2,.*\},\{"fill_id":2,"order_id":2,"price":410\.2,"qty":50,"state":"filled","venue":"internal"\}\]$
mk set book.book_cancel '{"id": 3}'
rc 0
~ ^book\.book_cancel: ref .* seq 8 rows \[\{.*"id":3,.*"state":"cancelled","symbol":"IBM".*\}\]$
mk get book.book_fill
rc 0
~ ^book_fill: \{"ref":"[0-9]{8} [0-9:.]+","rows":\[\{.*"id":2,.*\},\{"fill_id":2,.*\}\],"seq":7,"time":[0-9.]+\}$
mk set book.book_new '{"trader": "bob", "symbol": "NVDA", "side": "hold", "qty": 1}'
rc 1
~ ^mk: book\.book_new: ValueError: book_new: insert of orders: CHECK constraint failed: side IN \('buy', 'sell'\)$
mk set book.book_new '{"trader": "bob", "symbol": "NVDA", "side": "buy", "qtty": 1}'
rc 1
~ ^mk: book\.book_new: ValueError: unknown field 'qtty' for book_new; did you mean 'qty'\? \(fields: limit_price, qty, side, symbol, trader\)$
mk set book.book_cancel '{"id": 99}'
rc 1
~ ^mk: book\.book_cancel: ValueError: book_cancel: the update of orders matched no row \(id = 99\)$
mk set book.book_new '{"trader": "dee", "symbol": "TSLA", "side": "buy", "qty": 5}' --ref dee-0001
rc 0
~ ^book\.book_new: ref dee-0001 seq 9 rows \[\{.*"id":5,.*"symbol":"TSLA","trader":"dee"\}\]$
mk set book.book_new '{"trader": "dee", "symbol": "TSLA", "side": "buy", "qty": 5}' --ref dee-0001
rc 0
~ ^book\.book_new: ref dee-0001 seq 9 \(already committed\) rows \[\{.*"id":5,.*"symbol":"TSLA","trader":"dee"\}\]$
mk get book.book_new --ref dee-0001
rc 0
~ ^book\.book_new: committed ref dee-0001 seq 9 rows \[\{.*"id":5,.*"symbol":"TSLA","trader":"dee"\}\]$
mk get book.book_new --ref dee-0001
rc 0
~ ^book\.book_new: committed ref dee-0001 seq 9 rows \[\{.*"id":5,.*"symbol":"TSLA","trader":"dee"\}\]$
mk get book.book_fill
rc 0
~ ^book_fill: \{"ref":"[0-9]{8} [0-9:.]+","rows":\[\{.*"id":2,.*\},\{"fill_id":2,.*\}\],"seq":7,"time":[0-9.]+\}$
EOF

# ---- the README's commands ----------------------------------------------------------
# Lines of its ```sh blocks, in order.
mapfile -t commands < <(awk '/^```sh$/ {on = 1; next} /^```/ {on = 0} on && NF' "$readme")
((${#commands[@]} > 10)) || die "no commands found in $readme"

mk_in_readme=()
for c in "${commands[@]}"; do [[ $c == "mk "* ]] && mk_in_readme+=("$c"); done
mapfile -t mk_in_table < <(grep '^mk ' "$work/expected")
if [[ $(printf '%s\n' "${mk_in_readme[@]}") == $(printf '%s\n' "${mk_in_table[@]}") ]]; then
  pass "the README's ${#mk_in_readme[@]} mk commands are the ones this test checks"
else
  fail "the README's mk commands and this test's table differ:
$(diff <(printf '%s\n' "${mk_in_table[@]}") <(printf '%s\n' "${mk_in_readme[@]}") || true)"
fi

# Every example file is copied by the README and read by the config it uses.
for f in "$SRC"/examples/orders/*; do
  name=${f##*/}
  [[ $name == README.md ]] && continue
  expect_in "the README copies $name" "$(printf '%s\n' "${commands[@]}")" "examples/orders/$name"
done

mk() { timeout 30 "$MKTL_BIN/mk" "$@"; }

# check N COMMAND: the table's expectations for the Nth mk command.
check() {
  local n=$1 command=$2 want_rc="" regex
  local -a regexes=()
  # The lines after the Nth "mk " line, up to the next one.
  while IFS= read -r line; do
    case $line in
      "rc "*) want_rc=${line#rc } ;;
      "~ "*) regexes+=("${line#\~ }") ;;
    esac
  done < <(awk -v n="$n" '/^mk / {i++; next} i == n' "$work/expected")
  if [[ $rc != "$want_rc" ]]; then
    fail "$command: exit $rc, expected $want_rc; stdout: $out; stderr: $err"
    return
  fi
  for regex in "${regexes[@]}"; do
    # A here-string, not a pipe: grep -q stops reading at its match, and under
    # pipefail the writer's SIGPIPE would then fail the check.
    if ! grep -Eq -- "$regex" <<<"$out"$'\n'"$err"; then
      fail "$command: no line matches /$regex/; stdout: $out; stderr: $err"
      return
    fi
  done
  pass "$command"
}

scratch=$work/orders
n=0
markd_pid=""
for command in "${commands[@]}"; do
  case $command in
    "mkdir "* | "cp "* | "cd "*)
      # /tmp/orders in the README is the scratch dir here; paths are from the source tree.
      line=${command//\/tmp\/orders/$scratch}
      [[ $command == "cd "* ]] || line="(cd \"\$SRC\" && $line)"
      eval "$line" || fail "$command failed"
      ;;
    "markd "*)
      [[ $PWD == "$scratch" ]] || fail "markd is started outside the scratch dir ($PWD)"
      line=${command#markd }
      eval "args=(${line%&})"  # in the background: start does that
      expect_eq "the README serves configs/orders.toml" "$(cmp "$SRC/configs/orders.toml" "$scratch/orders.toml" && echo same)" same
      start --first "markd$n" '^markd: book book1 ready rep=[0-9]+ pub=[0-9]+$' "$MKTL_BIN/markd" "${markd_extra[@]}" "${args[@]}"
      exec {fd}<&-
      markd_pid=$pid
      [[ -f $scratch/orders.db ]] && pass "the database is orders.db beside orders.toml" \
        || fail "no orders.db beside orders.toml: $(find "$work" -name 'orders.db*')"
      ;;
    "kill %1")
      [[ -n $markd_pid ]] || die "kill %1 with no markd running"
      stop "$markd_pid"
      expect_rc "markd stops on SIGTERM" 0
      markd_pid=""
      ;;
    "mk "*)
      n=$((n + 1))
      rc=0
      eval "$command" >"$work/mk$n.out" 2>"$work/mk$n.err" || rc=$?
      out=$(cat "$work/mk$n.out")
      err=$(cat "$work/mk$n.err")
      check "$n" "$command"
      ;;
    *)
      fail "README command this test does not know how to run: $command"
      ;;
  esac
done
((n > 0)) || fail "no mk command ran"

finish orders_example
