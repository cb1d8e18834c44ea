#!/bin/bash
# 42-relay-crash: kill -9 durability. 500 messages are sent to the relay by
# 4 concurrent clients while the relay's whole process group (master,
# receiver, sessions, scheduler, delivery workers) is killed with SIGKILL
# at random moments and restarted. Every message that got a 250 must reach
# the smarthost; duplicates (messages in flight at a kill) are counted and
# bounded; nothing ends in corrupt/. Then the same with smtp-source load.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
SH=27321
RP=27320
N=${RL_CRASH_N:-500}
KILLS=${RL_CRASH_KILLS:-6}
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
MD=$T/sh/mail/user
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"max_connections=4" "batch_size=50"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }

cat >"$T/client.py" <<'PY'
import smtplib, sys, threading, time
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
todo = list(range(n))
acked = open(out, "w")
deadline = time.time() + 150
def worker():
    conn = None
    while time.time() < deadline:
        with lock:
            if not todo:
                break
            i = todo.pop(0)
        msg = ("From: <sender@example.test>\r\nTo: <user@example.test>\r\n"
               "Subject: crash-%d\r\n\r\nmessage %d\r\n" % (i, i)) + ("x" * 200 + "\r\n") * 5
        try:
            if conn is None:
                conn = smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.1", 0))
                conn.ehlo("client.example.test")
            conn.sendmail("sender@example.test", ["user@example.test"], msg)
            with lock:
                acked.write("%d\n" % i)
                acked.flush()
        except Exception:
            with lock:
                todo.append(i)      # not acknowledged: send it again
            try:
                if conn is not None:
                    conn.close()
            except Exception:
                pass
            conn = None
            time.sleep(0.05)
    if conn is not None:
        try:
            conn.quit()
        except Exception:
            pass
ts = [threading.Thread(target=worker) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
acked.close()
PY

python3 "$T/client.py" $RP "$N" "$T/acked" &
CLIENT=$!
tw_cleanup_add "kill $CLIENT 2>/dev/null"
k=0
# the kills go on after the client is done: deliveries are then in flight
while [ $k -lt "$KILLS" ]; do
	sleep "0.$(( (RANDOM % 9) + 3 ))"
	rl_kill9 relay
	k=$((k + 1))
	sleep 0.2
	rl_start "$T/relay.conf" || { tw_fail "restart after kill -9 #$k"; break; }
done
wait $CLIENT
acked=$(sort -un "$T/acked" | wc -l | tr -d ' ')
if [ "$acked" -eq "$N" ]; then
	tw_ok "all $N messages acknowledged with 250 ($k kills)"
else
	tw_fail "all $N messages acknowledged" "only $acked"
fi

# every 250'd message reaches the smarthost (bounded wait)
i=0
while [ $i -lt 120 ]; do
	got=$(grep -h '^Subject: crash-' "$MD"/new/* 2>/dev/null | sort -u | wc -l | tr -d ' ')
	[ "$got" -ge "$acked" ] && break
	i=$((i + 1))
	sleep 1
done
grep -h '^Subject: crash-' "$MD"/new/* 2>/dev/null | sed 's/^Subject: crash-//' | sort -n >"$T/delivered"
missing=$(sort -un "$T/acked" | comm -23 - <(sort -u "$T/delivered" | sort -n) | wc -l | tr -d ' ')
if [ "$missing" -eq 0 ]; then
	tw_ok "every acknowledged message delivered after kill -9 ($acked)"
else
	tw_fail "every acknowledged message delivered after kill -9" "$missing missing"
	sort -un "$T/acked" | comm -23 - <(sort -u "$T/delivered" | sort -n) | head -n 5 | sed 's/^/    | missing crash-/'
	tail -n 20 "$T/relay.log" | sed 's/^/    | /'
fi
dups=$(uniq -d "$T/delivered" | wc -l | tr -d ' ')
total=$(wc -l <"$T/delivered" | tr -d ' ')
echo "# delivered $total copies of $acked messages: $dups duplicated (in flight at $k kills)"
if [ "$dups" -le $((k * 8)) ]; then
	tw_ok "duplicates bounded ($dups <= $((k * 8)))"
else
	tw_fail "duplicates bounded" "$dups duplicates after $k kills"
fi
n=$(ls "$T/spool/corrupt" | wc -l | tr -d ' ')
[ "$n" -eq 0 ] && tw_ok "nothing corrupt" || tw_fail "nothing corrupt" "$n files in corrupt/"
i=0
while [ $i -lt 50 ] && [ "$(rl_q "$T/relay.conf" list | tail -n 1)" != "0 messages" ]; do
	i=$((i + 1)); sleep 0.2
done
tw_check "queue drained" sh -c "'$TW_RELAY' -c '$T/relay.conf' queue list | tail -n 1 | grep -qx '0 messages'"

# a torn queue file goes to corrupt/ and is not delivered; an incoming/
# leftover is dropped at start
rl_stop relay
id=0000000A00000001
printf 'TWQ1\nid %s\ntime 1\nfrom a@example.test\nrcpt user@example.test\ndata\nSubject: torn\r\n\r\nhalf' "$id" >"$T/spool/queue/$id"
chown tailwart "$T/spool/queue/$id"
printf 'junk' >"$T/spool/incoming/0000000A00000002"
rl_start "$T/relay.conf" || tw_fail "restart"
if rl_log_wait relay "$id corrupt queue file \(missing end record" 15 && [ -f "$T/spool/corrupt/$id" ]; then
	tw_ok "torn file moved to corrupt/"
else
	tw_fail "torn file moved to corrupt/" "$(tail -n 3 "$T/relay.log")"
fi
[ ! -e "$T/spool/incoming/0000000A00000002" ] && tw_ok "incoming/ leftover dropped at start" ||
	tw_fail "incoming/ leftover dropped at start"

# smtp-source load with one more kill -9 in the middle: the relay's own
# count of queued messages must all be delivered
n0=$(tw_maildir_count "$MD")
smtp-source -c -l 512 -m 200 -s 4 -f sender@example.test -t user@example.test \
	127.0.0.1:$RP >"$T/source.out" 2>&1 &
SRC=$!
tw_cleanup_add "kill $SRC 2>/dev/null"
sleep 0.$(( (RANDOM % 5) + 3 ))
rl_kill9 relay
sleep 0.2
rl_start "$T/relay.conf" || tw_fail "restart after smtp-source kill"
i=0
while kill -0 $SRC 2>/dev/null && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done
kill $SRC 2>/dev/null
wait $SRC 2>/dev/null
queued=$(grep -c ' queued client=' "$T/relay.log")
# every queued message (both parts of the test) is delivered at least once
i=0
while [ $i -lt 90 ]; do
	[ "$(rl_q "$T/relay.conf" list | tail -n 1)" = "0 messages" ] && break
	i=$((i + 1)); sleep 1
done
final=$(tw_maildir_count "$MD")
echo "# relay logged $queued queued messages in total; smarthost mailbox holds $final"
if [ "$final" -ge "$queued" ] && [ "$(rl_q "$T/relay.conf" list | tail -n 1)" = "0 messages" ]; then
	tw_ok "smtp-source run with kill -9: queue drained, nothing lost"
else
	tw_fail "smtp-source run with kill -9" "queue: $(rl_q "$T/relay.conf" list | tail -n 1)"
fi
rl_stop relay
tw_summary
