#!/usr/bin/env bash
# Record samples/vendor-night.pcap, the capture `tollgate sniff` reads when given no file.
#
# A night in a hospital network, played by real tools:
#   - a vendor (getscu, movescu and its own storescp) pulls four studies from the PACS
#     (dcmqrscp): studies 1 and 2 with C-GET, studies 3 and 4 with C-MOVE to the vendor's SCP;
#     124 instances and about 54 MB leave the PACS;
#   - the PACS pushes study 5 (6 instances) to the off-site archive (storescu to storescp);
#   - an inside workstation uploads two files to a cloud bucket named
#     mybucket.s3.amazonaws.com: 3 MB over HTTPS (curl, SNI from --resolve) and 1 MB over plain
#     HTTP with the User-Agent Debian's rclone 1.60 sends (`rclone/`).
#
# Everything runs on 127.0.0.1 inside a network namespace that this script creates, with the
# loopback MTU at 1500 and GSO off so the frames look like Ethernet frames, and the standard
# ports (104, 11112, 4242, 80, 443).  The capture is then rewritten offline with tcprewrite:
#   PACS 10.20.0.10, workstation 10.20.0.50, vendor 203.0.113.50, archive 192.0.2.40,
#   cloud bucket 203.0.113.80,
# and its timestamps are moved with editcap to start at 2024-11-16 02:14:00 UTC.
# samples/vendor-night.json lists what was sent, for the tests.
#
# Needs: dcmtk 3.6.7, tcpdump, tcprewrite, mergecap, editcap, capinfos, curl, openssl, iproute2,
# /usr/bin/python3 with pydicom 2.3.  Run as root.  Usage: [OUT_DIR=DIR] scripts/sample/record.sh
# OUT_DIR is where vendor-night.pcap and vendor-night.json go (default samples/).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/capture.sh
source "$here/../lib/capture.sh"
out=$(realpath -m "${OUT_DIR:-$repo/samples}")
netns=tollgate-sample-$$

# Re-run this script inside a fresh network namespace, then remove the namespace.
if [[ "${1:-}" != --inside ]]; then
  ip netns add "$netns"
  trap 'ip netns del "$netns"' EXIT
  ip netns exec "$netns" ip link set lo up mtu 1500 gso_max_size 1500 gso_max_segs 1
  ip netns exec "$netns" "$0" --inside
  exit
fi

pacs_ip=10.20.0.10
workstation_ip=10.20.0.50
vendor_ip=203.0.113.50
archive_ip=192.0.2.40
cloud_ip=203.0.113.80
start_time=2024-11-16T02:14:00Z

pacs_port=104
vendor_port=11112
archive_port=4242
pdu=16384

setup_recording
mkdir -p "$out"
/usr/bin/python3 "$here/make-datasets.py" "$work/datasets"
ds="$work/datasets"

# --- servers ------------------------------------------------------------------------------------
mkdir -p "$work/db" "$work/vendor-received" "$work/archive-received" "$work/got"
cat >"$work/dcmqrscp.cfg" <<CFG
NetworkTCPPort  = $pacs_port
MaxPDUSize      = $pdu
MaxAssociations = 16

