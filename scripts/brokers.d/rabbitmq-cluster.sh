# shellcheck shell=bash
# scripts/brokers.d/rabbitmq-cluster.sh: `rabbitmq-cluster`, three RabbitMQ nodes of the Debian
# package clustered on 127.0.0.1, beside the single broker (rabbit@<host>, port 5672), which
# they leave alone. Sourced by scripts/brokers; started only when named
# (`scripts/brokers start rabbitmq-cluster`).
#   node  name               AMQP             distribution  folder
#   1     rabbit-c1@localhost 127.0.0.1:5681   25681         $BHOME/rabbitmq-cluster/node1/{mnesia,log}
#   2     rabbit-c2@localhost 127.0.0.1:5682   25682         .../node2
#   3     rabbit-c3@localhost 127.0.0.1:5683   25683         .../node3
# Each node has its own configuration (no management plugin, no TLS listener) in its folder and
# none of /etc/rabbitmq; they run as the package's `rabbitmq` user and share its Erlang cookie
# (/var/lib/rabbitmq/.erlang.cookie) and the single epmd on 127.0.0.1. User guest/guest from
# loopback. Nodes 2 and 3 join node 1 at their first start. Queues that must survive a node
# are quorum queues (x-queue-type=quorum: RabbitMQConsumer.create(..., queue_arguments=...)).
# A start with every node down begins from empty storage (a test cluster), unless
# DISPYTCH_RABBITMQ_CLUSTER_KEEP_STORAGE=1; a node started alone rejoins the others.
#
#   scripts/brokers node rabbitmq-cluster kill <1|2|3>    SIGKILL the node's Erlang VM
#   scripts/brokers node rabbitmq-cluster start <1|2|3>   start it, wait until it answers AMQP
#   scripts/brokers node rabbitmq-cluster status          each node: up/down, pid
# The probe and launch functions are called by name from scripts/brokers.
# shellcheck disable=SC2317,SC2154,SC2034

RC_DIR="$BHOME/rabbitmq-cluster"
RC_NODES=(1 2 3)

rc_port() { echo $((5680 + $1)); }
rc_name() { echo "rabbit-c$1@localhost"; }
rc_url() {
  local n out=()
  for n in "${RC_NODES[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(rc_port "$n")/"); done
  (IFS=,; echo "${out[*]}")
}

register_server rabbitmq-cluster "127.0.0.1 $(rc_port 1)" on-request
WAIT_LIMIT[rabbitmq-cluster]=180

# the environment of a node's server and of rabbitmqctl aimed at it
rc_env() {
  local n=$1 dir="$RC_DIR/node$1"
  printf '%s\n' \
    "RABBITMQ_NODENAME=$(rc_name "$n")" \
    "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
    "RABBITMQ_NODE_PORT=$(rc_port "$n")" \
    "RABBITMQ_DIST_PORT=$((20000 + $(rc_port "$n")))" \
    "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
    "RABBITMQ_LOG_BASE=$dir/log" \
    "RABBITMQ_PID_FILE=$dir/rabbit.pid" \
    "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
    "RABBITMQ_CONFIG_FILES=$dir/conf.d" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
    "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf" \
    "ERL_EPMD_ADDRESS=127.0.0.1"
}

rc_ctl() {
  local n=$1
  shift
  local vars
  mapfile -t vars < <(rc_env "$n")
  env "${vars[@]}" timeout 60 rabbitmqctl -q -n "$(rc_name "$n")" "$@"
}

rc_prepare_node() {
  local n=$1 dir="$RC_DIR/node$1"
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/conf.d"
  cat >"$dir/rabbitmq.conf" <<EOF
# node $n of the Dispytch test cluster (written by scripts/brokers.d/rabbitmq-cluster.sh)
listeners.tcp.default = 127.0.0.1:$(rc_port "$n")
listeners.ssl = none
loopback_users.guest = true
cluster_partition_handling = pause_minority
EOF
  echo '[].' >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq-env.conf" <<'EOF'
export ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
  chown -R rabbitmq:rabbitmq "$dir"
}

rc_launch_node() {
  local n=$1 vars
  rc_prepare_node "$n"
  mapfile -t vars < <(rc_env "$n")
  (
    cd "$RC_DIR/node$n" || exit 1
    env "${vars[@]}" setsid rabbitmq-server -detached >>"$RC_DIR/node$n/log/launch.log" 2>&1 </dev/null
  )
}

