package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newGenerateCmd() *cobra.Command {
	var man, bash, zsh, fish string
	cmd := &cobra.Command{
		Use:   "generate [--man DIR] [--bash-completion FILE] [--zsh-completion FILE] [--fish-completion FILE]",
		Short: "Write manual pages and shell completion scripts",
		Long: `Write a manual page for every command into DIR (rewind.1, rewind-backup.1,
...), and completion scripts for bash, zsh and fish. "-" as FILE writes
the script to standard output. The repository is not touched.`,
		Example: `  rewind generate --man /usr/local/share/man/man1
  rewind generate --bash-completion /etc/bash_completion.d/rewind
  rewind generate --zsh-completion - > "${fpath[1]}/_rewind"
  rewind generate --fish-completion ~/.config/fish/completions/rewind.fish`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if man == "" && bash == "" && zsh == "" && fish == "" {
				return errors.New("nothing to generate: give --man DIR or a --*-completion FILE")
			}
			root := cmd.Root()
			if man != "" {
				if err := os.MkdirAll(man, 0o755); err != nil {
					return fmt.Errorf("manual pages: %w", err)
				}
				hdr := &doc.GenManHeader{Title: "REWIND", Section: "1", Source: "rewind " + Version, Manual: "rewind manual"}
				root.DisableAutoGenTag = true
				if err := doc.GenManTree(root, hdr, man); err != nil {
					return fmt.Errorf("manual pages: %w", err)
				}
			}
			for _, s := range []struct {
				file string
				gen  func(f *os.File) error
			}{
				{bash, func(f *os.File) error { return root.GenBashCompletionV2(f, true) }},
				{zsh, func(f *os.File) error { return root.GenZshCompletion(f) }},
				{fish, func(f *os.File) error { return root.GenFishCompletion(f, true) }},
			} {
				if s.file == "" {
					continue
				}
				if err := writeGenerated(s.file, s.gen); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&man, "man", "", "write manual pages into `dir`")
	f.StringVar(&bash, "bash-completion", "", "write the bash completion script to `file` (- for stdout)")
	f.StringVar(&zsh, "zsh-completion", "", "write the zsh completion script to `file` (- for stdout)")
	f.StringVar(&fish, "fish-completion", "", "write the fish completion script to `file` (- for stdout)")
	return cmd
}

// writeGenerated writes what gen makes to file, or to stdout for "-".
func writeGenerated(file string, gen func(f *os.File) error) error {
	if file == "-" {
		return gen(os.Stdout)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if err := gen(f); err != nil {
		f.Close()
		return fmt.Errorf("generate %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("generate %s: %w", file, err)
	}
	return nil
}
