// Command rewind backs up servers and brings them back. See README.md.
package main

import (
	"os"

	"github.com/rewind-backup/rewind/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
