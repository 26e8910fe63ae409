package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// commands returns rewind's own commands below root, depth first; cobra's
// generated help and completion commands are left out.
func commands(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		out = append(out, c)
		out = append(out, commands(c)...)
	}
	return out
}

// TestEveryCommandHasExample: every command rewind defines has an Example
// that uses it, and its --help shows it.
func TestEveryCommandHasExample(t *testing.T) {
	t.Parallel()
	cmds := commands(newRoot(&globals{}))
	if len(cmds) < 15 {
		t.Fatalf("found only %d commands", len(cmds))
	}
	e := newEnv(t)
	for _, c := range cmds {
		path := c.CommandPath()
		if !c.Runnable() && !c.HasSubCommands() {
			continue
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example", path)
			continue
		}
		for _, l := range strings.Split(strings.TrimRight(c.Example, "\n"), "\n") {
			if !strings.HasPrefix(l, "  ") || !strings.Contains(l, path) {
				t.Errorf("%s: example line %q should be indented by two spaces and run %s", path, l, path)
			}
		}
		args := append(strings.Fields(path)[1:], "--help")
		r := e.mustRun(args...)
		if !strings.Contains(string(r.stdout), "Examples:\n"+c.Example) {
			t.Errorf("%s --help does not show the examples:\n%s", path, r.stdout)
		}
	}
}

// cliDoc reads docs/CLI.md.
func cliDoc(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "CLI.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docSection returns the text of docs/CLI.md under the heading
// "### `rewind ...`" for a command, up to the next heading of that level
// or above.
func docSection(doc, path string) (string, bool) {
	heading := "### `" + path + "`\n"
	i := strings.Index(doc, heading)
	if i < 0 {
		return "", false
	}
	rest := doc[i+len(heading):]
	if j := regexp.MustCompile(`(?m)^#{1,3} `).FindStringIndex(rest); j != nil {
		rest = rest[:j[0]]
	}
	return rest, true
}

// TestCLIDocCoversEveryCommand: docs/CLI.md has a section for every
// command that names each of its flags, documents the global flags, every
// exit status and every environment variable.
func TestCLIDocCoversEveryCommand(t *testing.T) {
	t.Parallel()
	doc := cliDoc(t)
	root := newRoot(&globals{})
	for _, c := range commands(root) {
		path := c.CommandPath()
		sec, ok := docSection(doc, path)
		if !ok {
			t.Errorf("docs/CLI.md has no section \"### `%s`\"", path)
			continue
		}
		check := func(f *pflag.Flag) {
			if !strings.Contains(sec, "`--"+f.Name) {
				t.Errorf("docs/CLI.md, %s: flag --%s is not documented", path, f.Name)
			}
		}
		c.LocalNonPersistentFlags().VisitAll(check)
		c.PersistentFlags().VisitAll(check)
		if c.Runnable() && !strings.Contains(sec, "```") {
			t.Errorf("docs/CLI.md, %s: no example", path)
		}
	}
	global, ok := docSection(doc, "rewind")
	if !ok {
		t.Fatal("docs/CLI.md has no section \"### `rewind`\" for the global flags")
	}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(global, "`--"+f.Name) {
			t.Errorf("docs/CLI.md: global flag --%s is not documented", f.Name)
		}
	})
	for _, code := range []int{ExitOK, ExitFatal, ExitPartial, ExitNoRepo, ExitLocked, ExitBadPassword} {
		if !regexp.MustCompile(`(?m)^\| ` + strconv.Itoa(code) + ` \|`).MatchString(doc) {
			t.Errorf("docs/CLI.md: exit status %d is not in the table", code)
		}
	}
	for _, v := range []string{"REWIND_REPOSITORY", "REWIND_PASSWORD", "REWIND_PASSWORD_FILE", "REWIND_PASSWORD_COMMAND", "REWIND_NEW_PASSWORD", "XDG_DATA_HOME", "HOME"} {
		if !strings.Contains(doc, "| `"+v+"` |") {
			t.Errorf("docs/CLI.md: environment variable %s is not in the table", v)
		}
	}
}
