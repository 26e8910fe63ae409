package recovery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is an unattended recover configuration (`rewind recover
// --config FILE`): everything the command would otherwise take from
// flags or ask. A YAML file:
//
//	repository: sftp:backup@vault:/srv/rewind
//	password-file: /run/rewind/password
//	host: web1             # the newest snapshot of web1 with an inventory
//	snapshot: latest       # or an ID
//	disks: [/dev/vda]
//	map: |                 # optional, the --map format
//	  sda -> /dev/vda
//	boot-mode: uefi        # optional, bios or uefi; default: as recorded
//	root: /                # optional, the snapshot path of the system's root
//
// Flags given on the command line win over the file.
type Config struct {
	Repository      string   `yaml:"repository"`
	PasswordFile    string   `yaml:"password-file"`
	PasswordCommand string   `yaml:"password-command"`
	Host            string   `yaml:"host"`
	Snapshot        string   `yaml:"snapshot"`
	Disks           []string `yaml:"disks"`
	Map             string   `yaml:"map"`
	BootMode        string   `yaml:"boot-mode"`
	Root            string   `yaml:"root"`
}

// ParseConfig reads a recover configuration. Unknown keys are errors, so
// a misspelt one is not silently ignored.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("recover config: %w", err)
	}
	switch c.BootMode {
	case "", "bios", "uefi":
	default:
		return nil, fmt.Errorf("recover config: boot-mode %q: want bios or uefi", c.BootMode)
	}
	for _, d := range c.Disks {
		if !strings.HasPrefix(d, "/") {
			return nil, fmt.Errorf("recover config: disk %q: want a path such as /dev/vda", d)
		}
	}
	if c.Map != "" {
		if _, err := ParseMapping(strings.NewReader(c.Map)); err != nil {
			return nil, fmt.Errorf("recover config: %w", err)
		}
	}
	return &c, nil
}
