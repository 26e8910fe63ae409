package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/rescue"
	"github.com/rewind-backup/rewind/internal/ui"
)

// newRescueCmd groups the commands about the rescue system recovery
// boots from (docs/RECOVERY.md).
func newRescueCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rescue",
		Short: "Build the rescue system a dead server boots to run rewind recover",
		Long: `The rescue system is a kernel and an initramfs (and an ISO) holding a static
rewind, busybox, the tools recover runs (sfdisk, mkfs.*, grub-install, ...)
and the kernel modules for disks, filesystems and network cards. It
configures the network by DHCP and then asks for the repository and its
password, or recovers unattended from a configuration file.
docs/RECOVERY.md says how to boot it.`,
		Example: `  rewind rescue build --out /srv/rescue
  rewind rescue build --out /srv/rescue --iso`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRescueBuildCmd(g))
	return cmd
}

func newRescueBuildCmd(g *globals) *cobra.Command {
	var opt rescue.Options
	cmd := &cobra.Command{
		Use:   "build --out DIR [--kernel FILE --modules DIR] [--config FILE] [--iso]",
		Short: "Build the rescue system: vmlinuz, initrd.img, README.txt and rescue.iso",
		Long: `Write the rescue system into DIR: vmlinuz, initrd.img (a gzipped cpio),
README.txt (how to boot it under QEMU, from USB or by PXE) and, with --iso,
rescue.iso, which boots with BIOS and UEFI (grub-mkrescue; Debian's
grub-common, xorriso, grub-pc-bin, grub-efi-amd64-bin and mtools).

The kernel is the running one (/boot/vmlinuz-$(uname -r) and
/lib/modules/$(uname -r)) unless --kernel and --modules name another, such
as a distribution kernel package unpacked with dpkg-deb -x.

The image holds this rewind program, which must be static: build it with
CGO_ENABLED=0 go build -o rewind ./cmd/rewind and run that one. Tools and
kernel modules this machine lacks are left out, each named in the output
and in the image's /etc/rescue-missing.

With --config FILE the rescue system runs rewind recover --config FILE on its
own when it boots; rewind.config=PATH on the kernel command line does the
same with another file (or an http:// URL).`,
		Example: `  rewind rescue build --out /srv/rescue
  rewind rescue build --out /srv/rescue --iso
  rewind rescue build --out /srv/rescue --kernel ./boot/vmlinuz-6.1.0-57-amd64 --modules ./lib/modules/6.1.0-57-amd64
  rewind rescue build --out /srv/rescue --config /etc/rewind/recover.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.Out == "" {
				return errors.New("rescue build: give the output folder with --out DIR")
			}
			opt.Log = func(format string, args ...any) { g.ui.Warnf(format+"\n", args...) }
			res, err := rescue.Build(cmd.Context(), opt)
			if err != nil {
				return fmt.Errorf("rescue build: %w", err)
			}
			if g.json {
				return g.ui.JSONDoc(rescueBuildJSON{Kernel: res.Kernel, Initrd: res.Initrd, ISO: res.ISO, Readme: res.Readme,
					InitrdBytes: res.InitrdBytes, ImageBytes: res.ImageBytes,
					Tools: nonNil(res.Tools), Modules: nonNil(res.Modules), Missing: nonNil(res.Missing)})
			}
			g.ui.Printf("kernel     %s\n", res.Kernel)
			g.ui.Printf("initramfs  %s (%s, %s unpacked; %s, %s)\n", res.Initrd, ui.Bytes(res.InitrdBytes), ui.Bytes(res.ImageBytes),
				ui.Count(int64(len(res.Tools)), "tool", "tools"), ui.Count(int64(len(res.Modules)), "module", "modules"))
			if res.ISO != "" {
				g.ui.Printf("ISO        %s\n", res.ISO)
			}
			g.ui.Printf("how to boot it: %s\n", res.Readme)
			if len(res.Missing) > 0 {
				g.ui.Printf("left out (not on this machine): %s\n", ui.Count(int64(len(res.Missing)), "part", "parts"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.Out, "out", "", "write the rescue system into `dir`")
	f.StringVar(&opt.Kernel, "kernel", "", "the kernel image `file` (default /boot/vmlinuz-$(uname -r))")
	f.StringVar(&opt.Modules, "modules", "", "the kernel's module `dir` (default /lib/modules/$(uname -r))")
	f.StringVar(&opt.Config, "config", "", "bake in this recover configuration `file`: the rescue system recovers unattended")
	f.BoolVar(&opt.ISO, "iso", false, "also make rescue.iso (needs grub-mkrescue and xorriso)")
	return cmd
}

// rescueBuildJSON is `rescue build --json` (docs/JSON.md).
type rescueBuildJSON struct {
	Kernel      string   `json:"kernel"`
	Initrd      string   `json:"initrd"`
	ISO         string   `json:"iso,omitempty"`
	Readme      string   `json:"readme"`
	InitrdBytes int64    `json:"initrd_bytes"`
	ImageBytes  int64    `json:"image_bytes"`
	Tools       []string `json:"tools"`
	Modules     []string `json:"modules"`
	Missing     []string `json:"missing"`
}

// nonNil makes an absent list an empty JSON array.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
