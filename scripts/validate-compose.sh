#!/usr/bin/env bash
# Checks docker-compose.yml and rabbitmq/ without a Docker engine:
#   - the compose file is valid (`docker compose config -q`, else `docker-compose config -q`),
#     and its rabbitmq service builds ./rabbitmq, publishes 5672 and 15672, has a healthcheck
#     and keeps /var/lib/rabbitmq in a named volume;
#   - rabbitmq/Dockerfile starts FROM an exact rabbitmq X.Y.Z-management tag (no `latest`,
#     no floating 4.1), on a broker the delayed-message-exchange plugin can run on (< 4.3);
#   - the plugin release has the broker's major.minor, is downloaded from the release asset
#     of that version, and is checked against a SHA-256;
#   - rabbitmq/enabled_plugins lists rabbitmq_management and rabbitmq_delayed_message_exchange;
#   - rabbitmq/rabbitmq.conf lets guest/guest in from the host.
# Prints one line per check and exits 1 if any failed.
#
# Usage: scripts/validate-compose.sh [REPO_ROOT]
# Needs bash and either Compose v2 (`docker compose`) or Compose v1 (`docker-compose`, Debian's
# package); no daemon. COMPOSE="docker-compose" forces a command. The service-level checks also
# need python3 (with PyYAML for Compose v1, which Debian's docker-compose depends on); without
# it they are reported as skipped.
set -euo pipefail

root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
compose_file="$root/docker-compose.yml"
dockerfile="$root/rabbitmq/Dockerfile"
plugins_file="$root/rabbitmq/enabled_plugins"
conf_file="$root/rabbitmq/rabbitmq.conf"

