package recovery

import (
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/inventory"
)

func TestFixConfigs(t *testing.T) {
	uuids := map[string]string{"/dev/sda2": "UUID=r00t", "/dev/sda3": "UUID=5wap", "/dev/sda4": "UUID=cafe"}
	fstab := "# /dev/sda2 was here\n/dev/sda2\t/ ext4 defaults 0 1\nUUID=keep /home ext4 defaults 0 2\n/dev/sda3 none swap sw 0 0\n/dev/sdz1 /mnt auto noauto 0 0\n"
	out, ch := FixFstab(fstab, uuids)
	want := "# /dev/sda2 was here\nUUID=r00t\t/ ext4 defaults 0 1\nUUID=keep /home ext4 defaults 0 2\nUUID=5wap none swap sw 0 0\n/dev/sdz1 /mnt auto noauto 0 0\n"
	if out != want || len(ch) != 2 || ch[0] != "line 2: /dev/sda2 -> UUID=r00t" {
		t.Errorf("fstab:\n%s\nchanges %q", out, ch)
	}
	out, ch = FixCrypttab("sda4_crypt /dev/sda4 none luks\nother UUID=x none\n", uuids)
	if out != "sda4_crypt UUID=cafe none luks\nother UUID=x none\n" || len(ch) != 1 {
		t.Errorf("crypttab %q %q", out, ch)
	}
	out, ch = FixKernelArgs("linux /vmlinuz root=/dev/sda2 ro resume=/dev/sda3 quiet\nlinux /old root=/dev/sdz9\n", uuids)
	if out != "linux /vmlinuz root=UUID=r00t ro resume=UUID=5wap quiet\nlinux /old root=/dev/sdz9\n" || len(ch) != 2 {
		t.Errorf("grub.cfg %q %q", out, ch)
	}
}

func TestSfdiskScript(t *testing.T) {
	tb := &inventory.PartitionTable{Type: "gpt", ID: "D15C-GU1D", SectorSize: 4096, FirstLBA: 6, Partitions: []inventory.Partition{
		{Number: 1, Path: "/dev/vdb1", Start: 256, Size: 1024, Type: "T1", UUID: "U1", Name: `EFI "sys"`, Attrs: "RequiredPartition"},
		{Number: 2, Path: "/dev/vdb2", Start: 1280, Size: 4096, Type: "T2", Bootable: true},
	}}
	want := "label: gpt\nlabel-id: D15C-GU1D\nunit: sectors\nsector-size: 4096\nfirst-lba: 6\n\n" +
		"/dev/vdb1 : start=256, size=1024, type=T1, uuid=U1, name=\"EFI \\x22sys\\x22\", attrs=\"RequiredPartition\"\n" +
		"/dev/vdb2 : start=1280, size=4096, type=T2, bootable\n"
	if got := SfdiskScript(tb); got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
	tb.Type = "dos"
	if got := SfdiskScript(tb); strings.Contains(got, "uuid=") || strings.Contains(got, "first-lba") {
		t.Errorf("dos script:\n%s", got)
	}
}