HostTable BEGIN
vendor = (VENDOR, 127.0.0.1, $vendor_port)
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
PACS $work/db RW (200, 1024mb) ANY
AETable END
CFG
dcmqridx "$work/db" "$ds"/study-[1-4]/*.dcm
# dcmqrscp 3.6.7 crashes after its first association with --single-process: keep fork mode.
start_daemon dcmqrscp -c "$work/dcmqrscp.cfg"
start_daemon storescp --aetitle VENDOR --max-pdu "$pdu" --output-directory "$work/vendor-received" "$vendor_port"
start_daemon storescp --aetitle OFFSITE_ARCH --max-pdu "$pdu" --output-directory "$work/archive-received" "$archive_port"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=mybucket.s3.amazonaws.com' \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
# The bucket responds to PUT with 200, as in the recording committed in samples/.
start_daemon /usr/bin/python3 "$here/../lib/upload-server.py" --put-status 200 80
start_daemon /usr/bin/python3 "$here/../lib/upload-server.py" --put-status 200 443 "$work/cert.pem" "$work/key.pem"
for port in "$pacs_port" "$vendor_port" "$archive_port" 80 443; do
  wait_port "$port"
done

# --- capture ------------------------------------------------------------------------------------
# A 256 MiB kernel buffer, 16 times the fixtures' default: about 54 MB of DICOM crosses lo
# within seconds.
start_capture vendor-night tcp 262144

study_uid() { echo "1.2.826.0.1.3680043.10.998.1.$1"; }

# The vendor pulls studies 1 and 2 with C-GET and studies 3 and 4 with C-MOVE.
for study in 1 2; do
  getscu -aet VENDOR -aec PACS --max-pdu "$pdu" --output-directory "$work/got" -S \
    -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$(study_uid "$study")" 127.0.0.1 "$pacs_port"
done
for study in 3 4; do
  movescu -aet VENDOR -aec PACS -aem VENDOR --max-pdu "$pdu" -S \
    -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$(study_uid "$study")" 127.0.0.1 "$pacs_port"
done

# The PACS sends study 5 to the off-site archive.
storescu -aet PACS -aec OFFSITE_ARCH --max-pdu "$pdu" 127.0.0.1 "$archive_port" "$ds"/study-5/*.dcm

# The workstation uploads to a cloud bucket: HTTPS with curl, plain HTTP with rclone's agent.
head -c 3000000 /dev/urandom >"$work/pacs-export-1.zip"
head -c 1000000 /dev/urandom >"$work/pacs-export-2.zip"
curl -sS -k -o /dev/null --resolve mybucket.s3.amazonaws.com:443:127.0.0.1 \
  -T "$work/pacs-export-1.zip" https://mybucket.s3.amazonaws.com/exports/pacs-export-1.zip
curl -sS -o /dev/null -A rclone/ --resolve mybucket.s3.amazonaws.com:80:127.0.0.1 \
  -T "$work/pacs-export-2.zip" http://mybucket.s3.amazonaws.com/exports/pacs-export-2.zip

stop_capture vendor-night

# --- rewrite ------------------------------------------------------------------------------------
rewrite_by_port vendor-night "$work/merged.pcap" \
  "$pacs_port" "$pacs_ip" "$vendor_ip" \
  "$vendor_port" "$vendor_ip" "$pacs_ip" \
  "$archive_port" "$archive_ip" "$pacs_ip" \
  80 "$cloud_ip" "$workstation_ip" \
  443 "$cloud_ip" "$workstation_ip"

first=$(capinfos -a -T -r -S "$work/merged.pcap" | cut -f2 | cut -d. -f1)
shift_seconds=$(($(date -u -d "$start_time" +%s) - first))
editcap -F pcap -t "$shift_seconds" "$work/merged.pcap" "$out/vendor-night.pcap"

# --- expected results ---------------------------------------------------------------------------
/usr/bin/python3 - "$ds/manifest.json" "$out/vendor-night.json" "$work/got" \
  "$work/vendor-received" "$work/archive-received" <<PY
import json, sys
from pathlib import Path

manifest = json.loads(Path(sys.argv[1]).read_text())
received = {name: len(list(Path(path).iterdir())) for name, path in
            zip(("cGet", "cMove", "archive"), sys.argv[3:6])}

def study(number):
    return [m for m in manifest if m["studyInstanceUid"].endswith(f".1.{number}")]

facts = {
    "source": "scripts/sample/record.sh with $(storescu --version | head -1 | tr -d '$')",
    "start": "$start_time",
    "addresses": {
        "pacs": "$pacs_ip", "workstation": "$workstation_ip", "vendor": "$vendor_ip",
        "archive": "$archive_ip", "cloud": "$cloud_ip",
    },
    "ports": {"pacs": $pacs_port, "vendorScp": $vendor_port, "archive": $archive_port},
    "aeTitles": {"pacs": "PACS", "vendor": "VENDOR", "archive": "OFFSITE_ARCH"},
    "filesReceived": received,
    "cGet": [m for n in (1, 2) for m in study(n)],
    "cMove": [m for n in (3, 4) for m in study(n)],
    "archive": study(5),
    "http": [
        {"method": "PUT", "host": "mybucket.s3.amazonaws.com", "target": "/exports/pacs-export-2.zip",
         "userAgent": "rclone/", "bodyBytes": 1000000},
    ],
    "tls": [
        {"serverName": "mybucket.s3.amazonaws.com", "bodyBytes": 3000000},
    ],
}
Path(sys.argv[2]).write_text(json.dumps(facts, indent=2) + "\n")
PY
capinfos "$out/vendor-night.pcap" | grep -E 'Number of packets|File size|First packet|Last packet'
