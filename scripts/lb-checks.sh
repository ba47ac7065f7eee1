# scripts/lb-checks.sh: what a user does through a TCP balancer in front
# of two sshpipe nodes (README, "Several nodes"), with the real ssh client.
# Sourced, not run: scripts/check-haproxy (binaries on the host) and
# scripts/docker-test (deploy/compose.yaml) differ only in how the nodes
# are started, counted and killed, so they share these checks.
#
# The sourcing script sets, before calling lb_checks:
#   lb_work         a scratch directory
#   lb_ssh_port     the balancer's SSH port on 127.0.0.1
#   lb_http_port    the balancer's HTTP port on 127.0.0.1
#   lb_domain       the nodes' --domain (hints say `ssh -p lb_ssh_port lb_domain`)
#   lb_key          the private key of user alice (in the nodes' users file)
#   lb_known_hosts  a known_hosts file naming the nodes' one host key as
#                   "sshpipe-lb" (connections pin it: StrictHostKeyChecking)
# and defines:
#   lb_say MSG...     prints one progress line
#   lb_fail MSG...    prints one FAILED line and exits 1
#   lb_sessions N     how many SSH sessions node N (1 or 2) has logged so far
#   lb_balancer_log   prints HAProxy's log so far
#   lb_kill_node1     kills node 1 with SIGKILL and waits until it is gone
#   lb_wait_for WHAT COMMAND...   polls COMMAND until it succeeds, bounded
#
# It checks: six whoami alternate between the nodes (one host key for
# both), GET /healthz through the HTTP port, a `pipe` chat with one client
# on each node, four `pub -q` jobs taken once each by four `sub`s (their
# hints naming the balancer's port), a 5 MB
# file handed over byte for byte, and with node 1 killed, four of four
# whoami served by node 2.

lb_ssh_io() { # COMMAND...: through the balancer, host key pinned
    ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=10 \
        -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$lb_known_hosts" \
        -o GlobalKnownHostsFile=/dev/null -o HostKeyAlias=sshpipe-lb \
        -i "$lb_key" -p "$lb_ssh_port" alice@127.0.0.1 "$@"
}
lb_ssh() { lb_ssh_io "$@" </dev/null; }
lb_sessions_total_is() { [ "$(($(lb_sessions 1) + $(lb_sessions 2)))" -eq "$1" ]; }

