#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, with accounting, for running the DAG through the SLURM profile:
#   bash scripts/slurm_local.sh start    # installs Debian's packages if missing (as root), starts the daemons
#   snakemake --profile workflow/profiles/slurm-local reports/tiny/table3.csv
#   bash scripts/slurm_local.sh stop     # stops the daemons this script started (by their pid files)
#   bash scripts/slurm_local.sh status   # exits 0 when all of them run
# Everything it writes lies in .slurm/ (ignored by git): configuration, munge key, MariaDB's files, logs,
# pid files, spool. One link lies outside: /etc/slurm/slurm.conf points to .slurm/etc/slurm.conf while the
# cluster runs, because the executor plugin's job step clears SLURM_CONF before its `srun`, and SLURM's
# commands then read the system path; `start` refuses to replace a slurm.conf that is not its own, `stop`
# removes the link. `start` is idempotent: a daemon that is already running is left as it is.
# Daemons: munged (authentication), mariadbd + slurmdbd (accounting: the executor plugin reads job states
# with sacct), slurmctld (the controller) and slurmd (the one compute node: every CPU, 90% of the memory).
# Ports (SLURM_LOCAL_PORT, default 16817, and the next three) are on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=$PWD/.slurm
PORT=${SLURM_LOCAL_PORT:-16817}   # slurmctld; slurmd, slurmdbd and MariaDB take the next three
CLUSTER=segsort-local
ACCOUNT=segsort
PARTITION=local
NODE=localnode
USER_NAME=$(id -un)
SYSTEM_CONF=/etc/slurm/slurm.conf  # where SLURM's commands look when SLURM_CONF is not set
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: $*" >&2; exit 1; }

alive() {  # alive NAME: its pid file names a running process
    local pid_file=$STATE/run/$1.pid
    [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: retry COMMAND every 0.2 s
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$what did not come up within ${seconds} s; see $STATE/log/"
        sleep 0.2
    done
}

install_packages() {
    local missing=()
    for command in slurmctld slurmd sbatch slurmdbd munged mariadbd; do
        command -v "$command" >/dev/null || missing+=("$command")
    done
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$STATE/log/apt.log" 2>&1 \
            || { apt-get update -q >>"$STATE/log/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$STATE/log/apt.log" 2>&1; } \
            || die "apt-get could not install ${PACKAGES[*]}; see $STATE/log/apt.log"
    else
        die "missing ${missing[*]}: install Debian's ${PACKAGES[*]} (or your distribution's SLURM, munge and MariaDB)"
    fi
}

write_configs() {
    local cpus memory_mb
    cpus=$(nproc)
    memory_mb=$(awk '/^MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$STATE"/{etc,run,log,spool/ctld,spool/d,db}
    chmod 700 "$STATE/etc" "$STATE/run"
    if [ ! -s "$STATE/etc/munge.key" ]; then
        (umask 077 && head -c 1024 /dev/urandom > "$STATE/etc/munge.key")
    fi
    if [ ! -s "$STATE/etc/db_password" ]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$STATE/etc/db_password")
    fi
    cat > "$STATE/etc/slurm.conf" <<EOF
# Written by scripts/slurm_local.sh: a one-node cluster on 127.0.0.1 ($cpus CPUs, $memory_mb MB).
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/run/munge.socket
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups: processes are tracked through /proc, tasks are not confined
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# Jobs share the node by CPU and memory
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
ReturnToService=2
# Accounting through slurmdbd, so that sacct lists every job
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
AccountingStoragePass=$STATE/run/munge.socket  # for slurmdbd, the munge socket its clients use
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStoreFlags=job_comment  # the executor plugin names each job's rule in its comment
MinJobAge=300
KillWait=10
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    (umask 077 && cat > "$STATE/etc/slurmdbd.conf" <<EOF
# Written by scripts/slurm_local.sh
AuthType=auth/munge
AuthInfo=socket=$STATE/run/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=$USER_NAME
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT + 3))
StorageUser=slurm
StoragePass=$(cat "$STATE/etc/db_password")
StorageLoc=slurm_acct_db
EOF
    )
}

