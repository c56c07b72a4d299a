# Whether a loopback port can be listened on (sourced by infra/stack.sh and the benches).

# Busy: something listens there, or any TCP socket holds it as its local port (a client's
# ephemeral port, which the kernel takes from 32768-60999, or one in TIME-WAIT: a server could
# not bind it either).
port_busy() {
    if command -v ss >/dev/null; then
        [[ -n $(ss -Htan "sport = :$1") ]]
    else
        (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