lb_checks() {
    local base1 base2 order="" out i
    lb_wait_for "whoami through the balancer" lb_ssh whoami
    lb_wait_for "HAProxy to count both nodes up" lb_nodes_up
    base1="$(lb_sessions 1)" base2="$(lb_sessions 2)"
    for i in 1 2 3 4 5 6; do
        out="$(lb_ssh whoami 2>"$lb_work/ssh.err")" \
            || lb_fail "whoami $i through the balancer: $(cat "$lb_work/ssh.err")"
        [ "$(printf '%s\n' "$out" | head -n1)" = "user: alice" ] || lb_fail "whoami $i said: $out"
        if grep -q 'WARNING' "$lb_work/ssh.err"; then lb_fail "whoami $i warned: $(cat "$lb_work/ssh.err")"; fi
        lb_wait_for "whoami $i's session line" lb_sessions_total_is "$((base1 + base2 + 1))"
        if [ "$(lb_sessions 1)" -gt "$base1" ]; then
            order+="1" base1="$(lb_sessions 1)"
        else
            order+="2" base2="$(lb_sessions 2)"
        fi
    done
    case "$order" in 121212 | 212121) ;; *) lb_fail "connections went to nodes $order, not alternating" ;; esac
    lb_say "six whoami through the balancer, one host key, nodes $order"

    local health
    health="$(curl -fsS "http://127.0.0.1:$lb_http_port/healthz")" || lb_fail "GET /healthz through the balancer"
    [ "$health" = "ok" ] || lb_fail "GET /healthz through the balancer said: $health"

    # A chat: two pipes, one on each node (leastconn alternates).
    mkfifo "$lb_work/in1" "$lb_work/in2"
    lb_ssh_io pipe chat <"$lb_work/in1" >"$lb_work/chat1" 2>/dev/null &
    local chat1=$!
    exec 3>"$lb_work/in1"
    lb_wait_for "the first pipe" lb_sessions_total_is "$((base1 + base2 + 1))"
    lb_ssh_io pipe chat <"$lb_work/in2" >"$lb_work/chat2" 2>/dev/null &
    local chat2=$!
    exec 4>"$lb_work/in2"
    lb_wait_for "both pipes listed" lb_pipes_on_chat
    [ "$(lb_sessions 1)" -gt "$base1" ] && [ "$(lb_sessions 2)" -gt "$base2" ] \
        || lb_fail "the two pipes did not land on both nodes"
    echo "hello from one" >&3
    echo "hello from two" >&4
    lb_wait_for "pipe one to hear pipe two" grep -qx "hello from two" "$lb_work/chat1"
    lb_wait_for "pipe two to hear pipe one" grep -qx "hello from one" "$lb_work/chat2"
    exec 3>&- 4>&-
    wait "$chat1" || lb_fail "pipe one exited $? at EOF"
    wait "$chat2" || lb_fail "pipe two exited $? at EOF"
    lb_say "a pipe chat across both nodes"

    # A work queue: four jobs queued, four subs through the balancer, each job once.
    # Each pub's hint names the balancer's port, not the node's (the nodes
    # run with --advertise-port).
    for i in 1 2 3 4; do
        echo "job $i" | lb_ssh_io pub -q jobs 2>"$lb_work/pub.err" || lb_fail "pub -q job $i"
        grep -qxF "  ssh -p $lb_ssh_port $lb_domain sub jobs" "$lb_work/pub.err" \
            || lb_fail "pub -q job $i hinted: $(tr '\n' ' ' <"$lb_work/pub.err")"
    done
    for i in 1 2 3 4; do
        lb_ssh sub jobs >>"$lb_work/jobs" 2>/dev/null || lb_fail "sub $i of the work queue"
    done
    [ "$(sort "$lb_work/jobs" | tr '\n' ' ')" = "job 1 job 2 job 3 job 4 " ] \
        || lb_fail "the work queue gave: $(tr '\n' ' ' <"$lb_work/jobs")"
    lb_say "four queued jobs, each taken once"

    # A file hand-off: 5 MB from a pub to a sub, whichever nodes they land on.
    head -c 5000000 /dev/urandom >"$lb_work/file"
    lb_ssh sub files >"$lb_work/file.got" 2>/dev/null &
    local sub_pid=$!
    lb_ssh_io pub files <"$lb_work/file" 2>/dev/null || lb_fail "pub of the file"
    wait "$sub_pid" || lb_fail "sub of the file exited $?"
    cmp -s "$lb_work/file" "$lb_work/file.got" \
        || lb_fail "the file arrived changed ($(wc -c <"$lb_work/file.got") bytes)"
    lb_say "a 5 MB file handed over byte for byte"

    lb_kill_node1
    local before
    before="$(lb_sessions 2)"
    for i in 1 2 3 4; do
        lb_ssh whoami >/dev/null 2>"$lb_work/ssh.err" \
            || lb_fail "whoami $i with node 1 killed: $(cat "$lb_work/ssh.err")"
    done
    lb_wait_for "node 2's four session lines" lb_sessions_of_2_is "$((before + 4))"
    lb_say "with node 1 killed, four of four whoami on node 2"
}

# A node that was not listening yet for two health checks in a row is
# marked DOWN, and UP again only after two good ones (2 s apart): until
# then every connection goes to the other node.
lb_nodes_up() {
    local log n
    log="$(lb_balancer_log)"
    for n in sshpipe1 sshpipe2; do
        case "$(printf '%s\n' "$log" | grep -oE "Server ssh_nodes/$n is (UP|DOWN)" | tail -n1)" in
            *DOWN) return 1 ;;
        esac
    done
}

lb_pipes_on_chat() { lb_ssh ls | grep -A4 '^chat$' | grep -qE '^  pipes: 2( |$)'; }
lb_sessions_of_2_is() { [ "$(lb_sessions 2)" -eq "$1" ]; }