failures=0
ok() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*" >&2; failures=$((failures + 1)); }
skip() { printf 'skip  %s\n' "$*"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- compose file ---------------------------------------------------------------------------

compose=()
compose_v2=false
if [ -n "${COMPOSE:-}" ]; then
    read -r -a compose <<<"$COMPOSE"
    if [ "${compose[0]}" = docker ] && [ "${compose[1]:-}" = compose ]; then compose_v2=true; fi
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
    compose_v2=true
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
fi

if [ ! -f "$compose_file" ]; then
    fail "docker-compose.yml: not found at $compose_file"
elif [ ${#compose[@]} -eq 0 ]; then
    fail "docker-compose.yml: cannot validate it: neither 'docker compose' nor 'docker-compose' is installed (Debian: apt-get install docker-compose)"
elif ! (cd "$root" && "${compose[@]}" -f "$compose_file" config -q) >"$work/config.err" 2>&1; then
    fail "docker-compose.yml: '${compose[*]} config -q' rejected it:"
    sed 's/^/      /' "$work/config.err" >&2
else
    ok "docker-compose.yml: valid for '${compose[*]} config -q'"

    if $compose_v2; then
        format=json
        render=(config --format json)
    else
        format=yaml
        render=(config)
    fi

    # Reads the resolved configuration (Compose v2 JSON or Compose v1 YAML) and prints one
    # "ok <text>" or "FAIL <text>" line per check, or "SKIP <reason>".
    checker='
import json, sys

fmt, path = sys.argv[1], sys.argv[2]
try:
    with open(path) as f:
        if fmt == "json":
            config = json.load(f)
        else:
            try:
                import yaml
            except ImportError:
                print("SKIP python3 has no yaml module (apt-get install python3-yaml)")
                sys.exit(0)
            config = yaml.safe_load(f)
except Exception as error:
    print("FAIL cannot read the resolved configuration: %s" % error)
    sys.exit(0)

def result(passed, text):
    print(("ok " if passed else "FAIL ") + text)

service = (config.get("services") or {}).get("rabbitmq")
if not isinstance(service, dict):
    result(False, "service rabbitmq: not defined")
    sys.exit(0)
result(True, "service rabbitmq: defined")

build = service.get("build")
context = build.get("context") if isinstance(build, dict) else build
context = (context or "").rstrip("/")
result(context == "rabbitmq" or context.endswith("/rabbitmq"),
       "service rabbitmq: builds ./rabbitmq (build context: %s)" % (context or "none"))

published = set()
for port in service.get("ports") or []:
    if isinstance(port, dict):
        target, host = port.get("target"), port.get("published")
    else:
        fields = str(port).split("/")[0].split(":")
        target, host = fields[-1], (fields[-2] if len(fields) > 1 else None)
    if target is not None and host is not None and str(target) == str(host):
        published.add(str(target))
for port in ("5672", "15672"):
    result(port in published, "service rabbitmq: publishes %s on host port %s" % (port, port))

check = service.get("healthcheck") or {}
test = check.get("test") or []
if isinstance(test, str):
    test = [test]
has_test = not check.get("disable") and bool(test) and test[0] != "NONE" \
    and any("rabbitmq-diagnostics" in str(part) for part in test)
result(has_test, "service rabbitmq: healthcheck runs rabbitmq-diagnostics (%s)"
       % (" ".join(str(part) for part in test) or "none"))
missing = [key for key in ("interval", "timeout", "retries", "start_period") if key not in check]
result(not missing, "service rabbitmq: healthcheck sets interval, timeout, retries and start_period"
       + (" (missing: %s)" % ", ".join(missing) if missing else ""))

named = set((config.get("volumes") or {}).keys())
data_volume = None
for volume in service.get("volumes") or []:
    if isinstance(volume, dict):
        source, target, kind = volume.get("source"), volume.get("target"), volume.get("type")
    else:
        fields = str(volume).split(":")
        source, target = (fields[0], fields[1]) if len(fields) > 1 else (None, fields[0])
        kind = "volume" if source in named else "bind"
    if str(target).rstrip("/") == "/var/lib/rabbitmq" and kind == "volume" and source in named:
        data_volume = source
result(data_volume is not None, "service rabbitmq: /var/lib/rabbitmq is a named volume (%s)"
       % (data_volume or "none"))
'
    if ! command -v python3 >/dev/null 2>&1; then
        skip "docker-compose.yml: service checks need python3"
    elif ! (cd "$root" && "${compose[@]}" -f "$compose_file" "${render[@]}") >"$work/config.out" 2>"$work/config.err"; then
        fail "docker-compose.yml: '${compose[*]} ${render[*]}' failed:"
        sed 's/^/      /' "$work/config.err" >&2
    elif ! python3 -c "$checker" "$format" "$work/config.out" >"$work/checks" 2>"$work/checks.err"; then
        fail "docker-compose.yml: the service checks crashed:"
        sed 's/^/      /' "$work/checks.err" >&2
    else
        while IFS= read -r line; do
            case "$line" in
                "ok "*) ok "docker-compose.yml: ${line#ok }" ;;
                "FAIL "*) fail "docker-compose.yml: ${line#FAIL }" ;;
                "SKIP "*) skip "docker-compose.yml: service checks: ${line#SKIP }" ;;
                *) fail "docker-compose.yml: unexpected output of the service checks: $line" ;;
            esac
        done <"$work/checks"
    fi
fi

# --- rabbitmq/Dockerfile --------------------------------------------------------------------

broker_major_minor=""
plugin_version=""
if [ ! -f "$dockerfile" ]; then
    fail "rabbitmq/Dockerfile: not found at $dockerfile"
