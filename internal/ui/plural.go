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
