# shellcheck shell=bash
# scripts/brokers.d/kafka-cluster.sh: `kafka-cluster`, three Apache Kafka nodes in KRaft mode on
# 127.0.0.1, from the same jars as the single broker (scripts/kafka/pom.xml). Sourced by
# scripts/brokers; started only when named (`scripts/brokers start kafka-cluster`).
#
# Each node is broker and controller at once: the controller quorum has three voters, so the
# cluster keeps a metadata leader while any one node is down (two down: no quorum, nothing
# changes leaders or in-sync replicas until one comes back).
#   node  client (PLAINTEXT)  controller   folder
#   1     127.0.0.1:19092     19095        $BHOME/kafka-cluster/node1/{data,logs}
#   2     127.0.0.1:19093     19096        .../node2
#   3     127.0.0.1:19094     19097        .../node3
# default.replication.factor=3, min.insync.replicas=2; the group offsets and transaction topics
# have three replicas too. Heap per node: DISPYTCH_KAFKA_CLUSTER_HEAP (default 512m).
# A start with every node down begins from empty storage (a test cluster: each test makes its own
# topics), unless DISPYTCH_KAFKA_KEEP_STORAGE=1. A node started alone keeps its storage and
# catches up from the others.
#
# One node at a time (the tests kill the leader of a partition this way):
#   scripts/brokers node kafka-cluster kill <1|2|3>     SIGKILL, wait until the process is gone
#   scripts/brokers node kafka-cluster start <1|2|3>    start it, wait until the cluster sees it
#   scripts/brokers node kafka-cluster status           each node: up/down, pid
# The probe and launch functions are called by name from scripts/brokers.
# shellcheck disable=SC2317,SC2154,SC2016,SC2034

KC_DIR="$BHOME/kafka-cluster"
KC_NODES=(1 2 3)
KC_CLUSTER_ID="ZGlzcHl0Y2gtY2x1c3Rlcg"   # fixed, not the single broker's
: "${DISPYTCH_KAFKA_CLUSTER_HEAP:=512m}"

