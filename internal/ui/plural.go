package ui

import "fmt"

// Count says n things with the right form of the noun: "1 file",
// "2 files", "0 files".
func Count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Verb picks the verb form that agrees with a count of n: Verb(1, "is",
// "are").
func Verb(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
