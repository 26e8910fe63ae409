package rescue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rewind-backup/rewind/internal/kmod"
	"github.com/rewind-backup/rewind/internal/recovery"
)

// Options say what to build.
type Options struct {
	// Out is the folder the files are written to (made when missing).
	Out string
	// Kernel is the kernel image; Modules its module tree
	// (lib/modules/VERSION). Both default to the running kernel's.
	Kernel, Modules string
	// Rewind is the rewind program put in the image; it must be static.
	// Default: the running program.
	Rewind string
	// Busybox is a static busybox (default /bin/busybox).
	Busybox string
	// Config is a recover configuration baked in as ConfigPath, so the
	// rescue system recovers unattended.
	Config string
	// ISO also makes rescue.iso with grub-mkrescue.
	ISO bool
	// Log receives one line per notable step or missing part.
	Log func(format string, args ...any)
}

// Result says what was built.
type Result struct {
	Kernel, Initrd, ISO, Readme string
	// InitrdBytes is the compressed size; ImageBytes the unpacked files.
	InitrdBytes, ImageBytes int64
	// Tools and Modules are what the image holds; Missing what the host
	// could not provide ("tool mkfs.xfs", "module r8169").
	Tools, Modules, Missing []string
}

// ErrNoKernel: the running kernel's image or modules are not readable.
var ErrNoKernel = errors.New("no kernel to put in the rescue image")

// StaticHint says how to build the static rewind the image needs.
const StaticHint = "build a static rewind with `CGO_ENABLED=0 go build -o rewind ./cmd/rewind` and run that one"

// Build makes the rescue system in opt.Out: vmlinuz, initrd.img,
// README.txt and, with opt.ISO, rescue.iso.
func Build(ctx context.Context, opt Options) (*Result, error) {
	logf := opt.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opt.Out == "" {
		return nil, errors.New("rescue: no output folder (--out DIR)")
	}
	if err := defaults(&opt); err != nil {
		return nil, err
	}
	if err := CheckStatic(opt.Rewind); err != nil {
		if errors.Is(err, ErrNotStatic) {
			return nil, fmt.Errorf("the rescue image needs a static rewind, and %s is linked dynamically: %s", opt.Rewind, StaticHint)
		}
		return nil, fmt.Errorf("the rewind program to put in the image: %w", err)
	}
	if err := CheckStatic(opt.Busybox); err != nil {
		return nil, fmt.Errorf("busybox: %w (install Debian's busybox-static, which provides a static /bin/busybox)", err)
	}
	var iso *isoTools
	if opt.ISO {
		t, err := findISOTools()
		if err != nil {
			return nil, err
		}
		iso = t
	}
	var cfg []byte
	var cfgPassword string
	if opt.Config != "" {
		b, err := os.ReadFile(opt.Config)
		if err != nil {
			return nil, fmt.Errorf("recover configuration: %w", err)
		}
		c, err := recovery.ParseConfig(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opt.Config, err)
		}
		cfg, cfgPassword = b, c.PasswordFile
	}
	tree, err := kmod.Open(opt.Modules)
	if err != nil {
		return nil, fmt.Errorf("%w: %v; pass --kernel FILE and --modules DIR", ErrNoKernel, err)
	}
	res := &Result{}
	im := newImage()
	if err := addBase(im, opt, cfg); err != nil {
		return nil, err
	}
	if cfgPassword != "" {
		// The configuration's password file goes along when this machine
		// has it; else the rescue system must find it at boot.
		if err := im.copyFile(cfgPassword, cfgPassword); err != nil {
			logf("the configuration's password-file %s is not copied into the image (%v): it must exist when the rescue system runs recover", cfgPassword, err)
		} else {
			im.chmod(cfgPassword, 0o600)
			logf("the configuration's password-file %s is in the image: keep the image as safe as the password", cfgPassword)
		}
	}
	missing := func(what string) {
		res.Missing = append(res.Missing, what)
		logf("not in the image: %s", what)
	}
	if err := addTools(im, res, missing); err != nil {
		return nil, err
	}
	if err := addModules(ctx, im, tree, res, missing); err != nil {
		return nil, err
	}
	for _, f := range ExtraFiles {
		if _, err := os.Stat(f); err != nil {
			missing("file " + f)
			continue
		}
		if err := im.copyFile(f, f); err != nil {
			return nil, err
		}
	}
	sort.Strings(res.Missing)
	if len(res.Missing) > 0 {
		im.file("/etc/rescue-missing", 0o644, []byte(strings.Join(res.Missing, "\n")+"\n"))
	}
	initrd, err := im.cpioGzip()
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	res.ImageBytes = im.size
	res.InitrdBytes = int64(len(initrd))
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, err
	}
	res.Kernel = filepath.Join(opt.Out, "vmlinuz")
	res.Initrd = filepath.Join(opt.Out, "initrd.img")
	res.Readme = filepath.Join(opt.Out, "README.txt")
	k, err := os.ReadFile(opt.Kernel)
	if err != nil {
		return nil, fmt.Errorf("%w: %v; pass --kernel FILE and --modules DIR", ErrNoKernel, err)
	}
	if err := writeFile(res.Kernel, k); err != nil {
		return nil, err
	}
	if err := writeFile(res.Initrd, initrd); err != nil {
		return nil, err
	}
	if iso != nil {
		res.ISO = filepath.Join(opt.Out, "rescue.iso")
		if err := iso.build(ctx, res.Kernel, res.Initrd, res.ISO); err != nil {
			return nil, err
		}
	}
	if err := writeFile(res.Readme, []byte(readme(res))); err != nil {
		return nil, err
	}
	return res, nil
}

