package main

import (
	"fmt"
	"strings"
)

func (r *drillReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n(stub)\n", drillTitle)
	return b.String()
}
