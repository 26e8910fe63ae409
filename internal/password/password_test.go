package password

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// The settings of the repository password, as the command line builds
// them; the tests give each a value that tells which one was used.
func allSettings() []Setting {
	return []Setting{
		{Name: "--password-file", Kind: File, Flag: true},
		{Name: "--password-command", Kind: Command, Flag: true},
		{Name: "REWIND_PASSWORD", Kind: Literal},
		{Name: "REWIND_PASSWORD_FILE", Kind: File},
		{Name: "REWIND_PASSWORD_COMMAND", Kind: Command},
	}
}

// TestChooseEveryPair sets every pair of settings: a flag wins over a
// variable, and two of the same level are an error naming both.
func TestChooseEveryPair(t *testing.T) {
	all := allSettings()
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			set := allSettings()
			set[i].Value, set[j].Value = "value-"+set[i].Name, "value-"+set[j].Name
			a, b := set[i], set[j]
			got, ok, err := Choose(set...)
			switch {
			case a.Flag == b.Flag:
				if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), a.Name) || !strings.Contains(err.Error(), b.Name) {
					t.Errorf("%s with %s: got %v, %v; want a conflict naming both", a.Name, b.Name, got.Name, err)
				}
			default:
				want := a
				if b.Flag {
					want = b
				}
				if err != nil || !ok || got.Name != want.Name || got.Value != want.Value {
					t.Errorf("%s with %s: got %q (%v, %v), want %s", a.Name, b.Name, got.Name, ok, err, want.Name)
				}
			}
		}
	}
}

// TestChooseOneOrNone: a single setting is used; none set is no choice;
// an empty value counts as unset.
func TestChooseOneOrNone(t *testing.T) {
	for i := range allSettings() {
		set := allSettings()
		set[i].Value = "only"
		got, ok, err := Choose(set...)
		if err != nil || !ok || got.Name != set[i].Name {
			t.Errorf("only %s: got %q, %v, %v", set[i].Name, got.Name, ok, err)
		}
	}
	if _, ok, err := Choose(allSettings()...); ok || err != nil {
		t.Errorf("nothing set: got a choice (%v) or an error (%v)", ok, err)
	}
	// A flag given with variables of both kinds set still wins alone.
	set := allSettings()
	for i := range set {
		set[i].Value = "v"
	}
	set[1].Value = ""
	got, ok, err := Choose(set...)
	if err != nil || !ok || got.Name != "--password-file" {
		t.Errorf("one flag over three variables: got %q, %v, %v", got.Name, ok, err)
	}
	// Three variables in conflict are all named.
	set = allSettings()
	for i := 2; i < len(set); i++ {
		set[i].Value = "v"
	}
	_, _, err = Choose(set...)
	for _, s := range set[2:] {
		if err == nil || !strings.Contains(err.Error(), s.Name) {
			t.Errorf("three variables: %v does not name %s", err, s.Name)
		}
	}
}

func TestReadLiteral(t *testing.T) {
	ctx := context.Background()
	s := Setting{Name: "REWIND_PASSWORD", Kind: Literal, Value: " spaces around are kept "}
	pw, err := Read(ctx, s, Options{})
	if err != nil || string(pw) != s.Value {
		t.Errorf("got %q, %v", pw, err)
	}
	for _, v := range []string{" ", "\t\n"} {
		_, err := Read(ctx, Setting{Name: "REWIND_PASSWORD", Kind: Literal, Value: v}, Options{})
		if !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "REWIND_PASSWORD") {
			t.Errorf("whitespace-only %q: got %v", v, err)
		}
	}
}
