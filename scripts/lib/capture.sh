# Shell functions shared by the capture-recording scripts (scripts/fixtures/*/record.sh,
# scripts/sample/record.sh).  Source this file after `set -euo pipefail`; sourcing only
# defines functions.  Call setup_recording first: it creates the temporary folder $work and an
# EXIT trap that stops every daemon and tcpdump started here and then deletes $work (kept when
# KEEP_WORK is set, for debugging).
#
# Needs: tcpdump, tcprewrite (tcpreplay), mergecap and capinfos (wireshark-common), setsid,
# /usr/bin/python3.  tcpdump on lo needs root.

# Process ids of the daemons and captures to stop on exit.  Each one leads its own session
# (setsid), so killing its process group also stops the children it forked.
recording_pids=()

# setup_recording: create $work and install the cleanup trap.
setup_recording() {
  work=$(mktemp -d /tmp/tollgate-record.XXXXXX)
  trap cleanup_recording EXIT
}

cleanup_recording() {
  local pid
  for pid in "${recording_pids[@]}"; do
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  done
  if [[ -n "${KEEP_WORK:-}" ]]; then
    echo "$0: kept the work folder $work" >&2
  else
    rm -rf "$work"
  fi
}

# forget_pid PID: drop PID from recording_pids once the process has exited.
forget_pid() {
  local pid kept=()
  for pid in "${recording_pids[@]}"; do
    [[ "$pid" == "$1" ]] || kept+=("$pid")
  done
  recording_pids=("${kept[@]}")
}

# free_port: print a TCP port on 127.0.0.1 that is free now.  Another process may take it
# before the caller binds it. Then the daemon fails to start and the script must be rerun.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT [SECONDS]: wait until 127.0.0.1:PORT accepts connections (default 5 s).
wait_port() {
  local port=$1 seconds=${2:-5} attempt
  for ((attempt = 0; attempt < seconds * 10; attempt++)); do
    if /usr/bin/python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port)))"; then
      return 0
    fi
    sleep 0.1
  done
  echo "$0: port $port did not open within $seconds s" >&2
  return 1
}

# start_daemon COMMAND [ARGS...]: run COMMAND in the background in its own session and stop it
# on exit.  Redirections on the call apply to the daemon.
start_daemon() {
  setsid "$@" &
  recording_pids+=("$!")
}

# start_capture NAME FILTER [BUFFER_KIB]: capture the packets on lo that match the pcap FILTER
# into $work/NAME.raw.pcap, with a kernel buffer of BUFFER_KIB KiB (default 16384), and return
# once tcpdump is capturing.
start_capture() {
  local name=$1 filter=$2 buffer_kib=${3:-16384} attempt
  local log="$work/$name.tcpdump.log"
  # -U alone only flushes the file per packet; without --immediate-mode the packets still in the
  # kernel's ring buffer when tcpdump stops are lost without being counted as dropped.
  setsid tcpdump -i lo --immediate-mode -U -B "$buffer_kib" -s 0 -w "$work/$name.raw.pcap" "$filter" 2>"$log" &
  capture_pid=$!
  recording_pids+=("$capture_pid")
  # tcpdump prints "listening on" once the filter is attached; allocating a large buffer takes
  # a while.
  for ((attempt = 0; attempt < 100; attempt++)); do
    grep -qs 'listening on' "$log" && break
    sleep 0.1
  done
  if ! grep -qs 'listening on' "$log"; then
    echo "$0: tcpdump for $name did not start within 10 s:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.5
}

# stop_capture NAME: stop the capture that start_capture NAME began, and exit with an error
# unless tcpdump reports 0 packets dropped by kernel.
stop_capture() {
  local name=$1
  local log="$work/$name.tcpdump.log"
  sleep 1
  kill -INT "$capture_pid"
  wait "$capture_pid" || true
  forget_pid "$capture_pid"
  if ! grep -q '^0 packets dropped by kernel' "$log"; then
    echo "$0: tcpdump dropped packets for $name:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# count_packets FILE: print the number of packets in a pcap file.
count_packets() {
  capinfos -M -c -T "$1" | tail -1 | cut -f2
}

# rewrite_by_port NAME OUTPUT SERVER_PORT SERVER_IP CLIENT_IP [SERVER_PORT SERVER_IP CLIENT_IP ...]
# Rewrite $work/NAME.raw.pcap into the pcap file OUTPUT so that the server of each connection to
# SERVER_PORT is SERVER_IP and its client is CLIENT_IP.  Every connection has 127.0.0.1 at both
# ends, so the capture is split per server port and direction, each part is rewritten with
# tcprewrite, and mergecap joins the parts by timestamp.  Exits with an error unless OUTPUT has
# as many packets as the capture, which fails when a packet matches no SERVER_PORT or two.
rewrite_by_port() {
  local name=$1 output=$2
  shift 2
  local raw="$work/$name.raw.pcap" parts=() index=0
  while (($# > 0)); do
    local port=$1 server_ip=$2 client_ip=$3
    shift 3
    local part="$work/$name.$index"
    tcpdump -r "$raw" -w "$part.to-server.pcap" "tcp dst port $port" 2>/dev/null
    tcpdump -r "$raw" -w "$part.to-client.pcap" "tcp src port $port" 2>/dev/null
    tcprewrite --fixcsum --srcipmap="127.0.0.1/32:$client_ip/32" --dstipmap="127.0.0.1/32:$server_ip/32" \
      -i "$part.to-server.pcap" -o "$part.a.pcap"
    tcprewrite --fixcsum --srcipmap="127.0.0.1/32:$server_ip/32" --dstipmap="127.0.0.1/32:$client_ip/32" \
      -i "$part.to-client.pcap" -o "$part.b.pcap"
    parts+=("$part.a.pcap" "$part.b.pcap")
    index=$((index + 1))
  done
  mergecap -F pcap -w "$output" "${parts[@]}"

  local raw_packets output_packets
  raw_packets=$(count_packets "$raw")
  output_packets=$(count_packets "$output")
  if [[ "$raw_packets" != "$output_packets" ]]; then
    echo "$0: $raw_packets packets captured for $name but $output_packets after rewriting" >&2
    exit 1
  fi
}