# the node's Erlang VM: its name is in its environment, not on its command line
rc_pid() {
  local n=$1 pid
  for pid in "$({ tr -dc '0-9' <"$RC_DIR/node$n/rabbit.pid"; } 2>/dev/null)" \
    "$(listener_pid "$(rc_port "$n")" || true)"; do
    [[ -n $pid && -r /proc/$pid/environ ]] || continue
    if tr '\0' '\n' <"/proc/$pid/environ" | grep -qx "RABBITMQ_NODENAME=$(rc_name "$n")"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

rc_node_answers() { probe_rabbitmq 127.0.0.1 "$(rc_port "$1")"; }

# the three nodes answer AMQP and have been joined into one cluster
probe_rabbitmq-cluster() {
  local n
  [[ -f $RC_DIR/.joined ]] || return 1
  for n in "${RC_NODES[@]}"; do rc_node_answers "$n" || return 1; done
}

ensure_rabbitmq-cluster() {
  command -v rabbitmq-server >/dev/null || [[ -x /usr/sbin/rabbitmq-server ]] ||
    apt_install rabbitmq-server
}

# nodes 2 and 3 join node 1 (once, on fresh storage); in the background of `launch`, because
# `scripts/brokers` polls the probe meanwhile
rc_join() {
  local n deadline=$(($(now) + WAIT_LIMIT[rabbitmq-cluster] - 10))
  for n in "${RC_NODES[@]}"; do
    until rc_node_answers "$n"; do
      (($(now) < deadline)) || { say "rabbitmq-cluster: node $n never answered"; return 1; }
      sleep 0.5
    done
  done
  for n in "${RC_NODES[@]:1}"; do
    if ! { rc_ctl "$n" stop_app && rc_ctl "$n" join_cluster "$(rc_name "${RC_NODES[0]}")" &&
      rc_ctl "$n" start_app; }; then
      say "rabbitmq-cluster: node $n could not join $(rc_name "${RC_NODES[0]}")"
      return 1
    fi
  done
  touch "$RC_DIR/.joined"
}

launch_rabbitmq-cluster() {
  local n running=0
  for n in "${RC_NODES[@]}"; do ! rc_pid "$n" >/dev/null || running=1; done
  if ((running == 0)) && [[ "${DISPYTCH_RABBITMQ_CLUSTER_KEEP_STORAGE:-}" != 1 ]]; then
    rm -rf "${RC_DIR:?}/.joined"
    for n in "${RC_NODES[@]}"; do rm -rf "$RC_DIR/node$n/mnesia"; done
  fi
  for n in "${RC_NODES[@]}"; do rc_pid "$n" >/dev/null || rc_launch_node "$n"; done
  if [[ ! -f $RC_DIR/.joined ]]; then
    rc_join >>"$RC_DIR/join.log" 2>&1 &
  fi
}

stop_rabbitmq-cluster() {
  local n
  for n in "${RC_NODES[@]}"; do
    rc_pid "$n" >/dev/null || continue
    rc_ctl "$n" shutdown >/dev/null 2>&1 || true
  done
}

log_files_rabbitmq-cluster() {
  local n
  for n in "${RC_NODES[@]}"; do echo "$RC_DIR/node$n/log/$(rc_name "$n").log"; done
  echo "$RC_DIR/join.log"
}

env_rabbitmq-cluster() {
  printf 'export DISPYTCH_RABBITMQ_CLUSTER_URLS=%q\n' "$(rc_url)"
}

node_rabbitmq-cluster() {
  local action=${1:-} n=${2:-} pid deadline
  if [[ $action != status ]]; then
    [[ $n =~ ^[1-9]$ && -n ${RC_NODES[n - 1]:-} ]] || die "rabbitmq-cluster: no node '$n' (1-${#RC_NODES[@]})"
  fi
  case $action in
    kill)
      pid=$(rc_pid "$n") || { say "rabbitmq-cluster node $n: not running"; return 0; }
      kill -KILL "$pid"
      deadline=$(($(now) + 30))
      while kill -0 "$pid" 2>/dev/null; do
        (($(now) < deadline)) || die "rabbitmq-cluster node $n (pid $pid) still alive after SIGKILL"
        sleep 0.1
      done
      say "rabbitmq-cluster node $n: killed (pid $pid)"
      ;;
    start)
      rc_pid "$n" >/dev/null || rc_launch_node "$n"
      deadline=$(($(now) + WAIT_LIMIT[rabbitmq-cluster]))
      until rc_node_answers "$n"; do
        if (($(now) >= deadline)); then
          tail -n 40 "$RC_DIR/node$n/log/$(rc_name "$n").log"
          die "rabbitmq-cluster node $n: not answering within ${WAIT_LIMIT[rabbitmq-cluster]} s"
        fi
        sleep 0.5
      done
      say "rabbitmq-cluster node $n: up (127.0.0.1:$(rc_port "$n"))"
      ;;
    status)
      for n in "${RC_NODES[@]}"; do
        if pid=$(rc_pid "$n"); then
          say "rabbitmq-cluster node $n: running (pid $pid, 127.0.0.1:$(rc_port "$n"))"
        else
          say "rabbitmq-cluster node $n: down"
          FAILED=1
        fi
      done
      ;;
    *) die "rabbitmq-cluster: node actions are kill, start, status" ;;
  esac
}
