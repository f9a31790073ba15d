package pin_test

import (
	"fmt"
	"os"
	"time"

	"github.com/punchclock/punchclock/pin"
)

// How the agent uses the package for the key presses of one reader.
func Example() {
	dir, _ := os.MkdirTemp("", "pin")
	defer os.RemoveAll(dir)
	secret, err := pin.LoadSecret(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	roster := map[string]string{secret.Hash("4821"): "E7"} // credential values, hashed
	entry, lock := pin.NewEntry(), pin.NewLockout()
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

	for _, key := range []string{"F1", "4", "8", "2", "1", "#", "1", "2", "#"} {
		now = now.Add(time.Second)
		r := entry.Key("front", key, now)
		switch r.Kind {
		case pin.Function:
			fmt.Println("function key", r.Key)
		case pin.Discarded:
			fmt.Println("denied: entry discarded")
		case pin.PIN:
			h := secret.Hash(r.PIN) // the PIN itself goes no further
			id, known := roster[h]
			switch {
			case lock.Check("front", now):
				fmt.Println("denied: locked_out")
			case known:
				lock.Right("front", now)
				fmt.Println("punch for", id)
			default:
				lock.Wrong("front", now)
				fmt.Println("denied: unknown_credential")
			}
		}
	}
	fmt.Println(secret, pin.IsHashed(secret.Hash("4821")))
	// Output:
	// function key F1
	// punch for E7
	// denied: entry discarded
	// pin.Secret(redacted) true
}
