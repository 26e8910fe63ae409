#!/bin/bash
# Measures device/image backups (docs/IMAGES.md, "Measured"), as root:
#   REWIND=./rewind DATA=.../image/disk.img bash scripts/image-measure.sh
# The timings are printed as the last line of each $W/*.json.
# ext4 bitmap incremental vs restic, and
# full-read stored vs changed bytes on the mkdata image set.
set -e
B=${REWIND:-rewind}
W=${WORK:-/var/tmp/rwimg/w}
DATA=${DATA:-/var/tmp/rwbench-data/pristine/image/disk.img}
rm -rf $W; mkdir -p $W
export REWIND_PASSWORD=bench RESTIC_PASSWORD=bench
t() { local s=$(date +%s.%N); "$@"; local e=$(date +%s.%N); echo "$(echo "$e - $s" | bc)"; }
summary() { grep '"message_type":"summary"' | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); im=d.get("image",{}); print("read",im.get("bytes_read"),"method",im.get("method"),"changed_blocks",im.get("blocks_changed"),"added",d["data_added"],"packed",d["data_added_packed"])'; }

# 1. ext4 image, 2 GiB, 1 GiB of data.
img=$W/ext4.img
truncate -s 2G $img
mkfs.ext4 -q -F -b 4096 -E nodiscard $img
mkdir -p $W/mnt
mount -o loop $img $W/mnt
head -c 1G $DATA > $W/mnt/data.bin
mkdir $W/mnt/etc; cp -r /usr/share/doc $W/mnt/etc/ 2>/dev/null || true
umount $W/mnt
used=$(dumpe2fs -h $img 2>/dev/null | awk '/^Block count/{c=$3}/^Free blocks/{f=$3}END{print (c-f)*4096}')
echo "ext4 image 2 GiB, used $used"
$B init -r $W/repo >/dev/null
restic init -r $W/restic -q
echo "rewind first: $(t $B backup -r $W/repo --json --image $img > $W/r1.json) s; $(summary < $W/r1.json)"
echo "restic first: $(t restic -r $W/restic backup -q $img) s"
# 1% of the image (21 MiB) changed inside the file, in 64 KiB runs.
mount -o loop $img $W/mnt
python3 - $W/mnt/data.bin <<'PY'
import os, random, sys
f = os.open(sys.argv[1], os.O_WRONLY); r = random.Random(1)
size = os.fstat(f).st_size
for i in range((2<<30)//100//65536):
    os.pwrite(f, os.urandom(65536), r.randrange(0, size-65536)//4096*4096)
os.close(f)
PY
umount $W/mnt
used=$(dumpe2fs -h $img 2>/dev/null | awk '/^Block count/{c=$3}/^Free blocks/{f=$3}END{print (c-f)*4096}')
echo "after 1%: used $used"
echo "rewind incremental: $(t $B backup -r $W/repo --json --image $img > $W/r2.json) s; $(summary < $W/r2.json)"
echo "restic incremental: $(t restic -r $W/restic backup -q $img) s"
echo "rewind incremental full-read: $(t $B backup -r $W/repo --json --full-read --image $img > $W/r3.json) s; $(summary < $W/r3.json)"

# 2. full read on the mkdata image set, 1% mutated, block sizes.
cp --sparse=always $DATA $W/disk.img
for bs in 1M 64K; do
  rm -rf $W/repo-$bs; $B init -r $W/repo-$bs >/dev/null
  echo "mkdata image bs=$bs first: $(t $B backup -r $W/repo-$bs --json --block-size $bs --image $W/disk.img > $W/f1-$bs.json) s; $(summary < $W/f1-$bs.json)"
done
python3 - $W/disk.img <<'PY'
import os, random, sys
f = os.open(sys.argv[1], os.O_WRONLY); r = random.Random(2)
size = os.fstat(f).st_size
for i in range(size//100//65536):
    os.pwrite(f, os.urandom(65536), r.randrange(0, size-65536)//4096*4096)
os.close(f)
print("changed bytes", size//100//65536*65536)
PY
for bs in 1M 64K; do
  echo "mkdata image bs=$bs after 1%: $(t $B backup -r $W/repo-$bs --json --block-size $bs --image $W/disk.img > $W/f2-$bs.json) s; $(summary < $W/f2-$bs.json)"
done
rm -rf $W/restic $W/repo-* $W/disk.img
