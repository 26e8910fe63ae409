package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The recovery tests' bootable "server": a sparse raw disk with a GPT of
// four partitions, always the same layout whatever the boot mode:
//
//	1 BIOS boot partition (1 MiB), GRUB's core image for BIOS
//	2 EFI system partition (vfat, ServerESPLabel), EFI/BOOT/BOOTX64.EFI for UEFI
//	3 swap (ServerSwapLabel)
//	4 ext4 root (ServerRootLabel), the rest of the disk: the last
//	  partition, so a recovery onto another disk size grows or shrinks it
//
// The root holds Debian's kernel (scripts/guest-kernel.sh) and an
// initramfs written here, a busybox userland, /etc/fstab (UUID= entries
// for /, /boot/efi and swap), /etc/hostname, /boot/grub/grub.cfg and
// /srv/www/index.html. Its init prints ServerUp and the hostname on the
// serial console, mounts fstab, brings up eth0 (10.0.2.15/24, QEMU's user
// network), starts busybox httpd on port 80, prints ServerReady and then
// reads commands from the console (see serverInit).
//
// The disk is built without mounting anything or attaching a loop device
// (mkfs.ext4 -d and -E offset, mkfs.vfat --offset, mtools, mkswap on a
// side file), and GRUB goes in through grub-mkimage (see servergrub.go):
// grub-install needs the target mounted, which is what `rewind recover`
// itself does on a recovered disk.
const (
	ServerHostname  = "rewind-srv"
	ServerRootLabel = "srv-root"
	ServerESPLabel  = "SRV-ESP"
	ServerSwapLabel = "srv-swap"
	// ServerUp starts the first line the server's own init prints:
	// "REWIND-SERVER-UP rewind-srv".
	ServerUp = "REWIND-SERVER-UP"
	// ServerFstab is printed with "ok" when mount -a and swapon -a
	// succeeded (every fstab entry is mounted), else with "failed".
	ServerFstab = "REWIND-SERVER-FSTAB"
	// ServerReady follows once httpd listens on port 80.
	ServerReady    = "REWIND-SERVER-READY"
	ServerPoweroff = "REWIND-SERVER-POWEROFF"
	// ServerDefaultToken is index.html's content unless
	// ServerOptions.Token says otherwise.
	ServerDefaultToken = "rewind-server-token-1"
	// ServerDefaultSize is the disk's size unless ServerOptions.SizeBytes
	// says otherwise.
	ServerDefaultSize = 512 << 20
	// ServerDataLabel is the ext4 label of the data disk's one
	// partition (ServerOptions.DataDiskBytes), mounted at
	// ServerDataMount by the server's fstab.
	ServerDataLabel = "srv-data"
	ServerDataMount = "/srv/data"
	// ServerDataFile is the URL path of the file on the data disk, which
	// httpd serves: /srv/www/data.txt is a symlink to
	// ServerDataMount/data.txt.
	ServerDataFile = "/data.txt"
	// ServerDefaultDataToken is data.txt's content unless
	// ServerOptions.DataToken says otherwise.
	ServerDefaultDataToken = "rewind-server-data-1"
	// ServerRegenerated is the file the server's update-initramfs
	// stand-in writes (see serverUpdateInitramfs).
	ServerRegenerated = "/boot/initramfs-regenerated"
)

// The server's fixed identifiers, the same on every build so a test can
// check that a recovery kept them.
const (
	ServerDiskGUID = "8d1c2f5e-0b0a-4c6e-9a11-5e5e00000000"
	ServerRootUUID = "5e5e5e5e-0004-4000-8000-000000000004"
	ServerSwapUUID = "5e5e5e5e-0003-4000-8000-000000000003"
	// The data disk's GPT GUID, its partition's UUID and its ext4 UUID.
	ServerDataDiskGUID = "8d1c2f5e-0b0a-4c6e-9a11-5e5ed0000000"
	ServerDataPartUUID = "5e5ed001-0000-4000-8000-000000000001"
	ServerDataUUID     = "5e5ed0d0-0001-4000-8000-000000000001"
	// ServerESPUUID is the vfat volume ID as blkid and fstab show it.
	ServerESPUUID = "5E5E-0002"
)

