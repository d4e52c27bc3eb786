#!/usr/bin/env bash
# Compare a fresh recording with the committed captures, for checking a change to a record.sh.
#
# Usage: scripts/compare-recording.sh KIND NEW_DIR
#   KIND     dicom, http, tls or smb (test/fixtures/KIND) or sample (samples/)
#   NEW_DIR  the OUT_DIR the record.sh run wrote to
#
# For every .pcap file in the committed folder, tshark lists the facts that must not change
# between recordings.  These are the TCP conversations by address pair, DICOM C-STORE requests
# and SOP Instance UIDs, HTTP requests and status codes, TLS server names and SMB2 file names.
# Ports and timings are left out because every recording draws new ones.  Exits 1 and prints a
# diff when the facts differ.
#
# Needs: tshark.  Does not need root.
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 dicom|http|tls|smb|sample NEW_DIR" >&2
  exit 2
fi
kind=$1
new_dir=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
case "$kind" in
  dicom | http | tls | smb) old_dir="$repo/test/fixtures/$kind" ;;
  sample) old_dir="$repo/samples" ;;
  *)
    echo "$0: invalid KIND '$kind': expected dicom, http, tls, smb or sample" >&2
    exit 2
    ;;
esac

# tshark ARGS...: tshark without name resolution and without its warning about running as root.
tshark() {
  command tshark -n "$@" 2> >(grep -v 'could be dangerous' >&2)
}

# server_ports FILE: the destination ports of connection-opening SYNs, one a line.
server_ports() {
  tshark -r "$1" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0' -T fields -e tcp.dstport | sort -un
}

# facts FILE: print the port-free facts of one capture.
facts() {
  local file=$1 port decode=()
  for port in $(server_ports "$file"); do
    case "$kind" in
      dicom) decode+=(-d "tcp.port==$port,dicom") ;;
      smb) decode+=(-d "tcp.port==$port,nbss") ;;
      http) decode+=(-d "tcp.port==$port,http") ;;
      sample) [[ "$port" == 80 || "$port" == 443 ]] || decode+=(-d "tcp.port==$port,dicom") ;;
    esac
  done

  echo "conversations:"
  tshark -r "$file" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0' -T fields -e ip.src -e ip.dst |
    sort | uniq -c
  case "$kind" in
    dicom | sample)
      local dicom
      dicom=$(tshark -r "$file" -o tcp.reassemble_out_of_order:TRUE "${decode[@]}" -Y dicom -O dicom -V)
      echo "C-STORE-RQ:"
      grep -cE '\(0000,0100\)\s+[0-9]+ Command Field\s+C-STORE-RQ$' <<<"$dicom" || true
      echo "SOP Instance UIDs:"
      sed -nE 's/.*\(0008,0018\)\s+[0-9]+ SOP Instance UID\s+(\[UI\] )?(\S+)$/\2/p' <<<"$dicom" | sort -u
      ;;
  esac
  case "$kind" in
    http | sample)
      # Sorted, because rclone sends its uploads in parallel.
      echo "HTTP requests:"
      tshark -r "$file" -o http.desegment_body:FALSE "${decode[@]}" -Y http.request -T fields \
        -e http.request.method -e http.host -e http.request.uri -e http.user_agent |
        sed -E 's/:[0-9]+\t/\t/' | sort
      echo "HTTP response status codes:"
      tshark -r "$file" -o http.desegment_body:FALSE "${decode[@]}" -Y http.response -T fields \
        -e http.response.code | sort | uniq -c
      ;;
  esac
  case "$kind" in
    tls | sample)
      echo "TLS server names:"
      tshark -r "$file" -Y 'tls.handshake.type == 1' -T fields -e tls.handshake.extensions_server_name
      ;;
  esac
  if [[ "$kind" == smb ]]; then
    echo "SMB2 file names:"
    tshark -r "$file" "${decode[@]}" -Y smb2 -T fields -e smb2.filename | tr ',' '\n' |
      sed '/^$/d' | sort -u
    echo "SMB2 encrypted messages:"
    tshark -r "$file" "${decode[@]}" -Y 'smb2.header.transform.nonce' | wc -l | sed 's/^[1-9][0-9]*$/some/'
  fi
}

status=0
for old in "$old_dir"/*.pcap; do
  name=${old##*/}
  new="$new_dir/$name"
  if [[ ! -f "$new" ]]; then
    echo "$0: $name is missing from $new_dir" >&2
    status=1
    continue
  fi
  old_facts=$(facts "$old")
  new_facts=$(facts "$new")
  if diff -u --label "committed $name" --label "new $name" <(echo "$old_facts") <(echo "$new_facts"); then
    echo "$name: same facts ($(wc -l <<<"$new_facts") lines)"
  else
    status=1
  fi
done
exit "$status"
