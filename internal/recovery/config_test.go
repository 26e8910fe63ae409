package recovery

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte("repository: /srv/repo\npassword-file: /run/pw\nhost: web1\ndisks: [/dev/vda, /dev/vdb]\nmap: |\n  sda -> /dev/vda\nboot-mode: uefi\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Repository != "/srv/repo" || c.PasswordFile != "/run/pw" || c.Host != "web1" || len(c.Disks) != 2 || c.BootMode != "uefi" || !strings.Contains(c.Map, "sda -> /dev/vda") {
		t.Errorf("%+v", c)
	}
	for _, bad := range []string{"disk: /dev/vda\n", "boot-mode: efi\n", "disks: [vda]\n", "map: sda /dev/vda\n", "disks: 3: 4\n"} {
		if _, err := ParseConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), "recover config") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("repository: /srv/repo\ndisks: [/dev/vda]\nboot-mode: bios\n"))
	f.Add([]byte("map: |\n  sda -> /dev/vdb\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err == nil && c.BootMode != "" && c.BootMode != "bios" && c.BootMode != "uefi" {
			t.Errorf("boot mode %q accepted", c.BootMode)
		}
	})
}