// defaults fills in the running kernel, the running program and busybox.
func defaults(opt *Options) error {
	if opt.Busybox == "" {
		opt.Busybox = "/bin/busybox"
	}
	if _, err := os.Stat(opt.Busybox); err != nil {
		return fmt.Errorf("busybox: %w (install Debian's busybox-static)", err)
	}
	if opt.Rewind == "" {
		p, err := os.Executable()
		if err != nil {
			return fmt.Errorf("the running rewind program: %w", err)
		}
		opt.Rewind = p
	}
	if opt.Kernel == "" || opt.Modules == "" {
		rel, err := kernelRelease()
		if err != nil {
			return err
		}
		if opt.Kernel == "" {
			opt.Kernel = "/boot/vmlinuz-" + rel
		}
		if opt.Modules == "" {
			opt.Modules = "/lib/modules/" + rel
		}
	}
	for _, p := range []string{opt.Kernel, opt.Modules} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: %s is missing; pass --kernel FILE and --modules DIR (a distribution kernel, e.g. Debian's linux-image-amd64, unpacked: boot/vmlinuz-VERSION and lib/modules/VERSION)", ErrNoKernel, p)
		}
	}
	return nil
}

// kernelRelease is uname -r.
func kernelRelease() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "", fmt.Errorf("the running kernel's release: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// addBase puts init, busybox with its applet links, rewind, the
// configuration files and the device nodes init needs before devtmpfs.
func addBase(im *image, opt Options, cfg []byte) error {
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/mnt", "/root", "/etc/rewind", "/usr/local/bin", "/var/log"} {
		im.dir(d, 0o755)
	}
	im.dir("/tmp", 0o1777)
	im.charDev("/dev/console", 0o600, 5, 1)
	im.charDev("/dev/null", 0o666, 1, 3)
	im.file("/init", 0o755, []byte(initScript))
	im.file("/usr/share/udhcpc/default.script", 0o755, []byte(dhcpScript))
	im.file(recoverScriptPath, 0o755, []byte(recoverScript))
	im.file("/etc/motd", 0o644, []byte(motd))
	im.file("/etc/profile", 0o644, []byte(profile))
	im.file("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	im.file("/etc/group", 0o644, []byte("root:x:0:\n"))
	im.file("/etc/hosts", 0o644, []byte("127.0.0.1 localhost rescue\n::1 localhost\n"))
	im.file("/etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n"))
	im.file("/etc/hostname", 0o644, []byte("rescue\n"))
	// what mke2fs and others read to know what is mounted
	im.symlink("/etc/mtab", "/proc/self/mounts")
	if cfg != nil {
		im.file(ConfigPath, 0o600, cfg)
	}
	if err := im.copyFile(opt.Rewind, "/usr/local/bin/rewind"); err != nil {
		return fmt.Errorf("rewind program: %w", err)
	}
	if err := im.copyFile(opt.Busybox, "/bin/busybox"); err != nil {
		return fmt.Errorf("busybox: %w", err)
	}
	out, err := exec.Command(opt.Busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, l := range strings.Fields(string(out)) {
		// "usr/sbin/chroot": the links are made after the tools, where
		// no tool took the name (see links).
		im.pending = append(im.pending, "/"+l)
	}
	return nil
}

// addTools copies the tools recover needs with their libraries, GRUB's
// platform folders, and busybox's applet links where no tool is.
func addTools(im *image, res *Result, missing func(string)) error {
	names := map[string]bool{}
	withLibs := func(p string) error {
		libs, err := Libraries(p, LibDirs)
		if err != nil {
			return err
		}
		for _, l := range libs {
			if err := im.copyLib(l); err != nil {
				return err
			}
		}
		return nil
	}
	for _, t := range Tools {
		p := lookTool(t)
		if p == "" {
			missing("tool " + t)
			continue
		}
		if err := im.copyFile(p, p); err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		names[t] = true
		res.Tools = append(res.Tools, t)
		if IsELF(p) {
			if err := withLibs(p); err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
		}
	}
	for _, d := range GrubDirs {
		if _, err := os.Stat(d); err != nil {
			missing("folder " + d)
			continue
		}
		progs, err := im.copyTree(d)
		if err != nil {
			return err
		}
		// Debian keeps grub-bios-setup here, outside $PATH.
		for _, p := range progs {
			if err := withLibs(p); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	// busybox's applets, where a real tool does not stand (the real
	// mount and losetup know more than busybox's).
	for _, l := range im.pending {
		if names[filepath.Base(l)] || im.has(l) {
			continue
		}
		im.symlink(l, "/bin/busybox")
	}
	return nil
}

// addModules copies the kernel modules with the two orders to load
// them in: devices, then filesystems (their dependencies not loaded
// with the devices).
func addModules(ctx context.Context, im *image, tree *kmod.Tree, res *Result, missing func(string)) error {
	present := func(names []string) []string {
		var out []string
		for _, m := range names {
			switch {
			case tree.Builtin(m):
			case tree.Has(m):
				out = append(out, m)
			default:
				missing("module " + m)
			}
		}
		return out
	}
	dev := present(DeviceModules)
	fs := present(LaterModules)
	first, err := tree.Order(ctx, dev)
	if err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	all, err := tree.Order(ctx, append(dev, fs...))
	if err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	inFirst := map[string]bool{}
	var order, later []string
	for _, m := range first {
		inFirst[m.Name] = true
		order = append(order, m.Name+".ko")
	}
	for _, m := range all {
		if !inFirst[m.Name] {
			later = append(later, m.Name+".ko")
		}
	}
	for _, m := range all {
		b, err := m.Read(ctx)
		if err != nil {
			return err
		}
		im.file(modulesDir+"/"+m.Name+".ko", 0o644, b)
		res.Modules = append(res.Modules, m.Name)
	}
	im.file(modulesDir+"/load.order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	im.file(modulesDir+"/load-later.order", 0o644, []byte(strings.Join(later, "\n")+"\n"))
	return nil
}

func writeFile(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
