// Command punchclock is the badge terminal agent and its technician
// commands:
//
//	punchclock run -config FILE          run the agent
//	punchclock status -config FILE       show roster, outbox and uplink state
//	punchclock check-config -config FILE [-connect] validate a configuration (and try the broker)
//	punchclock sample-config             print the commented sample configuration
//	punchclock version
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