link_system_conf() {
    if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$STATE/etc/slurm.conf" ]; then
        return
    fi
    [ -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ] && die "$SYSTEM_CONF exists and is not this cluster's: this machine has a SLURM configuration of its own (or another checkout's cluster runs: stop it first)"
    mkdir -p "$(dirname "$SYSTEM_CONF")" && ln -s "$STATE/etc/slurm.conf" "$SYSTEM_CONF" \
        || die "cannot link $SYSTEM_CONF to $STATE/etc/slurm.conf (run as root, or link it yourself)"
}

start_munge() {
    alive munged && return
    munged --force --key-file="$STATE/etc/munge.key" --socket="$STATE/run/munge.socket" \
        --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/run/munged.seed"
    wait_for 10 munged munge --socket="$STATE/run/munge.socket" -n
}

mariadb_client() { mariadb --no-defaults --socket="$STATE/run/mariadb.socket" -u "$USER_NAME" "$@"; }

start_mariadb() {
    alive mariadbd && return
    if [ ! -d "$STATE/db/mysql" ]; then
        mariadb-install-db --no-defaults --datadir="$STATE/db" --user="$USER_NAME" \
            --auth-root-authentication-method=socket --auth-root-socket-user="$USER_NAME" \
            >"$STATE/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $STATE/log/mariadb-install.log"
    fi
    mariadbd --no-defaults --datadir="$STATE/db" --user="$USER_NAME" --bind-address=127.0.0.1 \
        --port=$((PORT + 3)) --socket="$STATE/run/mariadb.socket" --pid-file="$STATE/run/mariadbd.pid" \
        --log-error="$STATE/log/mariadbd.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
    wait_for 30 MariaDB mariadb_client -e "SELECT 1"
    local password
    password=$(cat "$STATE/etc/db_password")
    mariadb_client -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
                       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
}

start_slurmdbd() {
    alive slurmdbd && return
    slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 30 slurmdbd timeout 5 sacctmgr --noheader list cluster
    local listed
    listed=$(sacctmgr --noheader --parsable2 list cluster format=cluster)
    grep -qx "$CLUSTER" <<<"$listed" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    listed=$(sacctmgr --noheader --parsable2 list account format=account)
    grep -qx "$ACCOUNT" <<<"$listed" || sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
        Description="SegSort pipeline" Organization=local >/dev/null
    listed=$(sacctmgr --noheader --parsable2 list association user="$USER_NAME" format=account)
    grep -qx "$ACCOUNT" <<<"$listed" || sacctmgr -i add user "$USER_NAME" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
}

node_idle() { [ "$(sinfo --noheader --nodes="$NODE" --format=%T 2>/dev/null)" = idle ]; }

start_slurm() {
    alive slurmctld || slurmctld
    wait_for 30 slurmctld timeout 5 scontrol ping
    alive slurmd || slurmd -N "$NODE"
    wait_for 30 "the node $NODE" node_idle
}

start() {
    mkdir -p "$STATE/log"
    install_packages
    write_configs
    link_system_conf
    export SLURM_CONF=$STATE/etc/slurm.conf
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurm
    say "cluster $CLUSTER is up: partition $PARTITION, node $NODE ($(nproc) CPUs), account $ACCOUNT"
    say "$SYSTEM_CONF -> $STATE/etc/slurm.conf"
}

stop() {
    local name pid
    for name in slurmd slurmctld slurmdbd mariadbd munged; do  # the reverse of the start order
        alive "$name" || continue
        pid=$(cat "$STATE/run/$name.pid")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name (pid $pid) did not stop in 10 s; killing it"
            kill -9 "$pid"
        fi
        rm -f "$STATE/run/$name.pid"
        say "stopped $name (pid $pid)"
    done
    if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$STATE/etc/slurm.conf" ]; then
        rm "$SYSTEM_CONF"
    fi
}

status() {  # exit 0 when every daemon of this cluster runs
    local name down=()
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        alive "$name" || down+=("$name")
    done
    [ ${#down[@]} -eq 0 ] && say "running" && return
    say "not running: ${down[*]}"
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: bash scripts/slurm_local.sh start|stop|status" ;;
esac