// ServerPartUUIDs are the GPT partition UUIDs, partition 1 first.
var ServerPartUUIDs = [4]string{
	"5e5e0001-0000-4000-8000-000000000001",
	"5e5e0002-0000-4000-8000-000000000002",
	"5e5e0003-0000-4000-8000-000000000003",
	"5e5e0004-0000-4000-8000-000000000004",
}

// GPT partition type GUIDs of the server's partitions, partition 1 first.
var ServerPartTypes = [4]string{
	"21686148-6449-6e6f-744e-656564454649", // BIOS boot
	"c12a7328-f81f-11d2-ba4b-00a0c93ec93b", // EFI system
	"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", // Linux swap
	"0fc63daf-8483-4772-8e79-3d69d8477de4", // Linux filesystem
}

// Partition places in 512-byte sectors; the root takes the rest.
const (
	serverBIOSStart = 2048
	serverBIOSSize  = 2048
	serverESPStart  = serverBIOSStart + serverBIOSSize
	serverESPSize   = 32 << 20 / 512
	serverSwapStart = serverESPStart + serverESPSize
	serverSwapSize  = 16 << 20 / 512
	serverRootStart = serverSwapStart + serverSwapSize
	// serverGPTTail is the backup GPT at the disk's end (header and
	// 128 entries), which the root must leave free.
	serverGPTTail = 33
)

// serverVersion changes when the builder changes what it builds.
const serverVersion = "4"

// ServerOptions say which server to build.
type ServerOptions struct {
	// Mode is "bios" (GRUB's core image in the BIOS boot partition and
	// boot code in the MBR) or "uefi" (EFI/BOOT/BOOTX64.EFI on the ESP).
	Mode string
	// SizeBytes is the disk's size, ServerDefaultSize when 0; at least
	// 128 MiB.
	SizeBytes int64
	// Token is /srv/www/index.html's content (GET / returns it),
	// ServerDefaultToken when empty.
	Token string
	// DataDiskBytes, when not 0, adds a second disk (ServerDisk.DataPath,
	// a whole number of MiB, at least 16 MiB): a GPT of one ext4
	// partition (ServerDataLabel, ServerDataUUID) that the root's fstab
	// mounts at ServerDataMount by UUID=, holding data.txt with
	// DataToken, served as ServerDataFile. Without it the server is the
	// one-disk server, byte for byte.
	DataDiskBytes int64
	// DataToken is data.txt's content, ServerDefaultDataToken when empty.
	DataToken string
}

// ServerDisk is a built server disk, a private copy for one test.
type ServerDisk struct {
	Path      string // raw, sparse
	Mode      string
	SizeBytes int64
	Token     string
	// DataPath is the data disk (raw, sparse) when
	// ServerOptions.DataDiskBytes asked for one, else empty.
	DataPath  string
	DataToken string
	// Kernel is the kernel's version ("6.1.0-57-amd64"): /boot holds
	// vmlinuz-Kernel and initrd.img-Kernel.
	Kernel string
}

// serverCache holds the cached disks built by this test binary, by key.
var serverCache struct {
	sync.Mutex
	built map[string]serverBuilt
}

type serverBuilt struct{ path, dataPath, kernel string }

// BuildServerDisk builds the server disk of opt (or finds it in the cache
// ${XDG_CACHE_HOME:-~/.cache}/rewind-test/server/, keyed by everything
// that goes into it) and gives the test its own sparse copy in
// t.TempDir(). It needs what scripts/qemu.sh and scripts/recovery.sh
// install (busybox-static, e2fsprogs, dosfstools, mtools, grub-pc-bin or
// grub-efi-amd64-bin, grub-common) and the kernel of
// scripts/guest-kernel.sh; without them the test is skipped, or failed
// under CI=true. It needs no root.
func BuildServerDisk(t testing.TB, opt ServerOptions) *ServerDisk {
	t.Helper()
	d, err := BuildServerDiskAt(t.TempDir(), opt)
	var m *missingError
	if errors.As(err, &m) {
		unavailable(t, "server disk: %v", err)
	}
	if err != nil {
		t.Fatalf("server disk: %v", err)
	}
	return d
}

