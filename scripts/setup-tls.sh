#!/usr/bin/env bash
# Gives the local broker a TLS listener for the TLS tests: makes a throwaway CA, a server certificate for
# "localhost", a client certificate for user "tls-client" (login by certificate, SASL EXTERNAL) and a second, unknown
# CA; writes them to /etc/rabbitmq/tls-test; configures the listener on 127.0.0.1:5671 (and [::1]:5671) with peer
# verification; enables rabbitmq_auth_mechanism_ssl. Restarts the broker if it runs.
#
# It only touches /etc/rabbitmq/rabbitmq.conf when that file is absent or was written by this script, so a broker
# configured by hand is left alone (the TLS tests then skip, or fail under CI).
set -euo pipefail
scripts=$(cd "$(dirname "$0")" && pwd)

dir=/etc/rabbitmq/tls-test
conf=/etc/rabbitmq/rabbitmq.conf
marker="# written by swift-rabbitmq scripts/setup-tls.sh"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if [ -f "$conf" ] && ! grep -q "$marker" "$conf"; then
    echo "setup-tls: $conf exists and was not written by this script; leaving the broker's TLS alone"
    exit 0
fi

if [ ! -f "$dir/client.pem" ] || ! openssl x509 -checkend 86400 -noout -in "$dir/server.pem" >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cd "$work"
    days=30
    # The CA the broker and the clients trust.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days "$days" -subj "/CN=swift-rabbitmq test CA" 2>/dev/null
    # A CA nobody trusts, to show that an unknown CA is refused.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days "$days" -subj "/CN=unknown test CA" 2>/dev/null
    # The server: a DNS name (rabbitmq-c 0.11 checks DNS names only, not IP addresses).
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days "$days" -extfile server.ext 2>/dev/null
    # The client: its common name is the RabbitMQ user it logs in as.
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=tls-client" 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days "$days" -extfile client.ext 2>/dev/null
    $sudo mkdir -p "$dir"
    $sudo cp ca.pem other-ca.pem server.pem server.key client.pem client.key "$dir/"
    $sudo chown -R rabbitmq:rabbitmq "$dir"
    $sudo chmod 0644 "$dir"/*.pem "$dir"/client.key
    $sudo chmod 0600 "$dir/server.key"
    cd /
fi

desired=$(cat <<CONF
$marker
listeners.tcp.default = 5672
listeners.ssl.1 = 127.0.0.1:5671
listeners.ssl.2 = ::1:5671
ssl_options.cacertfile = $dir/ca.pem
ssl_options.certfile = $dir/server.pem
ssl_options.keyfile = $dir/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
CONF
)
changed=false
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$desired" ]; then
    echo "$desired" | $sudo tee "$conf" >/dev/null
    changed=true
fi
$sudo rabbitmq-plugins enable --offline rabbitmq_auth_mechanism_ssl >/dev/null

if $sudo rabbitmqctl -q status >/dev/null 2>&1; then
    if [ "$changed" = true ] || ! $sudo rabbitmq-diagnostics -q listeners 2>/dev/null | grep -q 5671; then
        echo "setup-tls: restarting RabbitMQ for its TLS listener"
        $sudo rabbitmqctl -q stop
        # Starting again while the old node is still shutting down fails; wait until it is gone.
        for _ in $(seq 1 30); do
            $sudo rabbitmqctl -q status >/dev/null 2>&1 || break
            sleep 1
        done
        "$scripts/start-broker.sh"
    fi
    # Login by certificate needs the user; it has no password, so only a certificate gets it in.
    if ! $sudo rabbitmqctl -q list_users | grep -q '^tls-client'; then
        $sudo rabbitmqctl -q add_user tls-client "$(openssl rand -hex 16)" >/dev/null
        $sudo rabbitmqctl -q clear_password tls-client >/dev/null
        $sudo rabbitmqctl -q set_permissions -p / tls-client '.*' '.*' '.*' >/dev/null
    fi
fi
echo "setup-tls: TLS listener on 127.0.0.1:5671 and [::1]:5671, certificates in $dir"