else
    # Last FROM line (the stage that is run), without --platform and "AS name".
    from_line="$(grep -iE '^[[:space:]]*FROM[[:space:]]' "$dockerfile" | tail -n 1 || true)"
    image="$(printf '%s\n' "$from_line" | awk '{
        for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; exit }
    }')"
    image="${image#docker.io/}"
    image="${image#library/}"
    digest=""
    if [[ "$image" == *@* ]]; then
        digest="${image#*@}"
        image="${image%%@*}"
    fi
    repository="${image%%:*}"
    tag=""
    if [[ "$image" == *:* ]]; then tag="${image#*:}"; fi
    major=""
    minor=""
    if [[ "$tag" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)-management$ ]]; then
        major="${BASH_REMATCH[1]}"
        minor="${BASH_REMATCH[2]}"
    fi

    if [ -z "$from_line" ]; then
        fail "rabbitmq/Dockerfile: no FROM line"
    elif [[ "$image" == *'$'* ]]; then
        fail "rabbitmq/Dockerfile: FROM uses a variable ($image); write the exact tag so that it can be checked"
    elif [ "$repository" != rabbitmq ]; then
        fail "rabbitmq/Dockerfile: FROM $image is not the official rabbitmq image"
    elif [ -z "$tag" ] || [ "$tag" = latest ] || [[ "$tag" == *latest* ]]; then
        fail "rabbitmq/Dockerfile: FROM $image is not pinned; use an exact tag such as rabbitmq:4.1.8-management"
    elif [ -z "$major" ]; then
        fail "rabbitmq/Dockerfile: FROM rabbitmq:$tag is not an exact X.Y.Z-management tag (a floating tag such as 4.1-management moves to new releases)"
    elif [ -n "$digest" ] && [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
        fail "rabbitmq/Dockerfile: FROM $image@$digest has a malformed digest"
    else
        broker_major_minor="$major.$minor"
        ok "rabbitmq/Dockerfile: FROM rabbitmq:$tag${digest:+@$digest} is pinned to an exact release"
        if [ "$major" -gt 4 ] || { [ "$major" -eq 4 ] && [ "$minor" -ge 3 ]; }; then
            fail "rabbitmq/Dockerfile: RabbitMQ $broker_major_minor cannot run the delayed-message-exchange plugin (it stores messages in Mnesia, removed in 4.3; the last plugin release is for 4.2)"
        else
            ok "rabbitmq/Dockerfile: RabbitMQ $broker_major_minor is older than 4.3, so the plugin can run on it"
        fi
    fi

    version_arg="$(grep -E '^[[:space:]]*ARG[[:space:]]+DELAYED_MESSAGE_EXCHANGE_VERSION=' "$dockerfile" | tail -n 1 || true)"
    plugin_version="$(printf '%s\n' "$version_arg" | sed -E 's/^[[:space:]]*ARG[[:space:]]+DELAYED_MESSAGE_EXCHANGE_VERSION=//; s/[[:space:]"]//g')"
    if [ -z "$version_arg" ]; then
        fail "rabbitmq/Dockerfile: no 'ARG DELAYED_MESSAGE_EXCHANGE_VERSION=X.Y.Z' line giving the plugin release"
        plugin_version=""
    elif [[ ! "$plugin_version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
        fail "rabbitmq/Dockerfile: plugin version '$plugin_version' is not an exact X.Y.Z release"
        plugin_version=""
    else
        plugin_major_minor="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
        if [ -z "$broker_major_minor" ]; then
            fail "rabbitmq/Dockerfile: cannot compare plugin $plugin_version with the broker version (see the FROM check)"
        elif [ "$plugin_major_minor" = "$broker_major_minor" ]; then
            ok "rabbitmq/Dockerfile: plugin $plugin_version is the release for RabbitMQ $broker_major_minor.x"
        else
            fail "rabbitmq/Dockerfile: plugin $plugin_version is built for RabbitMQ $plugin_major_minor.x, but the image is RabbitMQ $broker_major_minor; use the plugin release $broker_major_minor.x"
        fi
    fi

    if [ -n "$plugin_version" ]; then
        expected_url="https://github.com/rabbitmq/rabbitmq-delayed-message-exchange/releases/download/v$plugin_version/rabbitmq_delayed_message_exchange-$plugin_version.ez"
        url="$(grep -oE 'https://[^[:space:]]+\.ez' "$dockerfile" | head -n 1 || true)"
        url="${url//\$\{DELAYED_MESSAGE_EXCHANGE_VERSION\}/$plugin_version}"
        url="${url//\$DELAYED_MESSAGE_EXCHANGE_VERSION/$plugin_version}"
        if [ "$url" = "$expected_url" ]; then
            ok "rabbitmq/Dockerfile: plugin downloaded from $expected_url"
        else
            fail "rabbitmq/Dockerfile: plugin URL is '${url:-none}', expected $expected_url"
        fi
    fi

    sha_arg="$(grep -E '^[[:space:]]*ARG[[:space:]]+DELAYED_MESSAGE_EXCHANGE_SHA256=' "$dockerfile" | tail -n 1 || true)"
    sha="$(printf '%s\n' "$sha_arg" | sed -E 's/^[[:space:]]*ARG[[:space:]]+DELAYED_MESSAGE_EXCHANGE_SHA256=//; s/[[:space:]"]//g')"
    if [[ ! "$sha" =~ ^[0-9a-f]{64}$ ]]; then
        fail "rabbitmq/Dockerfile: no 'ARG DELAYED_MESSAGE_EXCHANGE_SHA256=<64 hex digits>' line for the plugin's checksum"
    elif ! grep -qE 'sha256sum.*--check|DELAYED_MESSAGE_EXCHANGE_SHA256.*sha256sum' "$dockerfile"; then
        fail "rabbitmq/Dockerfile: DELAYED_MESSAGE_EXCHANGE_SHA256 is set but no sha256sum --check uses it"
    else
        ok "rabbitmq/Dockerfile: plugin checked against SHA-256 $sha"
    fi

    if grep -qE '^[[:space:]]*COPY[[:space:]].*[[:space:]]enabled_plugins[[:space:]]+/etc/rabbitmq/enabled_plugins[[:space:]]*$' "$dockerfile"; then
        ok "rabbitmq/Dockerfile: copies enabled_plugins to /etc/rabbitmq/enabled_plugins"
    else
        fail "rabbitmq/Dockerfile: does not COPY enabled_plugins to /etc/rabbitmq/enabled_plugins"
    fi
fi

# --- rabbitmq/enabled_plugins ---------------------------------------------------------------

if [ ! -f "$plugins_file" ]; then
    fail "rabbitmq/enabled_plugins: not found at $plugins_file"
else
    # An Erlang term: [name,name,...]. with optional % comments.
    term="$(sed 's/%.*//' "$plugins_file" | tr -d '[:space:]')"
    if [[ ! "$term" =~ ^\[([a-z0-9_]+(,[a-z0-9_]+)*)?\]\.$ ]]; then
        fail "rabbitmq/enabled_plugins: '$term' is not an Erlang list of plugin names ending with '.', e.g. [rabbitmq_management,rabbitmq_delayed_message_exchange]."
    else
        names=",${term:1:${#term}-3},"
        for plugin in rabbitmq_management rabbitmq_delayed_message_exchange; do
            if [[ "$names" == *",$plugin,"* ]]; then
                ok "rabbitmq/enabled_plugins: lists $plugin"
            else
                fail "rabbitmq/enabled_plugins: does not list $plugin"
            fi
        done
    fi
fi

# --- rabbitmq/rabbitmq.conf -----------------------------------------------------------------

if [ ! -f "$conf_file" ]; then
    fail "rabbitmq/rabbitmq.conf: not found at $conf_file"
else
    settings="$(sed -E 's/#.*//; s/[[:space:]]+//g' "$conf_file" | grep -v '^$' || true)"
    if printf '%s\n' "$settings" | grep -qxE 'loopback_users\.guest=(false|no|off|0)|loopback_users=none'; then
        ok "rabbitmq/rabbitmq.conf: guest may connect from outside the container (loopback restriction lifted)"
    else
        fail "rabbitmq/rabbitmq.conf: guest is limited to the container's loopback interface, so amqp://guest:guest@127.0.0.1:5672/ from the host is refused; add 'loopback_users.guest = false'"
    fi
    for key in default_user default_pass; do
        value="$(printf '%s\n' "$settings" | sed -nE "s/^$key=(.*)$/\\1/p" | tail -n 1)"
        if [ -n "$value" ] && [ "$value" != guest ]; then
            fail "rabbitmq/rabbitmq.conf: $key is '$value', but the clients default to guest/guest"
        fi
    done
fi

if [ "$failures" -gt 0 ]; then
    printf 'validate-compose: %d check(s) failed\n' "$failures" >&2
    exit 1
fi
echo "validate-compose: all checks passed"
