#!/bin/bash
# Measures backup --qemu-qmp (docs/IMAGES.md, "Running QEMU guests"):
#   REWIND=./rewind DATA=.../image/disk.img bash scripts/qemu-dirty-measure.sh
# A 2 GiB drive (the mkdata image set as qcow2) in a running QEMU with no
# guest; 1% of it (21.4 MB) rewritten through QEMU in 64 KiB writes at
# random 4 KiB-aligned offsets; then the incremental by dirty bitmap,
# against restic's backup of the same image file changed the same way.
set -e
B=${REWIND:-rewind}
W=${WORK:-/var/tmp/rwqemu/w}
DATA=${DATA:-/var/tmp/rwbench-data/pristine/image/disk.img}
rm -rf $W; mkdir -p $W
export REWIND_PASSWORD=bench RESTIC_PASSWORD=bench
# t FILE CMD...: runs CMD with its output into FILE, prints the seconds.
t() { local f=$1; shift; local s=$(date +%s.%N); "$@" > $f; local e=$(date +%s.%N); echo "$e - $s" | bc; }
summary() { grep '"message_type":"summary"' | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); im=d.get("image",{}); print("read",im.get("bytes_read"),"method",im.get("method"),"clean",im.get("bytes_clean"),"changed_blocks",im.get("blocks_changed"),"added",d["data_added"])'; }

qemu-img convert -f raw -O qcow2 $DATA $W/disk.qcow2
cp --sparse=always $DATA $W/disk.raw
qemu-system-x86_64 -nodefaults -display none -machine none -accel tcg \
  -qmp unix:$W/qmp.sock,server=on,wait=off -qmp unix:$W/mon.sock,server=on,wait=off \
  -drive if=none,id=drive0,format=qcow2,file=$W/disk.qcow2 >/dev/null 2>&1 & QPID=$!
trap 'kill $QPID 2>/dev/null' EXIT
while [ ! -S $W/mon.sock ]; do sleep 0.1; done
$B init -r $W/repo >/dev/null
restic init -r $W/restic -q
echo "rewind first: $(t $W/r1.json $B backup -r $W/repo --json --qemu-qmp $W/qmp.sock drive0) s; $(summary < $W/r1.json)"
echo "restic first: $(t /dev/null restic -r $W/restic backup -q $W/disk.raw) s"
# The same 1% rewritten in the drive (through QEMU, which marks the
# bitmap) and in the raw file restic reads.
python3 - $W/mon.sock $W/disk.raw <<'PY'
import json, os, random, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
def cmd(c, a=None):
    f.write(json.dumps({"execute": c, "arguments": a} if a else {"execute": c}) + "\n"); f.flush()
    while True:
        m = json.loads(f.readline())
        if "return" in m or "error" in m:
            return m
f.readline(); cmd("qmp_capabilities")
raw = os.open(sys.argv[2], os.O_WRONLY); r = random.Random(3)
size = 2 << 30; n = size // 100 // 65536
for i in range(n):
    off = r.randrange(0, size - 65536) // 4096 * 4096; p = i % 255 + 1
    m = cmd("human-monitor-command", {"command-line": 'qemu-io drive0 "write -P %d %d 65536"' % (p, off)})
    assert m.get("return") == "", m
    os.pwrite(raw, bytes([p]) * 65536, off)
cmd("human-monitor-command", {"command-line": "qemu-io drive0 flush"})
print("changed bytes", n * 65536)
PY
echo "rewind incremental: $(t $W/r2.json $B backup -r $W/repo --json --qemu-qmp $W/qmp.sock drive0) s; $(summary < $W/r2.json)"
echo "restic incremental: $(t /dev/null restic -r $W/restic backup -q $W/disk.raw) s"
id=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if "summary" in l][0]["snapshot_id"])' $W/r2.json)
$B restore -r $W/repo $id --image $W/restored.raw >/dev/null
qemu-img convert -U -f qcow2 -O raw $W/disk.qcow2 $W/now.raw
cmp $W/restored.raw $W/now.raw && echo "restore of the incremental: identical to the drive"
kill $QPID; wait $QPID 2>/dev/null || true
rm -rf $W
