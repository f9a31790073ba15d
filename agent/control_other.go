//go:build !linux

package agent

import (
	"net"
	"os"
)

// peerOf knows nothing of the peer where SO_PEERCRED does not exist:
// there the socket's mode (0660) alone keeps other users out.
func peerOf(net.Conn) (peer, error) { return peer{}, nil }

func agentIDs() (uid, gid uint32) { return 0, 0 }

func peerGroups(int32, uint32) ([]uint32, error) { return nil, nil }

// listenUnix0660 binds a unix socket and gives it mode 0660 (a moment
// passes between the two, with the process's umask).
func listenUnix0660(path string) (net.Listener, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