kc_client_port() { echo $((19091 + $1)); }
kc_controller_port() { echo $((19094 + $1)); }
kc_bootstrap() {
  local n out=()
  for n in "${KC_NODES[@]}"; do out+=("127.0.0.1:$(kc_client_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}

register_server kafka-cluster "127.0.0.1 $(kc_client_port 1)" on-request
WAIT_LIMIT[kafka-cluster]=180

kc_properties() {
  local n=$1 voters="" m
  for m in "${KC_NODES[@]}"; do voters+="${voters:+,}$m@127.0.0.1:$(kc_controller_port "$m")"; done
  cat <<EOF
# node $n of the Dispytch test cluster (written by scripts/brokers.d/kafka-cluster.sh)
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(kc_client_port "$n"),CONTROLLER://127.0.0.1:$(kc_controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kc_client_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KC_DIR/node$n/data

default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2

# A node that stops heartbeating is fenced (its partitions get new leaders) after 6 s.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000

# Kafka's default: a new group waits 3 s for more members before its first assignment (so
# that workers started together share the partitions from the start, benchmarks/scale_out.py)
group.initial.rebalance.delay.ms=3000
auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=1

num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
}

kc_pid() {
  local n=$1
  find_pid "$KC_DIR/node$n/kafka.pid" "$(kc_client_port "$n")" "node$n/server.properties"
}

kc_launch_node() {
  local n=$1 dir="$KC_DIR/node$1"
  mkdir -p "$dir/data" "$dir/logs"
  kc_properties "$n" >"$dir/server.properties"
  if [[ ! -f $dir/data/meta.properties ]]; then
    kafka_java -Dkafka.logs.dir="$dir/logs" -Dkafka.log.file=tools.log kafka.tools.StorageTool \
      format --cluster-id "$KC_CLUSTER_ID" --config "$dir/server.properties" --ignore-formatted \
      >>"$dir/logs/tools.log" 2>&1 ||
      { tail -n 40 "$dir/logs/tools.log"; die "kafka-cluster: formatting node $n's storage failed"; }
  fi
  (
    cd "$dir" || exit 1
    # shellcheck disable=SC2086  # KAFKA_JVM_OPTS are words
    setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$dir/kafka.pid" \
      "$JAVA" "-Xmx$DISPYTCH_KAFKA_CLUSTER_HEAP" -Xms128m -XX:+UseSerialGC \
      -Djava.awt.headless=true ${KAFKA_JVM_OPTS:-} \
      -Dkafka.logs.dir="$dir/logs" -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.xml" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" \
      >>"$dir/logs/stdout.log" 2>&1 </dev/null &
  )
}

# node <n> answers a metadata request listing <count> brokers (default: all three). Only
# unfenced brokers are listed, and only an active controller unfences them: the quorum has a
# leader.
kc_node_ready() {
  local out
  out=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "\x00\x00\x00\x12\x00\x03\x00\x04\x00\x00\x00\x07\x00\x03dsp\xff\xff\xff\xff\x00" >&3
    head -c 16 <&3 | od -An -tx1' "$(kc_client_port "$1")" 2>/dev/null) || return 1
  read -r -a b <<<"$out"
  [[ ${#b[@]} -eq 16 && "${b[4]}${b[5]}${b[6]}${b[7]}" == 00000007 ]] || return 1
  [[ "${b[12]}${b[13]}${b[14]}${b[15]}" == 0000000${2:-${#KC_NODES[@]}} ]]
}

# how many nodes have a running process
kc_running() {
  local n count=0
  for n in "${KC_NODES[@]}"; do ! kc_pid "$n" >/dev/null || count=$((count + 1)); done
  echo "$count"
}

probe_kafka-cluster() {
  local n
  for n in "${KC_NODES[@]}"; do kc_node_ready "$n" || return 1; done
}

ensure_kafka-cluster() {
  command -v "$JAVA" >/dev/null || apt_install openjdk-17-jre-headless
  kafka_jars_ready || command -v mvn >/dev/null || apt_install maven
  ensure_kafka_jars
}

launch_kafka-cluster() {
  local n running=0
  for n in "${KC_NODES[@]}"; do ! kc_pid "$n" >/dev/null || running=1; done
  if ((running == 0)) && [[ "${DISPYTCH_KAFKA_KEEP_STORAGE:-}" != 1 ]]; then
    for n in "${KC_NODES[@]}"; do rm -rf "$KC_DIR/node$n/data"; done
  fi
  for n in "${KC_NODES[@]}"; do kc_pid "$n" >/dev/null || kc_launch_node "$n"; done
}

stop_kafka-cluster() {
  local n pid
  for n in "${KC_NODES[@]}"; do
    pid=$(kc_pid "$n") || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
  for n in "${KC_NODES[@]}"; do
    pid=$(kc_pid "$n") || continue
    terminate "$pid" 60
  done
}

log_files_kafka-cluster() {
  local n
  for n in "${KC_NODES[@]}"; do echo "$KC_DIR/node$n/logs/server.log"; done
}

env_kafka-cluster() {
  printf 'export DISPYTCH_KAFKA_CLUSTER_BOOTSTRAP_SERVERS=%q\n' "$(kc_bootstrap)"
}

node_kafka-cluster() {
  local action=${1:-} n=${2:-} pid deadline
  if [[ $action != status ]]; then
    [[ $n =~ ^[1-9]$ && -n ${KC_NODES[n - 1]:-} ]] || die "kafka-cluster: no node '$n' (1-${#KC_NODES[@]})"
  fi
  case $action in
    kill)
      pid=$(kc_pid "$n") || { say "kafka-cluster node $n: not running"; return 0; }
      kill -KILL "$pid"
      deadline=$(($(now) + 30))
      while kill -0 "$pid" 2>/dev/null; do
        (($(now) < deadline)) || die "kafka-cluster node $n (pid $pid) still alive after SIGKILL"
        sleep 0.1
      done
      say "kafka-cluster node $n: killed (pid $pid)"
      ;;
    start)
      kc_pid "$n" >/dev/null || kc_launch_node "$n"
      deadline=$(($(now) + WAIT_LIMIT[kafka-cluster]))
      # every running node listed (with two nodes of three down, the one started alone
      # restores the quorum, and the third may stay down)
      until kc_node_ready "$n" "$(kc_running)"; do
        if (($(now) >= deadline)); then
          tail -n 40 "$KC_DIR/node$n/logs/server.log"
          die "kafka-cluster node $n: not ready within ${WAIT_LIMIT[kafka-cluster]} s"
        fi
        sleep 0.5
      done
      say "kafka-cluster node $n: up (127.0.0.1:$(kc_client_port "$n"))"
      ;;
    status)
      for n in "${KC_NODES[@]}"; do
        if pid=$(kc_pid "$n"); then
          say "kafka-cluster node $n: running (pid $pid, 127.0.0.1:$(kc_client_port "$n"))"
        else
          say "kafka-cluster node $n: down"
          FAILED=1
        fi
      done
      ;;
    *) die "kafka-cluster: node actions are kill, start, status" ;;
  esac
}