// BuildServerDiskAt is BuildServerDisk outside a test (the bench): the
// copy is written in dir as server-MODE.img.
func BuildServerDiskAt(dir string, opt ServerOptions) (*ServerDisk, error) {
	opt, err := opt.normal()
	if err != nil {
		return nil, err
	}
	b, err := cachedServer(opt)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "server-"+opt.Mode+".img")
	if out, err := exec.Command("cp", "--sparse=always", "--reflink=auto", b.path, path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy the server disk: %v: %s", err, out)
	}
	d := &ServerDisk{Path: path, Mode: opt.Mode, SizeBytes: opt.SizeBytes, Token: opt.Token, Kernel: b.kernel}
	if b.dataPath != "" {
		d.DataPath, d.DataToken = filepath.Join(dir, "server-"+opt.Mode+"-data.img"), opt.DataToken
		if out, err := exec.Command("cp", "--sparse=always", "--reflink=auto", b.dataPath, d.DataPath).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("copy the server's data disk: %v: %s", err, out)
		}
	}
	return d, nil
}

func (o ServerOptions) normal() (ServerOptions, error) {
	if o.Mode != "bios" && o.Mode != "uefi" {
		return o, fmt.Errorf("server mode %q: want bios or uefi", o.Mode)
	}
	if o.SizeBytes == 0 {
		o.SizeBytes = ServerDefaultSize
	}
	if o.SizeBytes < 128<<20 || o.SizeBytes%(1<<20) != 0 {
		return o, fmt.Errorf("server disk size %d: want a whole number of MiB, at least 128 MiB", o.SizeBytes)
	}
	if o.Token == "" {
		o.Token = ServerDefaultToken
	}
	if o.DataDiskBytes != 0 {
		if o.DataDiskBytes < 16<<20 || o.DataDiskBytes%(1<<20) != 0 {
			return o, fmt.Errorf("server data disk size %d: want a whole number of MiB, at least 16 MiB", o.DataDiskBytes)
		}
		if o.DataToken == "" {
			o.DataToken = ServerDefaultDataToken
		}
	}
	return o, nil
}

// cachedServer returns the cached disk of opt, built when missing.
func cachedServer(opt ServerOptions) (serverBuilt, error) {
	in, err := serverInputs(opt)
	if err != nil {
		return serverBuilt{}, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%d|%q|", serverVersion, opt.Mode, opt.SizeBytes, opt.Token)
	if opt.DataDiskBytes != 0 {
		fmt.Fprintf(h, "data|%d|%q|%s|", opt.DataDiskBytes, opt.DataToken, serverFstab(true))
	}
	in.hash(h)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	serverCache.Lock()
	defer serverCache.Unlock()
	if b, ok := serverCache.built[key]; ok {
		return b, nil
	}
	dir := filepath.Join(testCacheDir(), "server")
	path := filepath.Join(dir, "server-"+opt.Mode+"-"+key+".img")
	b := serverBuilt{path: path, kernel: in.kernel}
	if opt.DataDiskBytes != 0 {
		b.dataPath = strings.TrimSuffix(path, ".img") + "-data.img"
	}
	_, err = os.Stat(path)
	if err == nil && b.dataPath != "" {
		_, err = os.Stat(b.dataPath)
	}
	if err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return b, err
		}
		work, err := os.MkdirTemp(dir, ".build-")
		if err != nil {
			return b, err
		}
		defer os.RemoveAll(work)
		disk := filepath.Join(work, "disk.img")
		if err := buildServer(work, disk, opt, in); err != nil {
			return b, err
		}
		// A rename is atomic: parallel test binaries build the same file.
		// The data disk goes first: the root's presence says both are.
		if b.dataPath != "" {
			data := filepath.Join(work, "data.img")
			if err := buildServerData(work, data, opt, in); err != nil {
				return b, err
			}
			if err := os.Rename(data, b.dataPath); err != nil {
				return b, err
			}
		}
		if err := os.Rename(disk, path); err != nil {
			return b, err
		}
	}
	if serverCache.built == nil {
		serverCache.built = map[string]serverBuilt{}
	}
	serverCache.built[key] = b
	return b, nil
}
