#!/bin/sh
# /bin/vccr-mpi in initrd-mpi.img (busybox sh): one node of an Open MPI job across VMs.
# Contract (arguments, console lines): guest/README.md, "MPI image".
#
#   vccr-mpi --node I --host IP0 --host IP1 ... [--port P (2222)] [--wait-sec S (300)]
#            [-- <vccr-mpi-check arguments>]
#
# Every node: names itself mpi<I>, writes /etc/hosts (mpi<j> = j-th --host), starts
# vccr-rshd. Node 0 then waits until every node's vccr-rshd answers (any boot order) and
# runs mpirun over all nodes, one rank per node (rank j on mpi<j>); this script's exit
# status is mpirun's. The other nodes only serve vccr-rshd and never exit on their own.

usage() {
    echo "usage: vccr-mpi --node I --host IPV4 [--host IPV4 ...] [--port P] [--wait-sec S] [-- PROGRAM-ARGS]" >&2
    exit 64
}
is_uint() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_ipv4() {
    case "$1" in *[!0-9.]* | *..* | .* | *.) return 1 ;; esac
    [ "$(echo "$1" | tr -cd . | wc -c)" -eq 3 ]
}

node='' hosts='' n=0 port=2222 wait_sec=300
while [ $# -gt 0 ]; do
    case "$1" in
        --node) [ $# -ge 2 ] && is_uint "$2" || usage; node=$2; shift 2 ;;
        --host) [ $# -ge 2 ] && is_ipv4 "$2" || usage; hosts="$hosts $2"; n=$((n + 1)); shift 2 ;;
        --port) [ $# -ge 2 ] && is_uint "$2" || usage; port=$2; shift 2 ;;
        --wait-sec) [ $# -ge 2 ] && is_uint "$2" || usage; wait_sec=$2; shift 2 ;;
        --) shift; break ;;
        *) usage ;;
    esac
done
[ -n "$node" ] && [ "$n" -ge 1 ] && [ "$node" -lt "$n" ] || usage

# --- the environment Open MPI expects (also inherited by everything vccr-rshd runs) ---
grep -q ' /tmp ' /proc/mounts || mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/shm /root
grep -q ' /dev/shm ' /proc/mounts || mount -t tmpfs -o mode=1777 tmpfs /dev/shm
export HOME=/root USER=root LOGNAME=root SHELL=/bin/sh PATH=/bin:/sbin:/usr/bin:/usr/sbin
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 VCCR_RSH_PORT="$port"
cd /root || exit 1

{
    echo "127.0.0.1 localhost"
    j=0
    for ip in $hosts; do
        echo "$ip mpi$j"
        j=$((j + 1))
    done
} > /etc/hosts
hostname "mpi$node"
hostfile=/tmp/vccr-mpi.hosts
names=''
j=0
for ip in $hosts; do
    [ $j -eq "$node" ] && my_ip=$ip
    echo "mpi$j slots=1"
    names="$names${names:+,}mpi$j"
    j=$((j + 1))
done > "$hostfile"

/bin/vccr-rshd --port "$port" &
rshd=$!
echo "MPI NODE READY node=$node name=mpi$node ip=$my_ip"

if [ "$node" -ne 0 ]; then
    wait "$rshd"
    exit $?
fi

# --- node 0: wait for every node's launcher, then run the job ---
uptime_s() { cut -d. -f1 /proc/uptime; } # guest time: stops while the VM is paused
deadline=$(($(uptime_s) + wait_sec))
j=0
while [ $j -lt "$n" ]; do
    until /bin/vccr-rsh -n "mpi$j" true 2>/dev/null; do
        if [ "$(uptime_s)" -ge "$deadline" ]; then
            echo "MPI LAUNCH FAIL reason=peer-timeout node=$j wait-sec=$wait_sec"
            exit 4
        fi
        usleep 500000
    done
    echo "MPI PEER UP node=$j"
    j=$((j + 1))
done

echo "MPI LAUNCH np=$n hosts=$names"
# One rank per VM (rank j on mpi<j>), TCP only, on eth0 only; orted is started on the other
# nodes through vccr-rsh and daemonizes (no tree spawn, so no rsh session stays open).
/usr/bin/mpirun --allow-run-as-root -np "$n" --hostfile "$hostfile" --map-by node --bind-to none \
    --mca plm_rsh_agent /bin/vccr-rsh --mca plm_rsh_no_tree_spawn 1 \
    --mca btl tcp,self --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 --mca pml ob1 \
    /bin/vccr-mpi-check "$@" </dev/null
exit $?
